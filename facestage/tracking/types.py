"""Typed results of the tracker: the one face format every other part of facestage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arkit import neutral_weights

NUM_LANDMARKS = 478


@dataclass(frozen=True, slots=True)
class HeadPose:
    """6-DoF head pose.

    Conventions (see docs/tracking.md):
      * camera frame is OpenCV's: x right, y down, z forward (away from the camera), metres;
      * ``quaternion`` is (x, y, z, w), the rotation of the face frame into the camera frame;
      * ``yaw`` > 0 when the subject turns to their left, ``pitch`` > 0 when they look up,
        ``roll`` > 0 when the head tilts towards the subject's left shoulder, degrees;
      * ``matrix`` is the 4x4 face-to-camera transform (rotation + translation in metres).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.5)
    matrix: np.ndarray = field(default_factory=lambda: np.eye(4, dtype=np.float64))

    def to_json(self) -> dict:
        return {
            "yaw": round(float(self.yaw), 3),
            "pitch": round(float(self.pitch), 3),
            "roll": round(float(self.roll), 3),
            "quaternion": [round(float(q), 6) for q in self.quaternion],
            "translation": [round(float(t), 5) for t in self.translation],
        }


@dataclass(slots=True)
class Face:
    """One tracked face in one frame.

    ``landmarks`` is a (478, 3) float32 array in pixels: x, y in the image, z relative depth in the
    same pixel scale as x (smaller = closer to the camera), MediaPipe's face-mesh topology
    (468 mesh points + 10 iris points).
    """

    id: int
    landmarks: np.ndarray
    confidence: float
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    pose: HeadPose = field(default_factory=HeadPose)
    blendshapes: dict[str, float] = field(default_factory=neutral_weights)

    def to_json(self, landmarks: bool = True, ndigits: int = 2) -> dict:
        out: dict = {
            "id": int(self.id),
            "confidence": round(float(self.confidence), 4),
            "bbox": [round(float(v), 2) for v in self.bbox],
            "pose": self.pose.to_json(),
            "blendshapes": {k: round(float(v), 4) for k, v in self.blendshapes.items()},
        }
        if landmarks:
            out["landmarks"] = np.round(self.landmarks.astype(np.float64), ndigits).tolist()
        return out
