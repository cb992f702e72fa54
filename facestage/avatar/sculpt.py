"""Signed-distance fields of the photo avatar's bust and top (the SDF heads and hair styles are retired)."""

from __future__ import annotations

import numpy as np

from .sdf import capsule, ellipsoid, rounded_cylinder_y, smax, smin, smoothstep

# Shoulders, chest and neckline sit this much higher than first sculpted: the neck read as too long.
BODY_LIFT = 0.012


def neckline_y(p: np.ndarray, style: str) -> np.ndarray:
    x, z = np.abs(p[:, 0]), p[:, 2]
    front = smoothstep(-0.02, 0.04, z)
    if style == "vneck":
        dip = 0.07 * np.clip(1 - x / 0.07, 0, 1)
    elif style == "crew":
        dip = 0.018 * np.clip(1 - (x / 0.06) ** 2, 0, 1)
    else:  # "open" collar
        dip = 0.05 * np.clip(1 - x / 0.09, 0, 1)
    return -0.175 + BODY_LIFT - dip * front


def body_sdf(p: np.ndarray, clothing: str) -> np.ndarray:
    bottom = -0.50 - p[:, 1]  # the bust's cut stays put
    p = p - np.array([0.0, BODY_LIFT, 0.0])
    neck = rounded_cylinder_y(p, (0, -0.19, -0.02), 0.047, 0.06, 0.01)
    shoulders = ellipsoid(p, (0, -0.255, -0.02), (0.20, 0.072, 0.095))
    chest = ellipsoid(p, (0, -0.36, -0.01), (0.165, 0.16, 0.092))
    trap = capsule(p, (-0.10, -0.205, -0.03), (0.10, -0.205, -0.03), 0.042)
    d = smin(smin(shoulders, chest, 0.05), trap, 0.04)
    d = smin(d, neck, 0.045)
    return np.maximum(d, bottom)


def clothing_sdf(p: np.ndarray, clothing: str) -> np.ndarray:
    """A garment a few millimetres proud of the skin below the neckline."""
    skin = body_sdf(p, clothing)
    line = neckline_y(p, clothing)
    d = smax(skin - 0.008, p[:, 1] - line, 0.002)
    return np.maximum(d, -0.495 - p[:, 1])
