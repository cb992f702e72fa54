"""Shared skin operations: edge-preserving smoothing at work resolution and delta blending into the ROI.

Why deltas: every colour/smoothing change is computed at work resolution (face ~128 px wide) as a
*difference* image, then upsampled and added to the full-resolution ROI once. The finest detail of
the original (pores, single hairs) is never touched, only what the low-resolution filter changes —
and the full-resolution cost is one resize and one saturating add per face.
"""

from __future__ import annotations

import cv2
import numpy as np

from .regions import Roi, face_width


def work_image(frame: np.ndarray, roi: Roi) -> np.ndarray:
    """The ROI at work resolution (area-averaged), float32."""
    return downscale(frame[roi.slice()], roi.scale).astype(np.float32)


def downscale(img: np.ndarray, scale: float) -> np.ndarray:
    """Area-average by a power-of-two ``scale`` in exact 2x steps (OpenCV's fast path)."""
    while scale < 0.99:
        h, w = img.shape[:2]
        img = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        scale *= 2
    return img


def smooth_skin(small: np.ndarray, lm: np.ndarray, roi: Roi, strength: float) -> np.ndarray:
    """Edge-preserving smoothing of a work-resolution image: a grey-guided filter (He et al.).

    The radius follows the face size (blemishes and fine wrinkles, not features); ``eps`` decides
    which edges survive: ~(0.05·255)² keeps eyelids, nostrils and lip lines, flattens skin texture.
    A grey guide costs a third of a colour guide and keeps the same luminance edges.
    """
    fw = face_width(lm) * roi.scale
    radius = max(2, int(round(fw * 0.045)))
    eps = (0.02 + 0.05 * strength) ** 2 * 255.0**2
    guide = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    # ximgproc's guided filter beat a numpy/cv2 "fast guided filter" (coefficients at half resolution)
    # by 1.5x on these ~180x160 work images: at this size the per-call overhead dominates, not pixels.
    return cv2.ximgproc.guidedFilter(guide, small, radius, eps, -1)


def times_mask(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A float32 3-channel image times a 1-channel mask: cv2 on a merged mask is several times faster
    than numpy's ``img * mask[..., None]`` (a strided broadcast over the channel axis)."""
    return cv2.multiply(img, cv2.merge([mask, mask, mask]))


def add_delta(frame: np.ndarray, roi: Roi, delta_small: np.ndarray, fine_damp: np.ndarray | None = None) -> None:
    """frame[roi] += upsample(delta) with saturation, in place.

    ``fine_damp`` (work resolution, 0..1) additionally removes that fraction of the finest full-resolution
    detail (pixel minus its 3x3 mean) — what a work-resolution filter cannot reach on large faces.
    """
    sl = roi.slice()
    sub = frame[sl]
    delta = roi.upsample(delta_small) if roi.scale < 1.0 else delta_small
    if fine_damp is not None:
        damp = roi.upsample(fine_damp) if roi.scale < 1.0 else fine_damp
        fine = cv2.subtract(sub, cv2.blur(sub, (3, 3)), dtype=cv2.CV_32F)
        delta = delta - fine * damp[..., None]
    frame[sl] = cv2.add(sub, delta, dtype=cv2.CV_8U)  # saturating uint8 + float32 in one pass


def lab_distance(lab: np.ndarray, color: np.ndarray, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
                 ) -> np.ndarray:
    """Per-pixel weighted Euclidean distance of a float32 Lab image to one Lab colour (cv2: one
    channel-mixing ``transform`` instead of numpy's strided sum over the channel axis)."""
    d = lab - np.asarray(color, np.float32)
    return cv2.sqrt(cv2.transform(d * d, np.float32([[w * w for w in weights]])))


def sigmoid(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """1 / (1 + exp(-(x - center) / width)), float32, with cv2.exp."""
    e = cv2.exp((x - np.float32(center)) * np.float32(-1.0 / width))
    return 1.0 / (1.0 + e)


def skin_likeness(small_bgr: np.ndarray, skin_lab: np.ndarray, tolerance: float = 28.0) -> np.ndarray:
    """0..1 per pixel: how close the colour is to the face's skin (Lab distance, soft threshold).

    Keeps texture effects (wrinkles, paint) off hair, glasses and beards that cover the face mesh.
    """
    lab = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    return sigmoid(lab_distance(lab, skin_lab), tolerance, -6.0)


def cheek_lab(small_bgr: np.ndarray, lm: np.ndarray, roi: Roi, is_lab: bool = False) -> np.ndarray:
    """Median Lab colour of the two cheeks, from a work-resolution BGR image of ``roi`` (or its Lab
    conversion, ``is_lab``, when the caller has one)."""
    p = roi.to_work(lm)
    fw = face_width(lm) * roi.scale
    cheeks = np.zeros(small_bgr.shape[:2], np.uint8)
    for c in (50, 280):
        cv2.circle(cheeks, tuple(int(v) for v in p[c]), max(int(fw * 0.06), 1), 1, -1)
    if cheeks.sum() == 0:
        return np.array([160.0, 140.0, 145.0], np.float32)
    lab = small_bgr if is_lab else cv2.cvtColor(small_bgr, cv2.COLOR_BGR2LAB)
    return np.median(lab[cheeks > 0], axis=0).astype(np.float32)
