"""Draw tracking results onto BGR frames: mesh, pose axes, bounding box and top blendshapes.

Reusable by every preview (CLI ``--preview``, server debug views, effect previews).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .types import Face


@cache
def tessellation_edges() -> np.ndarray:
    """(2556, 2) landmark index pairs of MediaPipe's face-mesh tessellation."""
    import mediapipe as mp

    return np.array(sorted(mp.solutions.face_mesh.FACEMESH_TESSELATION), dtype=np.int32)


def top_blendshapes(face: Face, k: int = 3, min_score: float = 0.05) -> list[tuple[str, float]]:
    items = sorted(face.blendshapes.items(), key=lambda kv: -kv[1])[:k]
    return [(n, v) for n, v in items if v >= min_score]


def draw_face(frame: np.ndarray, face: Face, mesh: bool = True, axes: bool = True, box: bool = True,
              blendshapes: int = 3, color: tuple[int, int, int] = (80, 220, 80)) -> np.ndarray:
    """Draw ``face`` onto ``frame`` in place (BGR uint8) and return it."""
    import cv2

    pts = face.landmarks[:, :2]
    size = max(face.bbox[2] - face.bbox[0], 1.0)
    thin = 1 if size < 400 else 2
    x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
    if mesh:
        # Mesh at half opacity, blended only inside the face box: the face stays visible under it.
        h, w = frame.shape[:2]
        bx0, by0, bx1, by1 = max(x0 - 2, 0), max(y0 - 2, 0), min(x1 + 3, w), min(y1 + 3, h)
        if bx1 > bx0 and by1 > by0:
            roi = frame[by0:by1, bx0:bx1]
            layer = roi.copy()
            lines = np.round(pts[tessellation_edges()] - [bx0, by0]).astype(np.int32)  # (E, 2, 2)
            cv2.polylines(layer, list(lines), False, color, 1, cv2.LINE_AA)
            cv2.addWeighted(layer, 0.5, roi, 0.5, 0.0, dst=roi)
    if box:
        cv2.rectangle(frame, (x0, y0), (x1, y1), (255, 200, 0), thin)
    font_scale = max(0.35, min(1.0, size / 400.0))
    if axes:
        # Orthographic projection of the face axes from the nose tip: x (subject's left) red,
        # y (down) green, forward (out of the face, -z) blue.
        rot = face.pose.matrix[:3, :3]
        origin = pts[1]
        length = 0.45 * size
        for vec, col in ((rot[:, 0], (0, 0, 255)), (rot[:, 1], (0, 255, 0)), (-rot[:, 2], (255, 0, 0))):
            end = origin + length * vec[:2]
            cv2.arrowedLine(frame, tuple(np.round(origin).astype(int)), tuple(np.round(end).astype(int)),
                            col, thin + 1, cv2.LINE_AA, tipLength=0.15)
    p = face.pose
    lines_txt = [f"id {face.id}  yaw {p.yaw:+.0f} pitch {p.pitch:+.0f} roll {p.roll:+.0f}"]
    lines_txt += [f"{n} {v:.2f}" for n, v in top_blendshapes(face, blendshapes)]
    # Small frames (a 176x144 clip): shrink the labels until the widest fits the frame.
    frame_w = frame.shape[1]
    while font_scale > 0.25:
        widest = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thin)[0][0] for t in lines_txt)
        if widest <= frame_w - 4:
            break
        font_scale *= 0.85
    step = int(22 * font_scale) + 4
    y = max(y0 - step * len(lines_txt), step)
    for text in lines_txt:
        tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thin)[0][0]
        x = int(min(max(x0, 2), max(frame_w - tw - 2, 2)))  # keep the label inside the frame
        cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thin + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thin,
                    cv2.LINE_AA)
        y += step
    return frame


def draw_faces(frame: np.ndarray, faces: list[Face], **kwargs: object) -> np.ndarray:
    for face in faces:
        draw_face(frame, face, **kwargs)  # type: ignore[arg-type]
    return frame
