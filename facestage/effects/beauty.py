"""beauty: skin smoothing, whitening, ruddy tone, face slimming, v-chin, bigger eyes, narrower nose,
whiter teeth and sharpening — per face, inside the face only."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..tracking.landmarks import (
    CHIN,
    INNER_LIP_LOOP,
    L_EYE_INNER,
    L_EYE_OUTER,
    L_IRIS_CENTER,
    R_EYE_INNER,
    R_EYE_OUTER,
    R_IRIS_CENTER,
)
from ..tracking.types import Face
from .base import Effect, P, register
from .context import FaceContext
from .regions import Roi, clip, face_width, feather, fill
from .skin import smooth_skin, times_mask
from .warp import WarpField

# Jaw points pulled towards the face axis by `slim` (cheek-bone level down to the chin side).
SLIM_POINTS = ([132, 172, 150], [361, 397, 379])
VCHIN_POINTS = ([149, 176], [378, 400])
NOSE_WINGS = (129, 358)  # alar points (right, left)
TEETH_MATRIX = np.hstack([np.eye(3) * 0.35 + 0.65 / 3, np.full((3, 1), 28.0)]).astype(np.float32)


def tone_lut(whiten: float, ruddy: float) -> np.ndarray:
    """One (1, 256, 3) uint8 LUT for whitening and ruddy, applied with a single ``cv2.LUT``.

    Whitening is GPUPixel's log curve log(1 + (β-1)x) / log β (lifts mid-tones, keeps black and
    white); ruddy is a per-channel gain towards red (warmer, rosier).
    """
    x = np.arange(256, dtype=np.float32) / 255.0
    if whiten > 0:
        beta = 1.0 + 2.5 * whiten
        x = np.log1p(x * (beta - 1.0)) / np.log(beta)
    gain = np.array([1.0 - 0.06 * ruddy, 1.0 - 0.02 * ruddy, 1.0 + 0.07 * ruddy], np.float32)
    return clip(x[:, None] * 255.0 * gain[None, :] + 0.5, 0, 255).astype(np.uint8).reshape(1, 256, 3)


def add_reshape(wf: WarpField, face: Face, params: dict) -> None:
    """Slim, v-chin, eyes and nose as local warps added to ``wf``."""
    lm = face.landmarks
    fw = face_width(lm)
    axis_top, axis_bottom = lm[168, :2], lm[CHIN, :2]  # nose bridge -> chin: the face's centre line

    def towards_axis(idx: int, amount: float, radius: float) -> None:
        p = lm[idx, :2]
        d = axis_bottom - axis_top
        t = clip(np.dot(p - axis_top, d) / max(np.dot(d, d), 1e-6), 0, 1)
        foot = axis_top + t * d
        v = foot - p
        v /= max(math.hypot(*v), 1e-6)
        wf.translate(p, p + v * amount, radius)

    if params["slim"] > 0:
        for side in SLIM_POINTS:
            for i in side:
                towards_axis(i, params["slim"] * 0.04 * fw, 0.22 * fw)
    if params["vchin"] > 0:
        for side in VCHIN_POINTS:
            for i in side:
                towards_axis(i, params["vchin"] * 0.025 * fw, 0.16 * fw)
        chin = lm[CHIN, :2]
        up = (axis_top - chin) / max(math.hypot(*(axis_top - chin)), 1e-6)
        wf.translate(chin, chin + up * params["vchin"] * 0.03 * fw, 0.2 * fw)
    if params["eyes"] > 0:
        for iris, corners in ((R_IRIS_CENTER, (R_EYE_OUTER, R_EYE_INNER)), (L_IRIS_CENTER, (L_EYE_OUTER, L_EYE_INNER))):
            eye_w = float(math.hypot(*(lm[corners[0], :2] - lm[corners[1], :2])))
            center = lm[list(corners), :2].mean(axis=0)
            if len(lm) > iris:  # 478-point meshes carry the iris centre; 468-point ones do not
                center = center * 0.5 + lm[iris, :2] * 0.5
            wf.scale(center, eye_w * 0.95, params["eyes"] * 0.32)
    if params["nose"] > 0:
        for i in NOSE_WINGS:
            towards_axis(i, params["nose"] * 0.03 * fw, 0.1 * fw)


def whiten_teeth(frame: np.ndarray, lm: np.ndarray, amount: float) -> None:
    """Inside the mouth opening only: lift and de-yellow bright, low-saturation pixels (teeth), leave
    the dark mouth cavity, tongue and lips alone."""
    pts = lm[INNER_LIP_LOOP, :2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 2:
        return
    sub = frame[y0:y1, x0:x1]
    mouth = fill(np.zeros(sub.shape[:2], np.float32), pts - np.array([x0, y0], np.float32))
    if mouth.max() <= 0:
        return
    mouth = feather(mouth, 1.0)
    hsv = cv2.cvtColor(sub, cv2.COLOR_BGR2HSV)
    bright = clip((hsv[..., 2].astype(np.float32) - 70.0) * (1 / 80.0), 0, 1)  # teeth are bright
    pale = clip((170.0 - hsv[..., 1].astype(np.float32)) * (1 / 80.0), 0, 1)  # and not saturated like lips/tongue
    a = mouth * bright * pale * np.float32(amount)
    # Less yellow, brighter: grey + (f - grey)·0.35 + 28 is one 3x4 colour matrix (cv2 saturates to 0..255).
    target = cv2.transform(sub, TEETH_MATRIX)
    frame[y0:y1, x0:x1] = cv2.blendLinear(target, sub, a, 1.0 - a)


def sharpen_face(frame: np.ndarray, roi: Roi, face_mask_small: np.ndarray, amount: float) -> None:
    """Unsharp mask at full resolution, limited to the feathered face oval."""
    sl = roi.slice()
    sub = frame[sl]
    blur = cv2.GaussianBlur(sub, (0, 0), 1.2)
    m = roi.upsample(face_mask_small) if roi.scale < 1 else face_mask_small
    k = (m * (amount * 0.9))[..., None]
    detail = cv2.subtract(sub, blur, dtype=cv2.CV_32F)
    frame[sl] = cv2.add(sub, detail * k, dtype=cv2.CV_8U)


@register
class Beauty(Effect):
    name = "beauty"
    description = "skin smoothing, tone and face reshaping, inside the face only"
    params = {
        "smooth": P(0.0, 0, 1, "skin smoothing (guided filter on skin only; edges and pores kept)"),
        "whiten": P(0.0, 0, 1, "brighten the skin (log curve), not the frame"),
        "ruddy": P(0.0, 0, 1, "rosy, warmer skin tone"),
        "slim": P(0.0, 0, 1, "slimmer face: jaw pulled towards the face axis (local warp)"),
        "vchin": P(0.0, 0, 1, "v-shaped chin: chin lifted, lower jaw narrowed (local warp)"),
        "eyes": P(0.0, 0, 1, "bigger eyes (local scale warp around each eye)"),
        "nose": P(0.0, 0, 1, "narrower nose wings (local warp)"),
        "teeth": P(0.0, 0, 1, "whiter teeth (inside the mouth opening only)"),
        "sharpen": P(0.0, 0, 1, "unsharp mask on the face"),
    }

    def is_active(self, params: dict) -> bool:
        return any(v > 0 for v in params.values())

    def warps(self, params: dict) -> bool:
        return any(params[k] > 0 for k in ("slim", "vchin", "eyes", "nose"))

    def add_warp(self, field: WarpField, face: Face, params: dict) -> None:
        add_reshape(field, face, params)

    roi_margins = (0.12, 0.12, 0.1)
    fused = True

    def accumulate(self, ctx: FaceContext, params: dict, state: dict) -> None:
        """Smoothing and tone as deltas of the fused pass (written back with age's, in one add)."""
        if params["smooth"] > 0 or params["whiten"] > 0 or params["ruddy"] > 0:
            tone_skin(ctx, params["smooth"], params["whiten"], params["ruddy"])

    def finish(self, frame: np.ndarray, ctx: FaceContext, params: dict, state: dict) -> None:
        """Full-resolution steps on the written-back pixels."""
        if params["sharpen"] > 0:
            sharpen_face(frame, ctx.face_roi, ctx.masks(skin=params["smooth"] > 0)["face"], params["sharpen"])
        if params["teeth"] > 0:
            whiten_teeth(frame, ctx.lm, params["teeth"])


def skin_box(skin: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the skin mask grown by ``pad``: the guided filter runs there only
    (the shared ROI also holds hair and neck for age; filtering them would cost ~1.8x for nothing)."""
    bx, by, bw, bh = cv2.boundingRect(cv2.compare(skin, 0, cv2.CMP_GT))
    if bw == 0:
        return None
    h, w = skin.shape
    return max(bx - pad, 0), max(by - pad, 0), min(bx + bw + pad, w), min(by + bh + pad, h)


def tone_skin(ctx: FaceContext, smooth: float, whiten: float, ruddy: float) -> None:
    """Smoothing + whitening + ruddy as one delta image at work resolution, added to the fused pass."""
    if smooth <= 0 and whiten <= 0 and ruddy <= 0:
        return
    # Everything on the face's own box of the shared grid (the rest is hair for age).
    lm, roi, box = ctx.lm, ctx.face_roi, ctx.face_box
    masks = ctx.masks(skin=smooth > 0)
    small = ctx.crop(box)
    delta = np.zeros_like(small)
    if smooth > 0:
        skin = masks["skin"]
        # The filter's output at a pixel depends on pixels up to two radii away (box of box): pad by that.
        radius = max(2, int(round(face_width(lm) * roi.scale * 0.045)))
        sbox = skin_box(skin, 2 * radius + 2)
        if sbox is not None:
            x0, y0, x1, y1 = sbox
            crop = small[y0:y1, x0:x1]
            smoothed = smooth_skin(crop, lm, roi, smooth)
            delta[y0:y1, x0:x1] = times_mask(cv2.subtract(smoothed, crop),
                                             skin[y0:y1, x0:x1] * np.float32(0.95 * smooth ** 0.7))
        fine = 0.6 * max(0.0, (smooth - 0.6) / 0.4) ** 2
        if roi.scale < 0.95 and fine > 0.02:  # big face, strong setting: finest detail is beyond the work res
            ctx.add_damp(ctx.pad(skin * fine, box))
    if whiten > 0 or ruddy > 0:
        # Tone follows the whole face with a wide feather so it fades into neck and hairline.
        fw = face_width(lm) * roi.scale
        tone = feather(masks["face"], fw * 0.06) * (1.0 - 0.5 * masks["lips"])
        base = clip(cv2.add(small, delta), 0, 255).astype(np.uint8)
        target = cv2.LUT(base, tone_lut(whiten, ruddy))
        delta = cv2.add(delta, times_mask(cv2.subtract(target, base, dtype=cv2.CV_32F), tone))
    ctx.add(delta, box)
