"""The 52 ARKit shapes of a procedural head as region-weighted displacement fields.

Each shape is a smooth field of rest positions (Gaussian falloffs around the lips, brows, cheeks and nose,
plus a rigid jaw rotation with a weight that splits cleanly at the lip line), so any mesh sculpted on
the same ``FaceLayout`` (skin, teeth, tongue) gets consistent shapes.
"""

from __future__ import annotations

import numpy as np

from ..tracking.arkit import ARKIT_INDEX
from .face_layout import FaceLayout, gauss, rot_x
from .model import NUM_SHAPES
from .sdf import smoothstep


def jaw_weight(p: np.ndarray, f: FaceLayout, lower: np.ndarray | None = None) -> np.ndarray:
    """1 on the mandible (below the lip line), 0 on the skull; a soft seam past the mouth corners.

    ``lower`` gives the exact upper/lower-lip labels when the lips touch (photo faces)."""
    x, y, z = np.abs(p[:, 0]), p[:, 1], p[:, 2]
    hard = (y < f.mouth_y).astype(np.float64) if lower is None else lower.astype(np.float64)
    soft = 1 - smoothstep(f.mouth_y - 0.028, f.mouth_y + 0.006, y)
    # Inside the mouth and on the lips the split is exact; on the cheeks it is a gradient of stretch.
    t = np.maximum(smoothstep(f.mouth_half * 0.95, f.mouth_half * 1.5, x), 1 - smoothstep(0.015, 0.04, z))
    w = (1 - t) * hard + t * soft
    w *= smoothstep(-0.128, -0.095, y) * np.maximum(smoothstep(-0.05, 0.02, z), hard * (x < f.mouth_half))
    return w


def _sided(name: str, side: int) -> str:
    return name + ("Left" if side > 0 else "Right")


