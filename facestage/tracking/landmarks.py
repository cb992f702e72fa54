"""MediaPipe face-mesh landmarks: fast extraction from the protobuf result and named indices.

Index names follow the subject's side: ``R_*`` is the subject's right (the image's left in an
unmirrored photo), ``L_*`` the subject's left.
"""

from __future__ import annotations

import numpy as np

from .types import NUM_LANDMARKS

# A NormalizedLandmark with x, y, z set serialises to 17 bytes: 0a 0f | 0d f32 | 15 f32 | 1d f32.
# Reading the floats straight from the serialised list is ~10x faster than a per-point Python loop.
_RECORD = 17


def landmarks_to_array(landmark_list, width: int, height: int) -> np.ndarray:
    """(478, 3) float32 pixels from a mediapipe ``NormalizedLandmarkList`` (z scaled like x)."""
    raw = landmark_list.SerializeToString()
    n = len(landmark_list.landmark)
    scale = np.array([width, height, width], dtype=np.float32)
    if len(raw) == n * _RECORD and raw[:2] == b"\x0a\x0f":
        # A strided float view straight onto the bytes (x at offset 3, then every 5 bytes, records
        # 17 bytes apart); the multiply makes the contiguous copy.
        floats = np.ndarray(shape=(n, 3), dtype="<f4", buffer=raw, offset=3, strides=(_RECORD, 5))
        return floats * scale
    # optional fields (visibility/presence) present: slow but always correct
    pts = np.array([(p.x, p.y, p.z) for p in landmark_list.landmark], dtype=np.float32)
    return pts * scale


# --- eyes -------------------------------------------------------------------------------------
R_EYE_OUTER, R_EYE_INNER, L_EYE_OUTER, L_EYE_INNER = 33, 133, 263, 362
# Upper / lower lid pairs, outer to inner.
R_LID_UPPER = np.array([160, 159, 158])
R_LID_LOWER = np.array([144, 145, 153])
L_LID_UPPER = np.array([387, 386, 385])
L_LID_LOWER = np.array([373, 374, 380])
R_IRIS = np.array([468, 469, 470, 471, 472])  # centre first
L_IRIS = np.array([473, 474, 475, 476, 477])
R_IRIS_CENTER, L_IRIS_CENTER = 468, 473

# --- brows ------------------------------------------------------------------------------------
R_BROW_INNER = np.array([107, 55])
R_BROW_OUTER = np.array([70, 46])
R_BROW_MID = np.array([105, 66])
L_BROW_INNER = np.array([336, 285])
L_BROW_OUTER = np.array([300, 276])
L_BROW_MID = np.array([334, 296])

# --- nose, jaw --------------------------------------------------------------------------------
NOSE_TIP, NOSE_BOTTOM = 1, 2
R_ALA, L_ALA = 98, 327  # nostril wings
R_NOSE_CREASE, L_NOSE_CREASE = 129, 358
CHIN, FOREHEAD = 152, 10
R_CHEEK, L_CHEEK = 50, 280
R_CHEEK_OUTER, L_CHEEK_OUTER = 187, 411
R_CHEEK_LOW, L_CHEEK_LOW = 205, 425
R_FACE_SIDE, L_FACE_SIDE = 234, 454

# --- mouth ------------------------------------------------------------------------------------
LIP_UPPER_OUTER, LIP_UPPER_INNER, LIP_LOWER_INNER, LIP_LOWER_OUTER = 0, 13, 14, 17
R_MOUTH_CORNER, L_MOUTH_CORNER = 61, 291
R_MOUTH_INNER_CORNER, L_MOUTH_INNER_CORNER = 78, 308
R_UPPER_LIP_SIDE, L_UPPER_LIP_SIDE = 40, 270  # outer upper lip, between centre and corner
R_UPPER_LIP_SIDE_IN, L_UPPER_LIP_SIDE_IN = 80, 310
R_LOWER_LIP_SIDE, L_LOWER_LIP_SIDE = 91, 321
R_LOWER_LIP_SIDE_IN, L_LOWER_LIP_SIDE_IN = 88, 318
# Inner lip contour (a closed polygon), used for the mouth-interior (tongue) estimate.
INNER_LIP_LOOP = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308,
                           324, 318, 402, 317, 14, 87, 178, 88, 95])

# Points that barely move with expressions: forehead, temples, nose bridge and tip, eye corners,
# cheekbones and the face's sides. Rigid alignment uses only these so a smile or an open jaw does not
# tilt the pose. (Leaving out the outline points was tried: yaw read back no better on rendered
# turns, and upside-down meshes fitted better, i.e. were harder to reject.)
STABLE_POINTS = np.array([
    10, 151, 9, 8, 109, 338, 67, 297, 103, 332, 69, 299, 108, 337,  # forehead
    168, 6, 197, 195, 5, 4, 1, 45, 275, 220, 440,                     # nose bridge and tip
    33, 133, 263, 362, 130, 359, 243, 463,                            # eye corners
    116, 345, 117, 346, 123, 352, 234, 454, 127, 356, 93, 323,        # cheekbones, face sides
])  # fmt: skip

assert NUM_LANDMARKS == 478


def add_eye_centres_as_iris(pts: np.ndarray) -> np.ndarray:
    """(468, 3) mesh without iris refinement -> (478, 3): irises placed where a straight gaze puts them.

    Used with ``refine=False`` so every consumer can rely on 478 points: the centre is the eye-corner
    midpoint raised by 0.06 eye widths (where the reference face's iris sits). The tracker reports no
    gaze (eyeLook* = 0) in this mode: these points carry no information about it.
    """
    out = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
    out[:468] = pts[:468]
    for first, outer, inner in ((468, R_EYE_OUTER, R_EYE_INNER), (473, L_EYE_OUTER, L_EYE_INNER)):
        across = pts[inner, :2] - pts[outer, :2]
        width = float(np.linalg.norm(across))
        up = np.array([across[1], -across[0]]) / max(width, 1e-6)  # eye line turned 90 deg, pointing up
        if up[1] > 0:
            up = -up
        centre = 0.5 * (pts[outer] + pts[inner])
        centre[:2] += 0.06 * width * up
        r = 0.22 * width  # an iris is ~0.45 eye widths across
        out[first] = centre
        # MediaPipe's ring order: right, top, left, bottom (as seen in the image)
        out[first + 1:first + 5] = centre + np.array([[r, 0, 0], [0, -r, 0], [-r, 0, 0], [0, r, 0]], np.float32)
    return out
