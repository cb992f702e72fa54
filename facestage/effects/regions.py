"""Face regions from MediaPipe face-mesh landmarks: index loops, the working ROI and feathered masks.

Everything here works on the face's bounding-box ROI at a reduced *work* resolution (face about
``WORK_FACE_PX`` wide): masks are filled with ``cv2.fillPoly`` there, feathered there, and only the
final soft mask is resized to the ROI. That keeps per-frame cost independent of the frame size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..tracking.landmarks import INNER_LIP_LOOP, L_FACE_SIDE, R_FACE_SIDE

# Single points and the inner lip loop are named in tracking.landmarks; these are the effects' own
# closed contours in MediaPipe face-mesh topology ("left" = the subject's left = image right).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
RIGHT_EYE = [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7]
LEFT_EYE = [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
RIGHT_EYE_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
LEFT_EYE_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
# Lower nose (nostrils and alar creases): filled as a convex hull.
NOSTRILS = [48, 64, 98, 97, 2, 326, 327, 294, 278, 129, 358, 102, 331, 219, 439]

WORK_FACE_PX = 128  # nominal face width at the work resolution: masks, blurs and warp fields live there


@dataclass
class Roi:
    """A face's region of interest in the frame and its work-resolution grid."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float  # work pixels per frame pixel (<= 1)

    @property
    def size(self) -> tuple[int, int]:
        return self.x1 - self.x0, self.y1 - self.y0

    @property
    def work_size(self) -> tuple[int, int]:
        w, h = self.size
        return max(int(round(w * self.scale)), 2), max(int(round(h * self.scale)), 2)

    def slice(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def to_roi(self, pts: np.ndarray) -> np.ndarray:
        """Frame pixel coordinates -> ROI pixel coordinates."""
        return pts[..., :2] - np.array([self.x0, self.y0], dtype=np.float32)

    def to_work(self, pts: np.ndarray) -> np.ndarray:
        """Frame pixel coordinates -> work-resolution coordinates."""
        return self.to_roi(pts) * self.scale

    def upsample(self, img: np.ndarray) -> np.ndarray:
        """Work resolution -> ROI resolution (bilinear)."""
        return cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)


def face_width(lm: np.ndarray) -> float:
    return float(math.hypot(*(lm[L_FACE_SIDE, :2] - lm[R_FACE_SIDE, :2])))


def face_roi(lm: np.ndarray, frame_shape: tuple[int, ...], margin: float = 0.2, top: float = 0.35,
             bottom: float = 0.15) -> Roi | None:
    """Bounding box of the landmarks grown by ``margin`` of the face size (``top`` above, for forehead
    and hair), clipped to the frame. None if the face is entirely outside."""
    h, w = frame_shape[:2]
    xy = lm[:, :2]
    (bx0, by0), (bx1, by1) = xy.min(axis=0), xy.max(axis=0)
    fw, fh = bx1 - bx0, by1 - by0
    x0 = int(np.floor(max(bx0 - margin * fw, 0)))
    x1 = int(np.ceil(min(bx1 + margin * fw, w)))
    y0 = int(np.floor(max(by0 - top * fh, 0)))
    y1 = int(np.ceil(min(by1 + bottom * fh, h)))
    # Work scale is a power of two (face 96-192 px wide there) and the ROI a multiple of 4x the factor:
    # OpenCV's INTER_AREA has a fast path for exact 2x steps (0.07 ms vs 1 ms for 0.47x on a 430x540 ROI).
    f = 1
    while face_width(lm) / (f * 2) >= WORK_FACE_PX * 0.75:
        f *= 2
    q = 4 * f
    x1 = x0 + (x1 - x0) // q * q
    y1 = y0 + (y1 - y0) // q * q
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return Roi(x0, y0, x1, y1, 1.0 / f)


def clip(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """``np.clip`` as two ufuncs: numpy 1.26's clip wrapper costs ~15 us a call, dozens of calls a frame."""
    return np.minimum(np.maximum(x, lo), hi)


def fill(mask: np.ndarray, pts: np.ndarray, value: float = 1.0) -> np.ndarray:
    """Fill one polygon (float work coordinates) into ``mask`` with sub-pixel precision."""
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], value, lineType=cv2.LINE_AA, shift=4)
    return mask


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian feather, computed only on the mask's bounding box plus 3 sigma (masks are small blobs
    in a large ROI: blurring the whole ROI cost 5-10x more)."""
    if sigma <= 0.3:
        return mask
    k = int(sigma * 3) * 2 + 1
    # Bounding box of the non-zero pixels: cv2 (two calls) instead of numpy any/flatnonzero (four).
    bx, by, bw, bh = cv2.boundingRect(cv2.compare(mask, 0, cv2.CMP_NE))
    if bw == 0:
        return mask
    pad = k // 2 + 1
    h, w = mask.shape
    y0, y1 = max(by - pad, 0), min(by + bh + pad, h)
    x0, x1 = max(bx - pad, 0), min(bx + bw + pad, w)
    out = np.zeros_like(mask)
    sub = mask[y0:y1, x0:x1]
    if sigma > 2.5:
        # Two box passes (variance (b²-1)/6 = σ²): cost independent of sigma, visually a Gaussian.
        b = max(int(round(np.sqrt(6.0 * sigma * sigma + 1.0))) | 1, 3)
        sub = cv2.blur(cv2.blur(sub, (b, b), borderType=cv2.BORDER_CONSTANT), (b, b), borderType=cv2.BORDER_CONSTANT)
    else:
        sub = cv2.GaussianBlur(sub, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    out[y0:y1, x0:x1] = sub
    return out


def region_masks(lm: np.ndarray, roi: Roi, skin: bool = True) -> dict[str, np.ndarray]:
    """Soft float32 masks at work resolution: ``face`` (oval), ``skin`` (oval minus eyes, brows, lips,
    nostrils), ``lips`` (ring between outer and inner lip contour), ``mouth`` (inner opening).

    ``skin=False`` skips the skin mask (five hole fills, a dilate, an erode and a feather: most of the
    cost) for callers that only need the oval and the lips."""
    w, h = roi.work_size
    p = roi.to_work(lm)
    fw = face_width(lm) * roi.scale
    face = fill(np.zeros((h, w), np.float32), p[FACE_OVAL])
    out = {}
    if skin:
        holes = np.zeros((h, w), np.float32)
        for idx in (RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW, LIPS_OUTER):
            fill(holes, p[idx])
        fill(holes, cv2.convexHull(p[NOSTRILS]).reshape(-1, 2))
        # Grow the holes a little so the feathered skin edge stops before lashes, brow hairs and the lip line.
        holes = cv2.dilate(holes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(fw * 0.04),) * 2))
        # Shrink the oval so smoothing never reaches hair or background at the face border.
        inner = cv2.erode(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(fw * 0.05),) * 2))
        out["skin"] = feather(clip(inner - holes, 0, 1), fw * 0.025)
    lips = fill(np.zeros((h, w), np.float32), p[LIPS_OUTER])
    mouth = fill(np.zeros((h, w), np.float32), p[INNER_LIP_LOOP])
    lips = feather(clip(lips - mouth, 0, 1), fw * 0.006)
    out.update(face=feather(face, fw * 0.02), lips=lips, mouth=mouth)
    return out


def _odd(v: float) -> int:
    return max(int(v) | 1, 1)
