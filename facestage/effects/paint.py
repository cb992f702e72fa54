"""paint: a texture in face-mesh UV space (face paint, tattoo) warped onto the face.

Designs are RGBA images in canonical UV space (512x512, see ``uvspace.canonical_uv``); shipped ones are
drawn by code from landmark positions, a custom one can be any RGBA PNG painted over the UV template
(``python -m facestage.effects.paint template.png`` writes the template). The paint is blended so the
face's own shading shows through (multiplied by the skin's relative luminance), like real face paint.
"""

from __future__ import annotations

import sys
from functools import cache

import cv2
import numpy as np

from ..errors import ConfigError
from ..tracking.types import Face
from .base import Effect, P, Param, read_param_image, register
from .regions import FACE_OVAL, LEFT_EYE, LIPS_OUTER, RIGHT_EYE, clip, face_roi
from .skin import cheek_lab, downscale, skin_likeness
from .uvspace import TEX_SIZE, cached_mapper, canonical_uv, prune, pyramid, triangles, uv_point

DESIGNS = ("tiger", "hearts", "cat", "mask")


def _p(a: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(a, np.float64) * 8).astype(np.int32).reshape(-1, 1, 2)


def _wedge(img: np.ndarray, base: np.ndarray, tip: np.ndarray, width: float, color: tuple) -> None:
    """A tapered, slightly curved stripe: ``width`` wide at ``base``, pointed at ``tip``."""
    d = tip - base
    n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6)
    mid = (base + tip) / 2 + n * np.linalg.norm(d) * 0.08  # gentle curve
    t = np.linspace(0, 1, 12)[:, None]
    spine = (1 - t) ** 2 * base + 2 * (1 - t) * t * mid + t**2 * tip
    half = (1 - t) * width / 2
    poly = np.concatenate([spine + n * half, (spine - n * half)[::-1]])
    cv2.fillPoly(img, [_p(poly)], color, cv2.LINE_AA, shift=3)


@cache
def design(name: str) -> list[np.ndarray]:
    """Mip pyramid of a shipped design as float32 BGRA (alpha 0..1)."""
    n = TEX_SIZE
    img = np.zeros((n, n, 4), np.float32)
    uv = canonical_uv() * (n - 1)
    oval = np.zeros((n, n), np.float32)
    cv2.fillPoly(oval, [_p(uv[FACE_OVAL])], 1.0, cv2.LINE_AA, shift=3)
    if name == "tiger":
        img[..., :3] = (25, 125, 240)  # orange base over the whole face
        img[..., 3] = cv2.erode(oval, np.ones((5, 5), np.uint8)) * 0.85
        white = (235, 240, 245, 0.9)
        # White muzzle round the mouth and chin, white patches over the eyes.
        cv2.ellipse(img, (tuple(map(float, uv_point([13, 14]) + [0, 8])), (230, 170), 0), white, -1, cv2.LINE_AA)
        for brow in (105, 334):
            cv2.ellipse(img, (tuple(map(float, uv_point(brow) + [0, 12])), (110, 46), 0), white, -1, cv2.LINE_AA)
        black = (20, 20, 25, 0.95)
        top, chin = uv_point(10), uv_point(152)
        # Forehead: wedges from the hairline pointing down, the middle one longest.
        for dx, length in ((-70, 70), (-35, 95), (0, 110), (35, 95), (70, 70)):
            base = top + [dx, -4]
            _wedge(img, base, base + [dx * 0.15, length], 22, black)
        # Cheeks: wedges from each side of the face pointing to the nose.
        for side_idx, sign in ((234, -1), (454, 1)):
            side = uv_point(side_idx)
            for dy, length in ((-60, 120), (-5, 150), (50, 130), (100, 95)):
                base = side + [sign * 6, dy]
                _wedge(img, base, base + [-sign * length, dy * 0.25 + 10], 26, black)
        # Chin stripes and a black nose.
        for dx in (-28, 28):
            _wedge(img, chin + [dx, 4], chin + [dx * 0.6, -40], 16, black)
        tip = uv_point(4)
        cv2.fillPoly(img, [_p(np.array([tip + [-26, -14], tip + [26, -14], tip + [0, 16]]))], black, cv2.LINE_AA, 3)
        img[..., 3] *= oval
    elif name == "hearts":
        for c, s in ((uv_point(50), 34), (uv_point(280), 34), (uv_point(337) + [0, -10], 18)):
            t = np.linspace(0, 2 * np.pi, 60)
            hx = 16 * np.sin(t) ** 3
            hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
            pts = np.stack([hx, hy], axis=1) * (s / 16) + c
            cv2.fillPoly(img, [_p(pts)], (70, 40, 220, 0.85), cv2.LINE_AA, shift=3)
    elif name == "cat":
        tip = uv_point(4)
        cv2.fillPoly(img, [_p(np.array([tip + [-18, -10], tip + [18, -10], tip + [0, 10]]))],
                     (30, 30, 30, 0.95), cv2.LINE_AA, shift=3)
        for side in (-1, 1):
            base = uv_point(205 if side < 0 else 425)
            for dy in (-14, 0, 14):
                a, b = base + [side * -20, dy * 0.5], base + [side * 70, dy * 1.8]
                cv2.line(img, tuple(_p(a).ravel()), tuple(_p(b).ravel()), (30, 30, 30, 0.9), 4, cv2.LINE_AA, 3)
    elif name == "mask":  # a masquerade band round the eyes
        band = np.concatenate([uv[[70, 63, 105, 66, 107, 9, 336, 296, 334, 293, 300]] + [0, -12],
                               uv[[345, 346, 347, 348, 349, 350, 6, 121, 120, 119, 118, 117, 116]] + [0, 8]])
        hull = cv2.convexHull(band.astype(np.float32)).reshape(-1, 2)
        cv2.fillPoly(img, [_p(hull)], (110, 30, 90, 0.92), cv2.LINE_AA, shift=3)
        for hole in (RIGHT_EYE, LEFT_EYE):
            c = uv[hole].mean(axis=0)
            cv2.ellipse(img, (tuple(map(float, c)), (70, 40), 0), (0, 0, 0, 0), -1, cv2.LINE_AA)
        cv2.polylines(img, [_p(hull)], True, (60, 200, 230, 1.0), 4, cv2.LINE_AA, shift=3)
    else:
        raise ConfigError(f"unknown paint design {name!r}; available: {', '.join(DESIGNS)}")
    img[..., 3] = cv2.GaussianBlur(img[..., 3], (0, 0), 1.2)
    # Eyes and mouth stay unpainted.
    holes = np.zeros((n, n), np.float32)
    for hole in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER if name == "tiger" else []):
        if hole:
            cv2.fillPoly(holes, [_p(uv[hole])], 1.0, cv2.LINE_AA, shift=3)
    img[..., 3] *= 1.0 - cv2.GaussianBlur(cv2.dilate(holes, np.ones((7, 7), np.uint8)), (0, 0), 2)
    return pyramid(img)


