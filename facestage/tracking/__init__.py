"""Face tracking: landmarks, head pose, ARKit blendshapes, smoothing. Pure: no files, no sockets."""

from .arkit import ARKIT_NAMES
from .tracker import FaceTracker
from .types import Face, HeadPose

__all__ = ["ARKIT_NAMES", "Face", "FaceTracker", "HeadPose"]
