"""makeup: lipstick, blush, brows, eyeshadow and eyeliner, blended in Lab so skin texture stays.

Colour goes into the a/b (chroma) channels and only partly into L: the lips' own light and dark
(texture, highlights, creases) survive, which is what separates makeup from paint. All masks are
filled on the ROI at work resolution and feathered there; the Lab round-trip runs on the small
bounding box of each region only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..tracking.landmarks import INNER_LIP_LOOP, L_CHEEK, L_FACE_SIDE, R_CHEEK, R_FACE_SIDE
from .base import Effect, P, Param, color_bgr, register
from .context import FaceContext
from .regions import (
    LEFT_BROW,
    LEFT_EYE,
    LEFT_EYE_UPPER,
    LIPS_OUTER,
    RIGHT_BROW,
    RIGHT_EYE,
    RIGHT_EYE_UPPER,
    Roi,
    clip,
    feather,
    fill,
)


def _lab_of(hex_color: str) -> np.ndarray:
    b, g, r = color_bgr(hex_color)
    px = np.array([[[b, g, r]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_BGR2LAB)[0, 0].astype(np.float32)


def lab_tint(sub: np.ndarray, alpha: np.ndarray, color_lab: np.ndarray, l_weight: float) -> np.ndarray:
    """Pull a/b of ``sub`` to the colour's a/b by ``alpha``; shift L towards the colour's L by
    ``l_weight·alpha`` *around the region's own mean*, so texture (L variation) is kept."""
    lab = cv2.cvtColor(sub, cv2.COLOR_BGR2LAB).astype(np.float32)
    alpha = np.ascontiguousarray(alpha, np.float32)
    w = float(alpha.sum())
    mean_l = float(cv2.extractChannel(lab, 0).ravel() @ alpha.ravel()) / w if w > 1e-3 else 128.0
    # L: a constant shift (colour L - mean L) · l_weight · alpha; a, b: towards the colour by alpha.
    # lab + alpha · (v - lab · keep) with v = (shift, a*, b*), keep = (0, 1, 1): one cv2 pass each.
    v = np.float32([l_weight * (color_lab[0] - mean_l), color_lab[1], color_lab[2]])
    pull = cv2.transform(lab, np.float32([[0, 0, 0, -v[0]], [0, 1, 0, -v[1]], [0, 0, 1, -v[2]]]))  # lab·keep - v
    lab = cv2.subtract(lab, cv2.multiply(pull, cv2.merge([alpha, alpha, alpha])))
    return cv2.cvtColor(lab.clip(0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def multiply_tint(sub: np.ndarray, alpha: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    """Multiply blend (darkens like real pigment, keeps highlights' structure)."""
    # f + alpha·(f·k - f) = f · (1 + alpha·(k - 1)): a per-channel factor from alpha (one 1->3 channel
    # cv2.transform) and one saturating multiply, instead of four float32 temporaries.
    k = np.float32(bgr) / 255.0 - 1.0
    factor = cv2.transform(np.ascontiguousarray(alpha, np.float32)[..., None],
                           np.float32([[k[0], 1.0], [k[1], 1.0], [k[2], 1.0]]))
    return cv2.multiply(sub, factor, dtype=cv2.CV_8U)


def _apply_region(frame: np.ndarray, roi: Roi, mask_small: np.ndarray, fn) -> None:  # noqa: ANN001
    """Run ``fn(sub, alpha) -> sub`` on the tight bounding box of a work-resolution mask only."""
    bx, by, bw, bh = cv2.boundingRect(cv2.compare(mask_small, 0.004, cv2.CMP_GT))
    if bw == 0:
        return
    s = roi.scale
    x0 = roi.x0 + int(bx / s) - 1
    x1 = roi.x0 + int((bx + bw) / s) + 2
    y0 = roi.y0 + int(by / s) - 1
    y1 = roi.y0 + int((by + bh) / s) + 2
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x0, roi.x0), max(y0, roi.y0), min(x1, roi.x1, w), min(y1, roi.y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    # Map the box back into work coordinates and resample the mask at full resolution.
    mw, mh = x1 - x0, y1 - y0
    m = np.float32([[1 / s, 0, -(x0 - roi.x0)], [0, 1 / s, -(y0 - roi.y0)]])
    alpha = cv2.warpAffine(mask_small, m, (mw, mh), flags=cv2.INTER_LINEAR)
    frame[y0:y1, x0:x1] = fn(frame[y0:y1, x0:x1], alpha)


def _eyeshadow_mask(p: np.ndarray, upper: list[int], brow: list[int], eye: list[int], shape: tuple[int, int],
                    fw: float) -> np.ndarray:
    """Lid area: between the upper lid line and a curve 40 % of the way up to the brow, eye cut out."""
    lid = p[upper]
    brow_pts = p[brow[:5]]
    # For each lid point take the brow point nearest in x, and go part of the way there.
    nearest = brow_pts[np.argmin(np.abs(lid[:, None, 0] - brow_pts[None, :, 0]), axis=1)]
    top = lid + (nearest - lid) * 0.5
    poly = np.concatenate([lid, top[::-1]])
    m = fill(np.zeros(shape, np.float32), poly)
    m = feather(m, fw * 0.02)
    eye_hole = fill(np.zeros(shape, np.float32), p[eye])
    return clip(m - feather(eye_hole, fw * 0.004) * 1.5, 0, 1)


def _liner(p: np.ndarray, upper: list[int], shape: tuple[int, int], fw: float, outer_first: bool) -> np.ndarray:
    """Upper-lid line, thicker towards the outer corner, with a short wing."""
    pts = p[upper]
    if not outer_first:
        pts = pts[::-1]
    m = np.zeros(shape, np.float32)
    n = len(pts)
    base = max(fw * 0.008, 0.6)
    for i in range(n - 1):
        thick = base * (1.0 + 1.4 * (1 - i / (n - 1)))
        a, b = pts[i], pts[i + 1]
        cv2.line(m, tuple(np.round(a * 8).astype(int)), tuple(np.round(b * 8).astype(int)), 1.0,
                 max(int(round(thick)), 1), cv2.LINE_AA, shift=3)
    outer, nxt = pts[0], pts[1]
    d = outer - nxt
    d /= max(math.hypot(*d), 1e-6)
    wing = outer + d * fw * 0.05 + np.array([0, -fw * 0.02], np.float32)
    cv2.line(m, tuple(np.round(outer * 8).astype(int)), tuple(np.round(wing * 8).astype(int)), 1.0,
             max(int(round(base * 1.5)), 1), cv2.LINE_AA, shift=3)
    return feather(m, max(fw * 0.003, 0.5))


def _cheek_centres(lm: np.ndarray) -> list[np.ndarray]:
    """Blush centres: on each cheekbone, a bit outwards."""
    return [lm[cheek, :2] * 0.75 + lm[outer, :2] * 0.25 for cheek, outer in ((R_CHEEK, R_FACE_SIDE),
                                                                             (L_CHEEK, L_FACE_SIDE))]


def _blush(frame: np.ndarray, c: np.ndarray, fw: float, amount: float, lab: np.ndarray) -> None:
    """The same blob at full resolution on its own box of the frame (makeup without a fused pass)."""
    sx, sy = fw * 0.085, fw * 0.058
    h, w = frame.shape[:2]
    x0, x1 = max(int(c[0] - 2.5 * sx), 0), min(int(c[0] + 2.5 * sx) + 1, w)
    y0, y1 = max(int(c[1] - 2.5 * sy), 0), min(int(c[1] + 2.5 * sy) + 1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) - c[0]) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) - c[1]) / sy) ** 2)
    frame[y0:y1, x0:x1] = lab_tint(frame[y0:y1, x0:x1], np.outer(gy, gx) * amount, lab, 0.3)