def load_design(path: str) -> list[np.ndarray]:
    img = read_param_image("paint.image", path, cv2.IMREAD_UNCHANGED)
    if img.ndim != 3 or img.shape[2] != 4:
        raise ConfigError(f"paint.image: {path!r} is not an RGBA PNG in face UV space")
    img = cv2.resize(img, (TEX_SIZE, TEX_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    img[..., 3] /= 255.0
    return pyramid(img)


def _bgra8(tex: np.ndarray) -> np.ndarray:
    """float32 BGRA (colour 0..255, alpha 0..1) -> uint8 BGRA (alpha 0..255)."""
    out = np.empty(tex.shape, np.uint8)
    out[..., :3] = np.clip(tex[..., :3] + 0.5, 0, 255)
    out[..., 3] = np.clip(tex[..., 3] * 255.0 + 0.5, 0, 255)
    return out


def uv_template(size: int = TEX_SIZE) -> np.ndarray:
    """The face-mesh wireframe in UV space, to paint custom designs over."""
    img = np.full((size, size, 3), 255, np.uint8)
    uv = canonical_uv() * (size - 1)
    for t in triangles():
        cv2.polylines(img, [_p(uv[t])], True, (180, 180, 180), 1, cv2.LINE_AA, shift=3)
    for loop in (FACE_OVAL, RIGHT_EYE, LEFT_EYE, LIPS_OUTER):
        cv2.polylines(img, [_p(uv[loop])], True, (40, 40, 200), 2, cv2.LINE_AA, shift=3)
    return img


@register
class Paint(Effect):
    name = "paint"
    description = "face paint or tattoo: an RGBA texture in face-mesh UV space warped onto the face"
    params = {
        "amount": P(0.0, 0, 1, "paint opacity (0 = off)"),
        "design": Param("choice", "tiger", "shipped design", choices=DESIGNS),
        "image": Param("path", "", "custom RGBA PNG in face UV space (overrides design)"),
    }

    def is_active(self, params: dict) -> bool:
        return params["amount"] > 0

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        key = (params["image"], params["design"])
        if state.get("tex_key") != key:  # read/draw once, not every frame
            tex = load_design(params["image"]) if params["image"] else design(params["design"])
            state["tex"], state["tex_key"] = [_bgra8(t) for t in tex], key
        for face in faces:
            lm = face.landmarks
            roi = face_roi(lm, frame.shape, margin=0.02, top=0.02, bottom=0.02)
            if roi is None:
                continue
            # uint8 BGRA texture: the full-resolution remap is 4-5x cheaper than on float32.
            layer = cached_mapper(state.setdefault("uv", {}), face.id, lm, roi).sample(state["tex"])
            sl = roi.slice()
            sub = frame[sl]
            # Paint goes on skin, not on bangs or glasses over the mesh (decided at work resolution).
            small = downscale(sub, roi.scale)
            like = skin_likeness(small, cheek_lab(small, lm, roi), tolerance=34.0)
            if roi.scale < 1.0:
                like = roi.upsample(like)
            a = layer[..., 3].astype(np.float32) * (params["amount"] / 255.0) * like
            # Keep the face's shading: paint colour x (pixel luminance / mean face luminance).
            grey = cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY).astype(np.float32)
            inside = a > 0.05
            mean = float(grey[inside].mean()) if inside.any() else 128.0
            shade = clip(grey * (1.0 / max(mean, 1.0)), 0.45, 1.35)
            paint = cv2.multiply(cv2.cvtColor(layer, cv2.COLOR_BGRA2BGR), cv2.merge([shade, shade, shade]),
                                 dtype=cv2.CV_8U)
            frame[sl] = cv2.blendLinear(paint, sub, a, 1.0 - a)
        prune(state.setdefault("uv", {}), {f.id for f in faces})
        return frame


if __name__ == "__main__":  # python -m facestage.effects.paint template.png
    out = sys.argv[1] if len(sys.argv) > 1 else "uv_template.png"
    cv2.imwrite(out, uv_template())
    print(out)
