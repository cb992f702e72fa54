"""Which way up is a face? The face detector, asked about the face as it is and turned 180 degrees.

The rigid-fit residual (``tracker.MAX_FIT_RESIDUAL``) separates most upside-down faces from upright ones:
MediaPipe squeezes an upright mesh onto an upside-down face and the squeezed mesh fits no rigid face well.
But a real face looking down 20 degrees, close to the camera, fits as badly as some upside-down ones: the
mesh's forehead and cheeks come out vertically compressed (measured on rendered built-ins and photo avatars:
residual up to 0.116 on walter and 0.126 on grace_hopper's photo avatar, vs 0.101-0.255 for upside-down
photos and carphone frames). For residuals in that band the short-range detector decides: on a crop around
the face it scores an upright face higher as it is than turned 180 degrees, and an upside-down face the
other way round. Measured (score as it is minus score turned, 1.5x crop at 128²): 58 upright faces (every
built-in and both photo avatars at pitch -20/-15/+20 and yaw 45, the two photos, 21 carphone frames)
at least +0.12; 23 upside-down ones (the photos and carphone frames turned 180 degrees) at most -0.11.
Two detector runs on a 128² crop, ~3 ms wall, only for faces in the band, and in video only when the face
was not already accepted at that place on the previous frame (``FaceTracker._was_here``).
"""

from __future__ import annotations

import numpy as np

# Crop side / the landmarks' box side: the face with a little context (the detector was trained on faces
# with some background around them; 1.5 gave the widest margin of 1.5, 2 and 3 tried).
CONTEXT = 1.5
SIDE = 128  # px: the short-range detector's own input size, so it resizes nothing


class UprightCheck:
    """The short-range face detector asked whether a face is upright. Created lazily (one detector)."""

    def __init__(self) -> None:
        self._detector = None
        self.asked = 0  # faces checked so far (tests and the bench read it)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _score(self, rgb: np.ndarray) -> float:
        if self._detector is None:
            import mediapipe as mp

            # A low threshold: the check compares scores, a weak detection still counts.
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=0.05)
        res = self._detector.process(rgb)
        return max((float(d.score[0]) for d in res.detections or ()), default=0.0)

    def scores(self, bgr: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
        """Detector scores of the face in ``box`` (x0, y0, x1, y1 pixels) as it is and turned 180 degrees."""
        import cv2

        self.asked += 1
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        k = SIDE / (CONTEXT * max(box[2] - box[0], box[3] - box[1], 8.0))
        m = np.array([[k, 0.0, SIDE / 2 - k * cx], [0.0, k, SIDE / 2 - k * cy]])
        crop = cv2.warpAffine(bgr, m, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        return self._score(rgb), self._score(cv2.rotate(rgb, cv2.ROTATE_180))

    def upright(self, bgr: np.ndarray, box: tuple[float, float, float, float]) -> bool:
        as_is, turned = self.scores(bgr, box)
        return as_is > turned
