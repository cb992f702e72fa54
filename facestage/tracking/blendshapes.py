"""The 52 ARKit blendshape scores, measured on landmarks in the head's own frame.

Pose is removed first (``local`` points are in the face frame, metres, scale fixed by the rigid
points), so turning the head or moving closer leaves the measurements unchanged. 42 geometric
features (:func:`measure`, one sparse linear map of the coordinates) are compared with the same
features of a neutral face (the shipped reference, facestage/assets/tracking/neutral_face.npz, a
real photo with the mouth closed, or the person's own after calibration). Each score's "delta" is
a fixed linear combination (``_ROWS``) of those feature changes and a few non-linear intermediates
(ratios, clipped jaw drop...), mapped to [0, 1] as ``(delta - dead) / full`` with ``SPEC``'s dead
zone and full range, then gated (gaze under a closing lid, lip-closed-only shapes). Pairs of
features are ordered subject's right, then left. docs/tracking.md has the table.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import landmarks as L
from .arkit import ARKIT_INDEX, ARKIT_NAMES
from .types import NUM_LANDMARKS

# (2, k) index arrays: [subject's right, subject's left]
_LID_UP = np.stack([L.R_LID_UPPER, L.L_LID_UPPER])
_LID_LO = np.stack([L.R_LID_LOWER, L.L_LID_LOWER])
_EYE_OUT = np.array([L.R_EYE_OUTER, L.L_EYE_OUTER])
_EYE_IN = np.array([L.R_EYE_INNER, L.L_EYE_INNER])
_IRIS = np.array([L.R_IRIS_CENTER, L.L_IRIS_CENTER])
_BROW_IN = np.stack([L.R_BROW_INNER, L.L_BROW_INNER])
_BROW_OUT = np.stack([L.R_BROW_OUTER, L.L_BROW_OUTER])
_BROW_MID = np.stack([L.R_BROW_MID, L.L_BROW_MID])
_CORNER = np.array([L.R_MOUTH_CORNER, L.L_MOUTH_CORNER])
_UP_SIDE = np.array([L.R_UPPER_LIP_SIDE, L.L_UPPER_LIP_SIDE])
_UP_SIDE_IN = np.array([L.R_UPPER_LIP_SIDE_IN, L.L_UPPER_LIP_SIDE_IN])
_LO_SIDE = np.array([L.R_LOWER_LIP_SIDE, L.L_LOWER_LIP_SIDE])
_LO_SIDE_IN = np.array([L.R_LOWER_LIP_SIDE_IN, L.L_LOWER_LIP_SIDE_IN])
_ALA = np.array([[L.R_ALA, L.R_NOSE_CREASE], [L.L_ALA, L.L_NOSE_CREASE]])
_CHEEK = np.array([L.R_CHEEK, L.L_CHEEK])
_CHEEK_PUFF = np.array([[L.R_CHEEK_OUTER, L.R_CHEEK_LOW], [L.L_CHEEK_OUTER, L.L_CHEEK_LOW]])
_SIDE_SIGN = np.array([-1.0, 1.0])  # x of the subject's right side is negative in the face frame

# Feature names, in the order :func:`measure` returns them (each pair is right, left).
FEATURES: tuple[str, ...] = (
    "eye_open_r", "eye_open_l", "lower_lid_r", "lower_lid_l",
    "iris_x_r", "iris_x_l", "iris_y_r", "iris_y_l",
    "brow_in_r", "brow_in_l", "brow_out_r", "brow_out_l", "brow_mid_r", "brow_mid_l",
    "corner_up_r", "corner_up_l", "corner_out_r", "corner_out_l", "corner_back_r", "corner_back_l",
    "upper_side_up_r", "upper_side_up_l", "lower_side_down_r", "lower_side_down_l",
    "side_lip_thick_r", "side_lip_thick_l", "sneer_r", "sneer_l", "cheek_up_r", "cheek_up_l",
    "puff_r", "puff_l",
    "lip_gap", "chin_drop", "chin_x", "chin_fwd", "mouth_x", "mouth_width",
    "upper_lip_thick", "lower_lip_thick", "upper_lip_up", "lower_lip_up",
)
_F = {name: i for i, name in enumerate(FEATURES)}


def _linear_features(p: np.ndarray) -> np.ndarray:
    """Every feature as a linear function of the coordinates (batched over leading axes).

    The first 8 values are numerators still to be divided by the eye width; the last 2 are the
    (positive) widths of the right and left eye. Being linear, the whole thing is one sparse matrix
    product (see :func:`measure`).
    """
    x, y, z = p[..., 0], p[..., 1], p[..., 2]

    def mean(a: np.ndarray) -> np.ndarray:
        return a.mean(axis=-1)

    eye_w = (x[..., _EYE_OUT] - x[..., _EYE_IN]) * _SIDE_SIGN  # outer corner is further out
    corner_y = 0.5 * (y[..., _EYE_OUT] + y[..., _EYE_IN])
    corner_x = 0.5 * (x[..., _EYE_OUT] + x[..., _EYE_IN])
    eye_open = mean(y[..., _LID_LO] - y[..., _LID_UP])
    lower_lid = mean(y[..., _LID_LO]) - corner_y
    # Iris offset within the eye; x signed towards the nose ("in") for both eyes.
    iris_x = -(x[..., _IRIS] - corner_x) * _SIDE_SIGN
    iris_y = y[..., _IRIS] - corner_y
    brow_in = corner_y - mean(y[..., _BROW_IN])
    brow_out = corner_y - mean(y[..., _BROW_OUT])
    brow_mid = corner_y - mean(y[..., _BROW_MID])
    corner_up = -y[..., _CORNER]
    corner_out = x[..., _CORNER] * _SIDE_SIGN
    corner_back = z[..., _CORNER]
    upper_side_up = -y[..., _UP_SIDE]
    lower_side_down = y[..., _LO_SIDE] - y[..., [L.CHIN, L.CHIN]]  # relative to the chin: jaw cancels
    side_thick = (y[..., _UP_SIDE_IN] - y[..., _UP_SIDE]) + (y[..., _LO_SIDE] - y[..., _LO_SIDE_IN])
    sneer = -mean(y[..., _ALA])
    cheek_up = -y[..., _CHEEK]
    puff = mean(x[..., _CHEEK_PUFF] * _SIDE_SIGN[:, None]) - mean(z[..., _CHEEK_PUFF])

    def one(v: np.ndarray) -> np.ndarray:
        return v[..., None]

    lip_gap = y[..., L.LIP_LOWER_INNER] - y[..., L.LIP_UPPER_INNER]
    mouth_x = 0.25 * (x[..., L.LIP_UPPER_OUTER] + x[..., L.LIP_LOWER_OUTER] + x[..., L.R_MOUTH_CORNER]
                      + x[..., L.L_MOUTH_CORNER])
    mouth_width = x[..., L.L_MOUTH_CORNER] - x[..., L.R_MOUTH_CORNER]
    upper_thick = y[..., L.LIP_UPPER_INNER] - y[..., L.LIP_UPPER_OUTER]
    lower_thick = y[..., L.LIP_LOWER_OUTER] - y[..., L.LIP_LOWER_INNER]
    return np.concatenate([
        eye_open, lower_lid, iris_x, iris_y, brow_in, brow_out, brow_mid, corner_up, corner_out,
        corner_back, upper_side_up, lower_side_down, side_thick, sneer, cheek_up, puff,
        one(lip_gap), one(y[..., L.CHIN]), one(x[..., L.CHIN]), one(-z[..., L.CHIN]), one(mouth_x),
        one(mouth_width), one(upper_thick), one(lower_thick), one(-y[..., L.LIP_UPPER_OUTER]),
        one(-y[..., L.LIP_LOWER_OUTER]), eye_w,
    ], axis=-1)


@cache
def _feature_matrix() -> tuple[np.ndarray, np.ndarray]:
    """(K+2, M) matrix and the M flat coordinate indices it reads: features = A @ p.ravel()[cols]."""
    n = NUM_LANDMARKS * 3
    a = _linear_features(np.eye(n).reshape(n, NUM_LANDMARKS, 3)).T  # exact: the map is linear
    cols = np.flatnonzero(np.abs(a).sum(axis=0) > 0)
    return np.ascontiguousarray(a[:, cols]), cols


def measure(p: np.ndarray) -> np.ndarray:
    """Geometric features (``FEATURES`` order) of face-frame points ``p`` (478, 3), metres or eye widths."""
    a, cols = _feature_matrix()
    v = a @ np.asarray(p, dtype=np.float64).reshape(-1)[cols]
    eye_w = np.maximum(v[-2:], 1e-9)
    v = v[:-2]
    v[:8] /= np.tile(eye_w, 4)
    return v


def _clip01(v: np.ndarray | float) -> np.ndarray:
    return np.clip(v, 0.0, 1.0)


# name -> (dead zone, full range, what is measured). Units: metres in the face frame unless the
# description says otherwise. The dead zone sits above the noise seen on neutral real photos
# (grace_hopper, its mirror image, and both at 35 % size); the full range is the anatomical change
# at a full expression, checked on the smiling astronaut and the talking carphone clip. A score is
# clip((delta - dead) / full, 0, 1), delta being the measurement minus its neutral value.
SPEC: dict[str, tuple[float, float, str]] = {
    "browDownLeft": (0.0015, 0.008, "inner+middle brow height above the eye corners, lowered"),
    "browDownRight": (0.0015, 0.008, "inner+middle brow height above the eye corners, lowered"),
    "browInnerUp": (0.0015, 0.008, "inner brow height above the eye corners (both sides), raised"),
    "browOuterUpLeft": (0.0015, 0.008, "outer brow height above the eye corners, raised"),
    "browOuterUpRight": (0.0015, 0.008, "outer brow height above the eye corners, raised"),
    "cheekPuff": (0.003, 0.008, "cheek points (187/205, 411/425) moving outwards and forwards, lips closed"),
    "cheekSquintLeft": (0.001, 0.005, "cheek point under the eye (280) rising"),
    "cheekSquintRight": (0.001, 0.005, "cheek point under the eye (50) rising"),
    "eyeBlinkLeft": (0.08, 0.67, "eye opening (mean lid gap / eye width) falling below 0.84 of neutral; "
                                 "1 at 0.17 of neutral"),
    "eyeBlinkRight": (0.08, 0.67, "as eyeBlinkLeft, right eye"),
    "eyeLookDownLeft": (0.02, 0.10, "iris centre below the eye-corner line, eye widths (fades with blink)"),
    "eyeLookDownRight": (0.02, 0.10, "iris centre below the eye-corner line, eye widths (fades with blink)"),
    "eyeLookInLeft": (0.03, 0.20, "iris centre towards the nose, eye widths (fades with blink)"),
    "eyeLookInRight": (0.03, 0.20, "iris centre towards the nose, eye widths (fades with blink)"),
    "eyeLookOutLeft": (0.03, 0.20, "iris centre towards the ear, eye widths (fades with blink)"),
    "eyeLookOutRight": (0.03, 0.20, "iris centre towards the ear, eye widths (fades with blink)"),
    "eyeLookUpLeft": (0.02, 0.10, "iris centre above the eye-corner line, eye widths (fades with blink)"),
    "eyeLookUpRight": (0.02, 0.10, "iris centre above the eye-corner line, eye widths (fades with blink)"),
    "eyeSquintLeft": (0.02, 0.08, "lower lid rising towards the eye-corner line, eye widths"),
    "eyeSquintRight": (0.02, 0.08, "lower lid rising towards the eye-corner line, eye widths"),
    "eyeWideLeft": (0.15, 0.45, "eye opening above neutral, as a fraction of neutral"),
    "eyeWideRight": (0.15, 0.45, "eye opening above neutral, as a fraction of neutral"),
    "jawForward": (0.002, 0.010, "chin (152) moving towards the camera in the face frame"),
    "jawLeft": (0.002, 0.012, "chin moving to the subject's left"),
    "jawOpen": (0.0, 1.0, "max(mean(chin drop 1.5+25 mm, inner lip gap 1+35 mm), lip gap) as scores"),
    "jawRight": (0.002, 0.012, "chin moving to the subject's right"),
    "mouthClose": (0.1, 0.6, "jaw-drop score minus lip-gap score: jaw down, lips together"),
    "mouthDimpleLeft": (0.0015, 0.008, "lip corner moving back (deeper) minus half its rise"),
    "mouthDimpleRight": (0.0015, 0.008, "lip corner moving back (deeper) minus half its rise"),
    "mouthFrownLeft": (0.0015, 0.006, "lip corner (291) falling, jaw share removed"),
    "mouthFrownRight": (0.0015, 0.006, "lip corner (61) falling, jaw share removed"),
    "mouthFunnel": (0.004, 0.015, "mouth narrowing (corner to corner) with the lips apart"),
    "mouthLeft": (0.0025, 0.010, "mouth centre moving to the subject's left (minus half the jaw's move)"),
    "mouthLowerDownLeft": (0.0015, 0.006, "lower lip side (321) moving down relative to the chin"),
    "mouthLowerDownRight": (0.0015, 0.006, "lower lip side (91) moving down relative to the chin"),
    "mouthPressLeft": (0.0, 0.4, "lip thickness at the side below 0.8 of neutral, lips closed"),
    "mouthPressRight": (0.0, 0.4, "lip thickness at the side below 0.8 of neutral, lips closed"),
    "mouthPucker": (0.004, 0.015, "mouth narrowing (corner to corner) with the lips closed"),
    "mouthRight": (0.0025, 0.010, "mouth centre moving to the subject's right (minus half the jaw's move)"),
    "mouthRollLower": (0.0, 0.6, "lower lip thickness (14-17) below 0.75 of neutral"),
    "mouthRollUpper": (0.0, 0.6, "upper lip thickness (0-13) below 0.75 of neutral"),
    "mouthShrugLower": (0.002, 0.006, "lower lip (17) rising relative to the chin, lips closed"),
    "mouthShrugUpper": (0.002, 0.006, "upper lip (0) rising, lips closed"),
    "mouthSmileLeft": (0.0015, 0.010, "lip corner rising (jaw share removed) + 0.3 x its outward move"),
    "mouthSmileRight": (0.0015, 0.010, "lip corner rising (jaw share removed) + 0.3 x its outward move"),
    "mouthStretchLeft": (0.0015, 0.008, "lip corner moving outwards beyond its rise"),
    "mouthStretchRight": (0.0015, 0.008, "lip corner moving outwards beyond its rise"),
    "mouthUpperUpLeft": (0.0015, 0.008, "upper lip side (270) rising minus 0.3 x the corner's rise"),
    "mouthUpperUpRight": (0.0015, 0.008, "upper lip side (40) rising minus 0.3 x the corner's rise"),
    "noseSneerLeft": (0.0015, 0.006, "nostril wing and crease (327, 358) rising"),
    "noseSneerRight": (0.0015, 0.006, "nostril wing and crease (98, 129) rising"),
    "tongueOut": (0.0, 1.0, "share of red-pink pixels inside the inner-lip polygon, jawOpen >= 0.3 "
                            "(image-based heuristic: the mesh has no tongue points)"),
}
assert tuple(SPEC) == ARKIT_NAMES
_DEAD = np.array([SPEC[n][0] for n in ARKIT_NAMES])
_FULL = np.array([SPEC[n][1] for n in ARKIT_NAMES])
_I = ARKIT_INDEX


# Intermediate quantities (non-linear in the landmarks) appended after the 42 feature deltas; every
# score's "delta" is then one row of a fixed linear map over [feature deltas, intermediates, 1].
_EXTRA = ("rel_r", "rel_l", "jaw_down", "up_pos_r", "up_pos_l", "out_pos_r", "out_pos_l", "upper_rel",
          "lower_rel", "side_rel_r", "side_rel_l", "jaw_score", "gap_score", "jaw_open", "one")
_Z = {name: i for i, name in enumerate(FEATURES + _EXTRA)}

# name -> {source: coefficient}; sources are FEATURES (as deltas from neutral) or _EXTRA.
_ROWS: dict[str, dict[str, float]] = {
    "eyeBlinkRight": {"one": 0.92, "rel_r": -1}, "eyeBlinkLeft": {"one": 0.92, "rel_l": -1},
    "eyeWideRight": {"rel_r": 1, "one": -1}, "eyeWideLeft": {"rel_l": 1, "one": -1},
    "eyeSquintRight": {"lower_lid_r": -1}, "eyeSquintLeft": {"lower_lid_l": -1},
    "eyeLookInRight": {"iris_x_r": 1}, "eyeLookInLeft": {"iris_x_l": 1},
    "eyeLookOutRight": {"iris_x_r": -1}, "eyeLookOutLeft": {"iris_x_l": -1},
    "eyeLookUpRight": {"iris_y_r": -1}, "eyeLookUpLeft": {"iris_y_l": -1},
    "eyeLookDownRight": {"iris_y_r": 1}, "eyeLookDownLeft": {"iris_y_l": 1},
    "browDownRight": {"brow_in_r": -0.5, "brow_mid_r": -0.5}, "browDownLeft": {"brow_in_l": -0.5, "brow_mid_l": -0.5},
    "browOuterUpRight": {"brow_out_r": 1}, "browOuterUpLeft": {"brow_out_l": 1},
    "browInnerUp": {"brow_in_r": 0.5, "brow_in_l": 0.5},
    "jawOpen": {"jaw_open": 1},
    "mouthClose": {"jaw_score": 1, "gap_score": -1},
    "jawForward": {"chin_fwd": 1},
    "jawLeft": {"chin_x": 1}, "jawRight": {"chin_x": -1},
    "mouthLeft": {"mouth_x": 1, "chin_x": -0.5}, "mouthRight": {"mouth_x": -1, "chin_x": 0.5},
    # corner_up = corner delta + 0.35 x jaw drop (the jaw drags the corners down)
    "mouthSmileRight": {"corner_up_r": 1, "jaw_down": 0.35, "out_pos_r": 0.3},
    "mouthSmileLeft": {"corner_up_l": 1, "jaw_down": 0.35, "out_pos_l": 0.3},
    "mouthFrownRight": {"corner_up_r": -1, "jaw_down": -0.35}, "mouthFrownLeft": {"corner_up_l": -1, "jaw_down": -0.35},
    "mouthStretchRight": {"corner_out_r": 1, "up_pos_r": -1}, "mouthStretchLeft": {"corner_out_l": 1, "up_pos_l": -1},
    "mouthDimpleRight": {"corner_back_r": 1, "up_pos_r": -0.5},
    "mouthDimpleLeft": {"corner_back_l": 1, "up_pos_l": -0.5},
    "mouthPucker": {"mouth_width": -1}, "mouthFunnel": {"mouth_width": -1},
    "mouthRollUpper": {"one": 0.75, "upper_rel": -1}, "mouthRollLower": {"one": 0.75, "lower_rel": -1},
    "mouthPressRight": {"one": 0.8, "side_rel_r": -1}, "mouthPressLeft": {"one": 0.8, "side_rel_l": -1},
    "mouthUpperUpRight": {"upper_side_up_r": 1, "up_pos_r": -0.3},
    "mouthUpperUpLeft": {"upper_side_up_l": 1, "up_pos_l": -0.3},
    "mouthLowerDownRight": {"lower_side_down_r": 1}, "mouthLowerDownLeft": {"lower_side_down_l": 1},
    "mouthShrugUpper": {"upper_lip_up": 1}, "mouthShrugLower": {"lower_lip_up": 1, "jaw_down": 1},
    "noseSneerRight": {"sneer_r": 1}, "noseSneerLeft": {"sneer_l": 1},
    "cheekSquintRight": {"cheek_up_r": 1}, "cheekSquintLeft": {"cheek_up_l": 1},
    "cheekPuff": {"puff_r": 0.5, "puff_l": 0.5},
    "tongueOut": {},  # from pixels, see tongue_estimate
}
assert set(_ROWS) == set(ARKIT_NAMES)


@cache
def _score_matrix() -> np.ndarray:
    w = np.zeros((len(ARKIT_NAMES), len(_Z)))
    for name, row in _ROWS.items():
        for src, coef in row.items():
            w[_I[name], _Z[src]] = coef
    return w


def _ix(*names: str) -> list[int]:
    return [_I[n] for n in names]


_LOOK = _ix("eyeLookInRight", "eyeLookInLeft", "eyeLookOutRight", "eyeLookOutLeft",
            "eyeLookUpRight", "eyeLookUpLeft", "eyeLookDownRight", "eyeLookDownLeft")
_CLOSED_GATED = _ix("mouthPucker", "mouthPressRight", "mouthPressLeft", "mouthShrugUpper", "mouthShrugLower",
                    "cheekPuff")
_FUNNEL, _TONGUE = _I["mouthFunnel"], _I["tongueOut"]
_FI = {name: _F[name] for name in FEATURES}


class BlendshapeSolver:
    """Maps face-frame landmarks to the 52 ARKit scores.

    ``neutral`` is the feature vector of a neutral face (the reference by default);
    :meth:`set_neutral` re-bases it on a person's own neutral frame when one is available.
    """

    GAP = (0.001, 0.035)  # inner lip gap: dead zone, full range (m)
    JAW = (0.0015, 0.025)  # chin drop

    def __init__(self, reference_points: np.ndarray) -> None:
        self.neutral = measure(np.asarray(reference_points, dtype=np.float64))
        self._reference_neutral = self.neutral.copy()

    def set_neutral(self, local_points: np.ndarray | None) -> None:
        """Use this face's features as its neutral (``None`` restores the reference)."""
        self.neutral = self._reference_neutral.copy() if local_points is None else measure(local_points)

    def solve(self, local_points: np.ndarray, tongue: float = 0.0, neutral: np.ndarray | None = None) -> np.ndarray:
        """(52,) scores in ARKit order for face-frame points; ``tongue`` is the mouth-interior estimate.

        ``neutral`` (features from :func:`measure` on a person's relaxed face) overrides the solver's.
        One linear map (``_ROWS``) over the feature deltas and a few non-linear intermediates.
        """
        f = measure(local_points)
        n = self.neutral if neutral is None else neutral
        d = f - n
        fi = _FI
        z = np.empty(len(_Z))
        k = len(FEATURES)
        z[:k] = d
        # Eye opening relative to this face's neutral opening; lip thickness likewise.
        i = fi["eye_open_r"]
        rel = f[i:i + 2] / np.maximum(n[i:i + 2], 1e-6)
        j = fi["side_lip_thick_r"]
        side_rel = f[j:j + 2] / np.maximum(n[j:j + 2], 1e-6)
        jaw_drop, gap = float(d[fi["chin_drop"]]), float(d[fi["lip_gap"]])
        jaw_down = max(jaw_drop, 0.0)
        c = fi["corner_up_r"]
        up_pos = np.maximum(d[c:c + 2] + 0.35 * jaw_down, 0.0)
        o = fi["corner_out_r"]
        out_pos = np.maximum(d[o:o + 2], 0.0)
        # Jaw and mouth opening: chin drop (jaw) and inner lip gap (mouth) together, so a wide-open
        # mouth reads near 1 whichever of the two a face shows more.
        gap_score = min(max((gap - self.GAP[0]) / self.GAP[1], 0.0), 1.0)
        jaw_score = min(max((jaw_drop - self.JAW[0]) / self.JAW[1], 0.0), 1.0)
        ut = f[fi["upper_lip_thick"]] / max(n[fi["upper_lip_thick"]], 1e-6)
        lt = f[fi["lower_lip_thick"]] / max(n[fi["lower_lip_thick"]], 1e-6)
        z[k:] = (rel[0], rel[1], jaw_down, up_pos[0], up_pos[1], out_pos[0], out_pos[1], ut, lt,
                 side_rel[0], side_rel[1], jaw_score, gap_score, max(0.5 * (jaw_score + gap_score), gap_score), 1.0)
        delta = _score_matrix() @ z
        delta[_TONGUE] = tongue
        scores = np.clip((delta - _DEAD) / _FULL, 0.0, 1.0)
        # Gates: gaze fades out as the lid closes (the iris model guesses under a closed lid);
        # pucker, press, shrug and puff need closed lips, funnel needs them apart.
        blink = scores[_I["eyeBlinkRight"]], scores[_I["eyeBlinkLeft"]]
        scores[_LOOK] *= (1.0 - blink[0], 1.0 - blink[1]) * 4
        scores[_CLOSED_GATED] *= 1.0 - gap_score
        scores[_FUNNEL] *= min(max(gap / 0.012, 0.0), 1.0)
        return scores


