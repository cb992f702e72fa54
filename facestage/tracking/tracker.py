"""FaceTracker: frames in, typed ``Face`` results out (v0: landmarks, bbox, stable ids).

Pose, blendshapes, smoothing and small-face detection are layered on in their own modules.
"""

from __future__ import annotations

import os

import numpy as np

from .types import Face

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class FaceTracker:
    def __init__(self, max_faces: int = 4, refine: bool = True, static: bool = False,
                 min_confidence: float = 0.5) -> None:
        import mediapipe as mp  # heavy import kept lazy so the CLI starts fast

        self.max_faces = max_faces
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=max_faces, refine_landmarks=refine,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)
        self._next_id = 0
        self._prev: list[tuple[int, np.ndarray]] = []

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> list[Face]:
        h, w = frame_bgr.shape[:2]
        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        result = self._mesh.process(rgb)
        faces: list[Face] = []
        if not result.multi_face_landmarks:
            self._prev = []
            return faces
        for lms in result.multi_face_landmarks:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
            x0, y0 = pts[:, :2].min(axis=0)
            x1, y1 = pts[:, :2].max(axis=0)
            faces.append(Face(id=-1, landmarks=pts, confidence=1.0,
                              bbox=(float(x0), float(y0), float(x1), float(y1))))
        self._assign_ids(faces)
        return faces

    def _assign_ids(self, faces: list[Face]) -> None:
        used: set[int] = set()
        current: list[tuple[int, np.ndarray]] = []
        for face in faces:
            c = face.landmarks[:, :2].mean(axis=0)
            size = face.bbox[2] - face.bbox[0]
            best, best_d = None, 0.5 * size
            for fid, pc in self._prev:
                d = float(np.linalg.norm(pc - c))
                if fid not in used and d < best_d:
                    best, best_d = fid, d
            if best is None:
                best = self._next_id
                self._next_id += 1
            used.add(best)
            face.id = best
            current.append((best, c))
        self._prev = current
