"""age: older (wrinkles, spots, sallow skin, gray hair and brows, sagging) or younger (smoother, lifted).

* Wrinkles, under-eye bags, age spots and skin roughness come from the canonical UV texture
  (``agetexture.py``) warped onto the face each frame (``uvspace.UVMapper``) and applied as
  multiplicative shading, so they follow pose and expression.
* Sallow tone, gray hair/brows and the young look's smoothing are one delta image at work resolution.
* Sagging (jowls, mouth corners, upper lids) and lifting are local warps like beauty's reshaping.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from ..tracking.types import Face
from .agetexture import age_texture
from .base import Effect, P, register
from .context import FaceContext
from .regions import LEFT_BROW, RIGHT_BROW, Roi, clip, face_width, feather, fill
from .skin import downscale, lab_distance, sigmoid, skin_likeness, smooth_skin, times_mask
from .uvspace import cached_mapper, prune
from .warp import WarpField

SAG_POINTS = {  # landmark: (down, outward) in face widths at full sag
    172: (0.035, 0.012), 136: (0.03, 0.008), 397: (0.035, 0.012), 365: (0.03, 0.008),  # jowls
    61: (0.018, 0.0), 291: (0.018, 0.0),  # mouth corners
    205: (0.02, 0.0), 425: (0.02, 0.0),  # cheeks
}
LID_CREASE = (27, 257)  # above the upper lids: skin that droops over the lid with age
SILVER_DELTA = np.hstack([np.full((3, 3), 0.2) - np.eye(3), [[88.0], [96.0], [100.0]]]).astype(np.float32)


@register
class Age(Effect):
    name = "age"
    description = "older (wrinkles in UV space, spots, gray hair, sagging) or younger (smooth, lifted)"
    params = {
        "years": P(0.0, -20, 50, "years to add (negative: younger)"),
        "wrinkles": P(1.0, 0, 2, "wrinkle depth multiplier"),
        "gray": P(1.0, 0, 1, "how much hair and brows turn gray (scaled by years)"),
        "sag": P(1.0, 0, 2, "sagging (older) or lifting (younger) multiplier"),
    }

    def is_active(self, params: dict) -> bool:
        return params["years"] != 0

    roi_margins = (0.35, 0.6, 0.1)  # hair above and beside the face is grayed too
    fused = True

    def accumulate(self, ctx: FaceContext, params: dict, state: dict) -> None:
        """Tone, graying, smoothing (young) and wrinkles as deltas of the fused pass."""
        years = params["years"]
        old = float(clip(years / 50.0, 0, 1))
        young = float(clip(-years / 20.0, 0, 1))
        key = (round(old, 2), params["wrinkles"])
        if old > 0 and state.get("tex_key") != key:
            state["tex"], state["tex_key"] = age_texture(old, params["wrinkles"]), key
        toned_half = self._tone(ctx, old, young, params["gray"])
        if old > 0 and toned_half is not None:
            self._wrinkles(ctx, state, toned_half)

    def end_frame(self, faces: list[Face], state: dict) -> None:
        prune(state.setdefault("uv", {}), {f.id for f in faces})

    def warps(self, params: dict) -> bool:
        return params["years"] != 0 and params["sag"] > 0

    def add_warp(self, field: WarpField, face: Face, params: dict) -> None:
        """Sagging (older) or lifting (younger) as local warps."""
        old = float(clip(params["years"] / 50.0, 0, 1))
        young = float(clip(-params["years"] / 20.0, 0, 1))
        sag = params["sag"]
        lm = face.landmarks
        fw = face_width(lm)
        cx = float(lm[168, 0])
        down = (lm[152, :2] - lm[168, :2]) / max(math.hypot(*(lm[152, :2] - lm[168, :2])), 1e-6)
        side = np.array([down[1], -down[0]], np.float32)  # perpendicular to the face axis
        for idx, (dn, out) in SAG_POINTS.items():
            p = lm[idx, :2]
            s = np.sign(p[0] - cx)
            if old > 0:
                move = down * dn * old + side * s * out * old
            else:  # lift: up and slightly in, a little weaker than the sag
                move = -down * dn * 0.8 * young - side * s * out * young
            field.translate(p, p + move * fw * sag, fw * (0.15 if dn > 0.025 else 0.09))
        if old > 0:
            for idx in LID_CREASE:
                p = lm[idx, :2]
                field.translate(p, p + down * 0.012 * old * fw * sag, fw * 0.06)
        else:
            for eye in ((33, 133), (263, 362)):
                c = lm[list(eye), :2].mean(axis=0)
                field.scale(c, math.hypot(*(lm[eye[0], :2] - lm[eye[1], :2])) * 0.9, 0.08 * young * sag)

    @staticmethod
    def _tone(ctx: FaceContext, old: float, young: float, gray: float) -> np.ndarray | None:
        """Skin tone, smoothing and graying as one delta, added to the fused pass. Returns the toned work
        image at half resolution (uint8) for the wrinkles' skin test, when the old look made one."""
        lm = ctx.lm
        # Tone and graying are low-frequency changes: half the work resolution is plenty; the young
        # look's skin smoothing needs the full work resolution.
        if young > 0:
            roi, small = ctx.roi, ctx.current()
            masks = {k: ctx.pad(v, ctx.face_box) for k, v in ctx.masks(skin=True).items()}
        else:
            roi, small, masks = replace(ctx.roi, scale=ctx.roi.scale * 0.5), downscale(ctx.current(), 0.5), \
                ctx.half_masks()
        lab = cv2.cvtColor(cv2.convertScaleAbs(small), cv2.COLOR_BGR2LAB)  # cheeks' colour and hair test
        skin_lab = ctx.cheek_lab(lab, roi)
        fw = face_width(lm) * roi.scale
        delta = np.zeros_like(small)
        skin = feather(masks["face"], fw * 0.05) * (1.0 - masks["lips"])
        if old > 0:
            # Sallow: less saturated (towards the pixel's grey by 25 % · old), yellower, slightly darker —
            # a linear colour map, so its delta (map - identity) is one cv2.transform of the work image.
            k = 1.0 - 0.25 * old
            sallow = np.diag([0.93, 0.98, 1.0]) @ (k * np.eye(3) + (1.0 - k) / 3.0) * (1.0 - 0.04 * old)
            delta = times_mask(cv2.transform(small, (sallow - np.eye(3)).astype(np.float32)), skin)
            g = gray * float(clip((old - 0.15) / 0.55, 0, 1))
            if g > 0:
                hair = hair_mask(lab.astype(np.float32), lm, roi, masks, skin_lab)
                brows = np.zeros_like(hair)
                for b in (RIGHT_BROW, LEFT_BROW):
                    fill(brows, roi.to_work(lm[b]))
                brows = feather(brows, fw * 0.01)
                m = np.maximum(hair, brows * 0.6) * g
                # Silver: desaturated, lifted towards a warm light gray, strands' contrast kept:
                # 0.6 · grey + (88, 96, 100) - pixel, again one affine colour map.
                delta = cv2.add(delta, times_mask(cv2.transform(small, SILVER_DELTA), m))
        if young > 0:
            smoothed = smooth_skin(small, lm, roi, 0.5 + 0.5 * young)
            delta += (smoothed - small) * (masks["skin"] * min(1.0, 1.2 * young))[..., None]
            if roi.scale < 0.95:
                ctx.add_damp(masks["skin"] * (0.6 * young))
            target = clip(small * np.array([1.0, 1.02, 1.06], np.float32) + 6.0, 0, 255)  # fresh, rosy
            delta += (target - small) * (skin * young * 0.6)[..., None]
            ctx.add(delta)
            return None
        toned = cv2.add(small, delta, dtype=cv2.CV_8U)
        ctx.add(cv2.resize(delta, ctx.roi.work_size, interpolation=cv2.INTER_LINEAR))
        return toned

    @staticmethod
    def _wrinkles(ctx: FaceContext, state: dict, toned_half: np.ndarray) -> None:
        """Texture shading computed at work resolution (creases are soft, ~1 px there) on the face's box
        of the shared grid. It used to multiply the full-resolution ROI; in the fused pass it is a delta
        (factor - 1) x the toned work image, added with the others — one write-back instead of three."""
        box = ctx.sub_box(0.03, 0.03, 0.03)
        if box is None:
            return
        x0, y0, x1, y1 = box
        broi = ctx.box_roi(box)
        size = (x1 - x0, y1 - y0)
        mapper = cached_mapper(state.setdefault("uv", {}), ctx.face.id, ctx.lm, broi)
        layer = mapper.sample(state["tex"], size)  # (h, w, 2): shading, spot alpha
        # Only on skin: bangs, glasses or a beard over the mesh keep their look. A soft colour mask at
        # half the work resolution (the toned image age made there anyway), upsampled.
        like = skin_likeness(toned_half[y0 // 2:y1 // 2, x0 // 2:x1 // 2], ctx.cheek_lab())
        if like.shape[::-1] != size:
            like = cv2.resize(like, size, interpolation=cv2.INTER_LINEAR)
        # (1 + shading) x (1 - spot · (1 - pigment)) per channel; spots are darker and browner.
        # q = 1 + shading, r = q · spot -> factor_c - 1 = q - 1 - pigment_c · r: one 2->3 channel transform.
        q = layer[..., 0] * like
        r = (1.0 + q) * layer[..., 1] * like
        pigment = np.float32([[1.0, -0.45], [1.0, -0.32], [1.0, -0.18]])
        factor_minus_1 = cv2.transform(cv2.merge([q, r]), pigment)
        ctx.add(cv2.multiply(ctx.crop(box), factor_minus_1), box)


def hair_mask(lab: np.ndarray, lm: np.ndarray, roi: Roi, masks: dict[str, np.ndarray], skin_c: np.ndarray
              ) -> np.ndarray:
    """Soft hair mask at work resolution, without a hair model: a band around the top and sides of the
    face (not below the ears), keeping pixels whose colour is far from the cheeks' skin and close to
    the colour sampled just above the forehead."""
    h, w = lab.shape[:2]
    p = roi.to_work(lm)
    fw = face_width(lm) * roi.scale
    center = p[[10, 152]].mean(axis=0)
    fh = float(math.hypot(*(p[152] - p[10])))
    band = np.zeros((h, w), np.float32)
    cv2.ellipse(band, ((float(center[0]), float(center[1] - 0.15 * fh)), (fw * 1.7, fh * 1.6), 0.0), 1.0, -1)
    band[int(min(p[234, 1], p[454, 1]) + 0.1 * fh):] = 0  # nothing below ear level (neck, collar)
    band = clip(band - cv2.dilate(masks["face"], np.ones((3, 3), np.uint8)), 0, 1)
    top = p[10] - np.array([0, 0.06 * fh])
    hair_box = lab[max(int(top[1] - fw * 0.05), 0):max(int(top[1]), 1),
                   max(int(top[0] - fw * 0.12), 0):max(int(top[0] + fw * 0.12), 1)]
    if hair_box.size == 0:
        return band * 0
    hair_c = np.median(hair_box.reshape(-1, 3), axis=0)
    d_skin = lab_distance(lab, skin_c)
    # Hair has highlights and shadows of one hue: lightness differences count a third as much.
    d_hair = lab_distance(lab, hair_c, (0.35, 1.0, 1.0))
    like = sigmoid(d_skin, 18.0, 5.0) * sigmoid(d_hair, 24.0, -5.0)
    m = feather(band * like, fw * 0.015)
    # Fade out towards the ROI border so a band that reaches it never shows the ROI's straight edge.
    ty = clip(np.minimum(np.arange(h), h - 1 - np.arange(h)) / max(h * 0.08, 1), 0, 1).astype(np.float32)
    tx = clip(np.minimum(np.arange(w), w - 1 - np.arange(w)) / max(w * 0.08, 1), 0, 1).astype(np.float32)
    return m * np.outer(ty, tx)