def _blush_delta(ctx: FaceContext, c_frame: np.ndarray, amount: float, lab: np.ndarray) -> None:
    """An axis-aligned Gaussian blob on its own box of the work grid (separable: an outer product of two
    1-D Gaussians — no mask to fill, feather or resample), as a delta of the fused pass."""
    s = ctx.roi.scale
    c = ctx.roi.to_work(c_frame)
    sx, sy = ctx.fw * 0.085 * s, ctx.fw * 0.058 * s
    w, h = ctx.roi.work_size
    x0, x1 = max(int(c[0] - 2.5 * sx), 0), min(int(c[0] + 2.5 * sx) + 1, w)
    y0, y1 = max(int(c[1] - 2.5 * sy), 0), min(int(c[1] + 2.5 * sy) + 1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    # Work pixel centres sit at (i + 0.5) / s - 0.5 frame pixels: sample the blob there.
    gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) + 0.5 - 0.5 * s - c[0]) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) + 0.5 - 0.5 * s - c[1]) / sy) ** 2)
    box = (x0, y0, x1, y1)
    sub = ctx.crop(box)
    sub8 = cv2.convertScaleAbs(sub)
    tinted = lab_tint(sub8, np.outer(gy, gx) * amount, lab, 0.3)
    ctx.add(cv2.subtract(tinted, sub8, dtype=cv2.CV_32F), box)


