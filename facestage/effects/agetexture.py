"""The canonical aging texture: wrinkles, under-eye bags, age spots and skin roughness drawn once in
face-mesh UV space (512x512). Every feature is placed from the canonical UV of named landmarks, so it
sits on the same anatomy on every face and follows pose and expression through ``UVMapper``.

Channels (float32): crease depth (darkens), crease highlight (the lit side of a fold), age spots,
roughness (zero-mean band-passed noise). Fixed seeds: the texture is identical on every run.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from .regions import FACE_OVAL, LEFT_EYE, LIPS_OUTER, RIGHT_EYE
from .uvspace import TEX_SIZE, canonical_uv, pyramid, uv_point

S = 8  # sub-pixel shift for cv2 drawing


def _pts(a: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(a, np.float64) * S).astype(np.int32).reshape(-1, 1, 2)


def _curve(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 24) -> np.ndarray:
    """Quadratic Bezier through control point p1."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _line(img: np.ndarray, pts: np.ndarray, thick: int, value: float = 1.0) -> None:
    cv2.polylines(img, [_pts(pts)], False, value, thick, cv2.LINE_AA, shift=3)


@cache
def age_channels() -> dict[str, np.ndarray]:
    n = TEX_SIZE
    crease = np.zeros((n, n), np.float32)
    fine = np.zeros((n, n), np.float32)  # thinner, shallower lines
    U = uv_point  # noqa: N806

    # Forehead: four gently arched lines between the brows' top and the hairline.
    brow_y = (U(105)[1] + U(334)[1]) / 2
    top_y = U(10)[1]
    xl, xr = U(54)[0] + 14, U(284)[0] - 14
    for k, frac in enumerate((0.16, 0.31, 0.46, 0.61)):
        y = brow_y - frac * (brow_y - top_y)
        xs = np.linspace(xl + 8 * k, xr - 8 * k, 40)
        wave = 2.2 * np.sin((xs - xl) / (xr - xl) * np.pi * (3 + k)) - 6 * np.sin((xs - xl) / (xr - xl) * np.pi)
        _line(crease, np.stack([xs, y + wave], axis=1), 3, 0.9 - 0.1 * k)
    # Frown lines between the brows.
    g = U(9)
    for dx in (-9, 9):
        _line(fine, np.array([[g[0] + dx, g[1] - 10], [g[0] + dx * 0.8, g[1] + 10]]), 4, 0.4)
    # Crow's feet: a fan of rays from each outer eye corner.
    for corner, sign in ((33, -1), (263, 1)):
        c = U(corner)
        start = c + np.array([sign * 7, 0])
        for ang in (-30, -8, 14, 36):
            a = np.deg2rad(ang)
            d = np.array([sign * np.cos(a), np.sin(a)])
            mid = start + d * 14 + np.array([0, 3])
            _line(crease, _curve(start, mid, start + d * 32), 2, 0.9)
    # Under-eye bags: a crease arc below each lower lid and a lit bulge above it.
    bag_hi = np.zeros((n, n), np.float32)
    for lower in ([33, 7, 163, 144, 145, 153, 154, 155, 133], [263, 249, 390, 373, 374, 380, 381, 382, 362]):
        lid = canonical_uv()[lower] * (n - 1)
        arc = lid + np.array([0, 15]) + np.array([0, 6]) * np.sin(np.linspace(0, np.pi, len(lid)))[:, None]
        _line(crease, arc, 3, 0.85)
        _line(fine, lid + np.array([0, 26]), 2, 0.6)
        _line(bag_hi, lid + np.array([0, 8]), 7, 1.0)
    # Nasolabial folds: from the nose wing round the mouth corner.
    for wing, corner, sign in ((129, 61, -1), (358, 291, 1)):
        a = U(wing) + np.array([sign * 4, 4])
        b = U(corner) + np.array([sign * 14, 16])
        ctrl = (a + b) / 2 + np.array([sign * 12, 0])
        _line(crease, _curve(a, ctrl, b), 4, 1.0)
    # Marionette lines from the mouth corners down; fine vertical lines above the upper lip.
    for corner, sign in ((61, -1), (291, 1)):
        c = U(corner) + np.array([sign * 5, 6])
        _line(crease, _curve(c, c + np.array([sign * 4, 20]), c + np.array([sign * 2, 44])), 3, 0.8)
    for lip in (37, 39, 0, 267, 269):
        p = U(lip)
        _line(fine, np.array([p + [0, -3], p + [1, -15]]), 1, 0.8)

    crease = cv2.GaussianBlur(crease, (0, 0), 1.6)
    fine = cv2.GaussianBlur(fine, (0, 0), 1.0)
    # Light falls from above: the upper side of each fold is lit, the fold itself is dark.
    shifted = np.roll(crease, -3, axis=0)
    highlight = np.clip(shifted - crease, 0, None) + cv2.GaussianBlur(bag_hi, (0, 0), 3.0) * 0.5

    # Skin area in UV (face oval minus eyes and lips), for spots and roughness.
    uvp = canonical_uv() * (n - 1)
    skin = np.zeros((n, n), np.float32)
    cv2.fillPoly(skin, [_pts(uvp[FACE_OVAL])], 1.0, cv2.LINE_AA, shift=3)
    for hole in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER):
        cv2.fillPoly(skin, [_pts(uvp[hole])], 0.0, cv2.LINE_AA, shift=3)
    skin = cv2.GaussianBlur(cv2.erode(skin, np.ones((9, 9), np.uint8)), (0, 0), 4)

    rng = np.random.default_rng(70)
    spots = np.zeros((n, n), np.float32)
    placed = 0
    while placed < 34:
        x, y = rng.uniform(0.08, 0.92, 2) * n
        if skin[int(y), int(x)] < 0.9:
            continue
        # Age spots cluster on the upper cheeks, temples and forehead.
        if rng.random() < 0.5 and y > uv_point(2)[1]:
            continue
        r = rng.uniform(2.0, 6.5)
        cv2.ellipse(spots, ((float(x), float(y)), (2 * r, 2 * r * rng.uniform(0.7, 1.0)), rng.uniform(0, 180)),
                    float(rng.uniform(0.4, 1.0)), -1, cv2.LINE_AA)
        placed += 1
    spots = cv2.GaussianBlur(spots, (0, 0), 1.5)

    noise = rng.standard_normal((n, n)).astype(np.float32)
    # Coarse-ish crepey texture (a few texels), not per-texel noise: it must survive mip-mapping.
    rough = (cv2.GaussianBlur(noise, (0, 0), 1.5) - cv2.GaussianBlur(noise, (0, 0), 4.0)) * skin * 3.0
    return {"crease": (crease + fine) * skin, "highlight": highlight * skin, "spots": spots * skin,
            "rough": rough}


def age_texture(intensity: float, wrinkles: float) -> list[np.ndarray]:
    """Mip pyramid of (512, 512, 2) float32 [multiplicative shading - 1, age-spot alpha] for an aging
    intensity 0..1."""
    ch = age_channels()
    w = wrinkles * intensity
    shade = -0.5 * w * ch["crease"] + 0.14 * w * ch["highlight"] + 0.06 * w * ch["rough"]
    spot = np.clip((intensity - 0.25) / 0.75, 0, 1) * 0.45 * ch["spots"]
    return pyramid(np.dstack([shade, spot]).astype(np.float32))