def skin_shapes(p: np.ndarray, n: np.ndarray, f: FaceLayout, lower: np.ndarray | None = None) -> np.ndarray:
    """(52,V,3) deltas for skin vertices ``p`` with normals ``n`` (``lower``: optional lip-side labels)."""
    d = np.zeros((NUM_SHAPES, len(p), 3), np.float64)
    x, y = p[:, 0], p[:, 1]
    front = smoothstep(0.02, 0.06, p[:, 2])
    wj = jaw_weight(p, f, lower)
    if lower is None:
        lower = (y < f.mouth_y).astype(np.float64)
    upper = 1 - lower
    cm = np.array([0.0, f.mouth_y, f.mouth_z])
    piv = np.asarray(f.jaw_pivot)

    def put(name: str, vec, weight: np.ndarray) -> None:
        d[ARKIT_INDEX[name]] += np.asarray(vec, float)[None, :] * weight[:, None] if np.ndim(vec) == 1 \
            else vec * weight[:, None]

    rel = p - piv
    d[ARKIT_INDEX["jawOpen"]] += (rel @ rot_x(f.jaw_open_deg).T - rel) * wj[:, None]
    put("jawForward", (0, 0, 0.007), wj)
    put("jawLeft", (0.007, 0, 0), wj)
    put("jawRight", (-0.007, 0, 0), wj)

    lips = gauss(p, cm, 0.017) * front
    put("mouthClose", (0, 0.011, 0.003), lips * lower)
    put("mouthClose", (0, -0.002, 0), lips * upper)
    sgn = np.where(upper > 0.5, 1.0, -1.0)
    funnel = np.stack([-0.25 * x, 0.0035 * sgn, np.full_like(x, 0.007)], axis=1)
    put("mouthFunnel", funnel, gauss(p, cm, 0.017) * front)
    pucker = np.stack([-0.45 * x, -0.001 * sgn, np.full_like(x, 0.009)], axis=1)
    put("mouthPucker", pucker, gauss(p, cm, 0.019) * front)
    put("mouthLeft", (0.009, 0, -0.001), gauss(p, cm, 0.024) * front)
    put("mouthRight", (-0.009, 0, -0.001), gauss(p, cm, 0.024) * front)
    put("mouthRollLower", (0, 0.002, -0.006), gauss(p, cm + (0, -0.007, 0), 0.011) * lower * front)
    put("mouthRollUpper", (0, -0.002, -0.006), gauss(p, cm + (0, 0.006, 0), 0.011) * upper * front)
    put("mouthShrugLower", (0, 0.005, 0.003), gauss(p, cm + (0, -0.016, -0.003), 0.015) * lower * front)
    put("mouthShrugUpper", (0, 0.003, 0.002), gauss(p, cm + (0, 0.007, 0), 0.013) * upper * front)
    put("tongueOut", (0, -0.004, 0.001), gauss(p, cm, 0.016) * lower * front)

    for side in (1, -1):
        corner = f.mouth_corner(side)
        cheek = np.array([side * 0.039, -0.012, 0.062])
        put(_sided("mouthSmile", side), (side * 0.005, 0.0075, -0.004), gauss(p, corner, 0.016) * front)
        put(_sided("mouthSmile", side), (0, 0.0025, 0.0015), gauss(p, cheek, 0.02))
        put(_sided("mouthFrown", side), (side * 0.001, -0.0065, 0), gauss(p, corner, 0.014) * front)
        put(_sided("mouthDimple", side), (side * 0.004, 0.001, -0.007),
            gauss(p, corner + (side * 0.006, 0, -0.004), 0.012) * front)
        put(_sided("mouthStretch", side), (side * 0.007, -0.003, -0.002), gauss(p, corner, 0.016) * front)
        press = gauss(p, corner - (side * 0.009, 0, 0), 0.011) * front
        put(_sided("mouthPress", side), (side * 0.002, -0.0016, -0.003), press * upper)
        put(_sided("mouthPress", side), (side * 0.002, 0.0016, -0.003), press * lower)
        put(_sided("mouthLowerDown", side), (0, -0.0065, 0.001),
            gauss(p, cm + (side * 0.010, -0.006, 0), 0.012) * lower * front)
        put(_sided("mouthUpperUp", side), (0, 0.0055, 0.001),
            gauss(p, cm + (side * 0.010, 0.007, 0), 0.012) * upper * front)
        put(_sided("cheekSquint", side), (0, 0.006, 0.002), gauss(p, cheek + (0, 0.01, 0), 0.018))
        put(_sided("noseSneer", side), (side * 0.001, 0.006, 0.002), gauss(p, (side * 0.011, -0.012, 0.085), 0.013))
        put(_sided("noseSneer", side), (0, -0.002, 0), gauss(p, (side * 0.014, f.brow_y - 0.004, 0.072), 0.012))
        brow_inner = np.array([side * 0.013, f.brow_y, 0.078])
        brow_mid = np.array([side * 0.031, f.brow_y + 0.002, 0.073])
        brow_outer = np.array([side * 0.047, f.brow_y - 0.002, 0.062])
        put(_sided("browDown", side), (-side * 0.002, -0.0065, 0.001), gauss(p, brow_mid, 0.02))
        put("browInnerUp", (0, 0.0075, 0), gauss(p, brow_inner, 0.013))
        put(_sided("browOuterUp", side), (0, 0.0075, 0), gauss(p, brow_outer, 0.015))
        under_eye = f.eye_center(side) + (0, -0.018, 0.008)
        put(_sided("eyeSquint", side), (0, 0.003, 0.001), gauss(p, under_eye, 0.011))
        put(_sided("eyeWide", side), (0, 0.0022, 0), gauss(p, f.eye_center(side) + (0, 0.02, 0.01), 0.012))
        put(_sided("eyeBlink", side), (0, -0.0012, 0), gauss(p, f.eye_center(side) + (0, 0.019, 0.01), 0.011))
        put(_sided("eyeLookUp", side), (0, 0.0012, 0), gauss(p, f.eye_center(side) + (0, 0.02, 0.01), 0.012))
        put(_sided("eyeLookDown", side), (0, -0.001, 0), gauss(p, f.eye_center(side) + (0, 0.02, 0.01), 0.012))
        put(_sided("eyeLookIn", side), (-side * 0.0008, 0, 0), gauss(p, f.eye_center(side) + (0, 0.0, 0.012), 0.01))
        put(_sided("eyeLookOut", side), (side * 0.0008, 0, 0), gauss(p, f.eye_center(side) + (0, 0.0, 0.012), 0.01))

    puff = gauss(p, (0.040, -0.040, 0.055), 0.022) + gauss(p, (-0.040, -0.040, 0.055), 0.022)
    put("cheekPuff", n * 0.008, puff)
    return d.astype(np.float32)


def lower_jaw_shapes(p: np.ndarray, f: FaceLayout, tongue: bool = False) -> np.ndarray:
    """Rigid mandible shapes for the lower teeth and tongue (weight 1); the tongue also sticks out."""
    d = np.zeros((NUM_SHAPES, len(p), 3), np.float32)
    rel = p - np.asarray(f.jaw_pivot)
    d[ARKIT_INDEX["jawOpen"]] = rel @ rot_x(f.jaw_open_deg).T - rel
    d[ARKIT_INDEX["jawForward"]] = (0, 0, 0.007)
    d[ARKIT_INDEX["jawLeft"]] = (0.007, 0, 0)
    d[ARKIT_INDEX["jawRight"]] = (-0.007, 0, 0)
    if tongue:
        tip = smoothstep(0.03, 0.075, p[:, 2])[:, None]
        d[ARKIT_INDEX["tongueOut"]] = np.array([0, -0.003, 0.03]) * tip + np.array([0, 0.002, 0.006])
        d[ARKIT_INDEX["mouthFunnel"]] = np.array([0, 0, 0.002]) * tip
    return d
