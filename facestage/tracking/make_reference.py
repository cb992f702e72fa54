"""Build ``facestage/assets/tracking/neutral_face.npz``: the neutral reference face for pose and expressions.

Run ``python -m facestage.tracking.make_reference`` (needs scikit-image/matplotlib test media).

The reference comes from a real frontal photo with the mouth closed (matplotlib's grace_hopper, public
domain). MediaPipe is run on the photo and on its mirror image: matching the mirrored landmarks back
gives each landmark's left/right partner, which lets us (1) find the face's plane of symmetry, (2) put
the face in an upright frame facing the camera (x = subject's left, y = chin, z = into the head) and (3) average
each side with its mirrored partner, so a perfectly symmetric head has yaw = roll = 0 exactly.
Units are metres, scaled so the pupils are 63 mm apart (the adult average).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .geometry import similarity_align
from .landmarks import L_IRIS_CENTER, R_IRIS_CENTER, STABLE_POINTS, landmarks_to_array

ASSET = Path(__file__).resolve().parent.parent / "assets" / "tracking" / "neutral_face.npz"
PUPIL_DISTANCE_M = 0.063


def _mesh(img: np.ndarray) -> np.ndarray:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as fm:
        res = fm.process(np.ascontiguousarray(img[:, :, ::-1]))
    if not res.multi_face_landmarks:
        raise RuntimeError("no face found in the reference photo")
    h, w = img.shape[:2]
    return landmarks_to_array(res.multi_face_landmarks[0], w, h).astype(np.float64)


def build(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) symmetric neutral face in metres (face frame) and the (478,) mirror-partner index."""
    w = img.shape[1]
    pts = _mesh(img)
    mirrored = _mesh(np.ascontiguousarray(img[:, ::-1]))
    mirrored[:, 0] = w - mirrored[:, 0]
    # mirrored[i] sits where the original's partner of i is. The photo is not perfectly frontal, so
    # align the two point sets on the (self-symmetric) stable points first, then solve a one-to-one
    # assignment in 3-D.
    from scipy.optimize import linear_sum_assignment

    partner = np.linalg.norm(mirrored[:, None, :2] - pts[None, :, :2], axis=2).argmin(axis=1)
    for _ in range(3):
        s, rot, t = similarity_align(mirrored, pts[partner])
        moved = s * mirrored @ rot.T + t
        cost = np.linalg.norm(moved[:, None, :] - pts[None, :, :], axis=2)
        partner = linear_sum_assignment(cost)[1]
    bad = partner[partner] != np.arange(len(pts))
    if bad.mean() > 0.05:
        raise RuntimeError(f"mirror matching failed for {bad.sum()} landmarks: use a frontal photo")
    partner[bad] = np.arange(len(pts))[bad]  # rare ambiguous points: their own partner
    # Plane of symmetry: normal along the mean left-right difference of partners.
    diffs = pts[partner] - pts
    sign = np.sign(diffs[:, 0])[:, None]
    normal = (diffs * sign)[np.abs(diffs[:, 0]) > 1.0].mean(axis=0)
    x_axis = normal / np.linalg.norm(normal)  # image right = subject's left
    # Pitch 0 = the photo's own viewing direction (a portrait looks into the lens); yaw and roll 0
    # come from the symmetry plane.
    down = np.array([0.0, 1.0, 0.0])
    y_axis = down - x_axis * (down @ x_axis)
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    basis = np.stack([x_axis, y_axis, z_axis])  # rows: face axes in image coordinates
    origin = pts[STABLE_POINTS].mean(axis=0)
    local = (pts - origin) @ basis.T
    flip = np.array([-1.0, 1.0, 1.0])
    sym = 0.5 * (local + local[partner] * flip)
    sym -= sym[STABLE_POINTS].mean(axis=0)
    sym *= PUPIL_DISTANCE_M / np.linalg.norm(sym[L_IRIS_CENTER] - sym[R_IRIS_CENTER])
    return sym.astype(np.float32), partner.astype(np.int16)


def main() -> None:
    from .. import testdata

    ref, partner = build(testdata.grace_hopper())
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ASSET, points=ref, partner=partner)
    print(f"wrote {ASSET} ({ASSET.stat().st_size} bytes); face height "
          f"{np.ptp(ref[:, 1]) * 100:.1f} cm, width {np.ptp(ref[:, 0]) * 100:.1f} cm")


if __name__ == "__main__":
    main()