@register
class Makeup(Effect):
    name = "makeup"
    description = "lipstick, blush, brows, eyeshadow and eyeliner (Lab blending, texture kept)"
    params = {
        "lipstick": P(0.0, 0, 1, "lipstick amount (colour from lipstick_color; lip texture kept)"),
        "lipstick_color": Param("color", "#b4283c", "lipstick colour, '#rrggbb'"),
        "blush": P(0.0, 0, 1, "blush on the cheekbones"),
        "blush_color": Param("color", "#e0707a", "blush colour, '#rrggbb'"),
        "brows": P(0.0, 0, 1, "darker, fuller eyebrows"),
        "brows_color": Param("color", "#3a2a20", "eyebrow colour, '#rrggbb'"),
        "eyeshadow": P(0.0, 0, 1, "eyeshadow on the upper lids"),
        "eyeshadow_color": Param("color", "#7a4a6a", "eyeshadow colour, '#rrggbb'"),
        "eyeliner": P(0.0, 0, 1, "eyeliner along the upper lash line, with a small wing"),
    }

    def is_active(self, params: dict) -> bool:
        return any(params[k] > 0 for k in ("lipstick", "blush", "brows", "eyeshadow", "eyeliner"))

    roi_margins = (0.1, 0.1, 0.05)
    fused = True  # blush is part of the fused pass; the other regions run on the written-back frame

    def accumulate(self, ctx: FaceContext, params: dict, state: dict) -> None:
        """Blush: a soft, low-frequency tint on the cheeks, where beauty and age write too — computed on
        the work image and added to the fused pass instead of its own two full-resolution Lab passes."""
        if params["blush"] <= 0:
            return
        if ctx.delta is None:
            # Nothing else in the fused pass (makeup without beauty or age): a work image and a
            # write-back just for the blush cost more than its two full-resolution boxes.
            ctx.cache["blush_direct"] = True
            return
        lab = _lab_of(params["blush_color"])
        for c in _cheek_centres(ctx.lm):
            _blush_delta(ctx, c, 0.45 * params["blush"], lab)

    def finish(self, frame: np.ndarray, ctx: FaceContext, params: dict, state: dict) -> None:
        """Small full-resolution regions of the written-back frame; the ROI (the face's own box of the
        shared grid), work landmarks and face width come from the shared context."""
        lm, roi = ctx.lm, ctx.face_roi
        w, h = roi.work_size
        p = roi.to_work(lm)
        fw = ctx.fw * roi.scale
        shape = (h, w)
        if ctx.cache.pop("blush_direct", False):
            lab = _lab_of(params["blush_color"])
            for c in _cheek_centres(lm):
                _blush(frame, c, ctx.fw, 0.45 * params["blush"], lab)
        if params["eyeshadow"] > 0:
            bgr = color_bgr(params["eyeshadow_color"])
            for upper, brow, eye in ((RIGHT_EYE_UPPER, RIGHT_BROW, RIGHT_EYE),
                                     (LEFT_EYE_UPPER, LEFT_BROW, LEFT_EYE)):
                m = _eyeshadow_mask(p, upper, brow, eye, shape, fw)
                _apply_region(frame, roi, m * 0.8 * params["eyeshadow"],
                              lambda s, a, c=bgr: multiply_tint(s, a, tuple(min(255, int(v * 1.6)) for v in c)))
        if params["brows"] > 0:
            m = np.zeros(shape, np.float32)
            for brow in (RIGHT_BROW, LEFT_BROW):
                fill(m, p[brow])
            m = feather(cv2.dilate(m, np.ones((2, 2), np.uint8)), fw * 0.008)
            bgr = color_bgr(params["brows_color"])

            def brows_fn(s: np.ndarray, a: np.ndarray, c: tuple = bgr) -> np.ndarray:
                # Darken hair more than skin between hairs: weight by how dark the pixel already is.
                grey = cv2.cvtColor(s, cv2.COLOR_BGR2GRAY).astype(np.float32)
                hair = clip((200.0 - grey) / 120.0, 0.35, 1.0)
                return multiply_tint(s, a * hair, tuple(min(255, int(v * 2.2)) for v in c))

            _apply_region(frame, roi, m * 0.75 * params["brows"], brows_fn)
        if params["eyeliner"] > 0:
            m = np.maximum(_liner(p, RIGHT_EYE_UPPER, shape, fw, True), _liner(p, LEFT_EYE_UPPER, shape, fw, True))
            _apply_region(frame, roi, clip(m, 0, 1) * 0.9 * params["eyeliner"],
                          lambda s, a: multiply_tint(s, a, (25, 20, 20)))
        if params["lipstick"] > 0:
            shared = ctx.masks_if_made()
            if shared is not None and fw * 0.006 >= 0.6:
                m = shared["lips"]  # the same ring, feathered the same, that beauty or age already filled
            else:
                m = fill(np.zeros(shape, np.float32), p[LIPS_OUTER])
                m -= fill(np.zeros(shape, np.float32), p[INNER_LIP_LOOP])
                m = feather(clip(m, 0, 1), max(fw * 0.006, 0.6))
            lab = _lab_of(params["lipstick_color"])
            _apply_region(frame, roi, m * params["lipstick"], lambda s, a, lab=lab: lab_tint(s, a, lab, 0.6))