def tongue_estimate(frame_bgr: np.ndarray, pts_px: np.ndarray, mouth_open: float) -> float:
    """Best-effort tongueOut from pixels: share of tongue-coloured pixels inside the open mouth.

    MediaPipe's mesh has no tongue points, so this looks at the colour of the mouth interior (the
    inner-lip polygon): a dark cavity or white teeth read 0, a bright red-pink interior reads high.
    It is gated by the mouth being clearly open (jawOpen >= 0.3): below that the interior is a slit a
    few pixels high whose colour is mostly the lips', and the check is skipped (it also costs ~0.1 ms).
    """
    if mouth_open < 0.3:
        return 0.0
    import cv2

    # Shrink the polygon towards its centre: the mesh's inner-lip line often sits on the lip itself,
    # and lips are red too.
    loop = pts_px[L.INNER_LIP_LOOP, :2]
    centre = loop.mean(axis=0)
    poly = centre + 0.7 * (loop - centre)
    x0, y0 = np.floor(poly.min(axis=0)).astype(int)
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 1
    h, w = frame_bgr.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return 0.0
    step = max(1, (max(x1 - x0, y1 - y0) + 15) // 16)  # ~16x16 samples are plenty for a colour share
    crop = frame_bgr[y0:y1:step, x0:x1:step]
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((poly - [x0, y0]) / step).astype(np.int32)], 1)
    inside = mask.view(bool)
    n = int(np.count_nonzero(inside))
    if n < 4:
        return 0.0
    px = crop[inside].astype(np.int32)  # (n, 3) BGR
    b, g, r = px[:, 0], px[:, 1], px[:, 2]
    # r / (r + g + b + 1) > 0.45, r > 110, r - g > 50, in integers
    tongue_like = (20 * r > 9 * (r + g + b + 1)) & (r > 110) & (r - g > 50)
    share = np.count_nonzero(tongue_like) / n
    return float(_clip01((share - 0.25) / 0.5) * min(1.0, mouth_open / 0.45))
