"""Face tracking: landmarks, head pose, ARKit blendshapes, smoothing. Pure: no files, no sockets.

Conventions (frames, signs, the blendshape table, filters, multi-face strategy): docs/tracking.md.
"""

from .arkit import ARKIT_NAMES
from .filters import OneEuroParams, SmoothingConfig
from .tracker import FaceTracker
from .types import Face, HeadPose

__all__ = ["ARKIT_NAMES", "Face", "FaceTracker", "HeadPose", "OneEuroParams", "SmoothingConfig"]
