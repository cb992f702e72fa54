"""Sculpted signed-distance fields of the procedural heads, hair styles and clothed busts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_layout import FaceLayout
from .sdf import capsule, ellipsoid, rounded_cylinder_y, smax, smin, smoothstep, sphere


@dataclass(frozen=True)
class HeadShape:
    jaw_width: float = 1.0
    cheek: float = 1.0
    nose: float = 1.0
    chin: float = 1.0


def skull_sdf(p: np.ndarray, s: HeadShape) -> np.ndarray:
    """Head without the mouth opening or eye sockets (also the base that hair is grown from)."""
    jw = s.jaw_width
    d = ellipsoid(p, (0, 0.028, -0.012), (0.077, 0.093, 0.094))
    d = smin(d, ellipsoid(p, (0, -0.022, 0.018), (0.063 * jw, 0.083, 0.068)), 0.035)
    # Jaw line and chin.
    d = smin(d, capsule(p, (-0.034 * jw, -0.064, 0.010), (0.034 * jw, -0.064, 0.010), 0.027), 0.03)
    d = smin(d, ellipsoid(p, (0, -0.093, 0.048), (0.022 * s.chin, 0.018, 0.02)), 0.022)
    # Cheekbones.
    for side in (-1, 1):
        d = smin(d, ellipsoid(p, (side * 0.040, -0.008, 0.048), (0.022 * s.cheek, 0.018, 0.021)), 0.02)
    # Brow ridge.
    d = smin(d, capsule(p, (-0.040, 0.040, 0.063), (0.040, 0.040, 0.063), 0.010), 0.02)
    # Nose: bridge, tip, wings.
    n = s.nose
    d = smin(d, capsule(p, (0, 0.028, 0.074), (0, -0.006, 0.095 + 0.004 * n), 0.0075 * n), 0.012)
    d = smin(d, sphere(p, (0, -0.010, 0.094 + 0.004 * n), 0.0105 * n), 0.008)
    for side in (-1, 1):
        d = smin(d, sphere(p, (side * 0.0105 * n, -0.016, 0.084), 0.0075 * n), 0.006)
    # Lips.
    d = smin(d, capsule(p, (-0.016, -0.044, 0.080), (0.016, -0.044, 0.080), 0.0065), 0.008)
    d = smin(d, capsule(p, (-0.014, -0.057, 0.077), (0.014, -0.057, 0.077), 0.0075), 0.008)
    # Ears.
    for side in (-1, 1):
        ear = ellipsoid(p, (side * 0.077, 0.004, -0.012), (0.012, 0.029, 0.018))
        d = smin(d, ear, 0.008)
        d = smax(d, -ellipsoid(p, (side * 0.088, 0.004, -0.008), (0.006, 0.018, 0.010)), 0.003)
    # Neck stub (the body's neck continues it).
    d = smin(d, rounded_cylinder_y(p, (0, -0.15, -0.02), 0.051, 0.068, 0.01), 0.03)
    return d


def mouth_cavity_sdf(p: np.ndarray, f: FaceLayout) -> np.ndarray:
    """The mouth interior plus the lens-shaped slot between the lips that opens into it."""
    cav = ellipsoid(p, (0, f.mouth_y - 0.006, 0.050), (0.024, 0.018, 0.030))
    x = np.abs(p[:, 0]) / f.mouth_half
    half_gap = 0.0010 + 0.0012 * np.clip(1 - x * x, 0, 1)
    slot = np.maximum.reduce([np.abs(p[:, 1] - f.mouth_y) - half_gap * (x < 1),
                              (x - 1) * f.mouth_half, 0.055 - p[:, 2]])
    return smin(cav, slot, 0.002)


def head_sdf(p: np.ndarray, s: HeadShape, f: FaceLayout) -> np.ndarray:
    d = skull_sdf(p, s)
    d = smax(d, -mouth_cavity_sdf(p, f), 0.0015)
    for side in (-1, 1):
        d = smax(d, -sphere(p, f.eye_center(side), f.lid_r + 0.0018), 0.004)
    return d


def hair_sdf(p: np.ndarray, style: str, s: HeadShape) -> np.ndarray:
    base = skull_sdf(p, s)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if style == "crop":
        shell = base - 0.007
        # Hairline: high on the forehead, above the ears, down to the nape.
        line = np.where(z > 0.0, 0.060 - 0.018 * smoothstep(0.02, 0.07, np.abs(x)), 0.03 - 0.55 * np.clip(-z, 0, 0.12))
        d = smax(shell, line - y, 0.006)
        d = smin(d, ellipsoid(p, (0.006, 0.094, 0.032), (0.058, 0.03, 0.055)), 0.025)  # volume on top
        return d + _strands(p, 0.0006)
    if style == "bob":
        shell = base - 0.013
        fringe = 0.048 + 0.012 * smoothstep(0.0, 0.05, np.abs(x))
        front = np.where(z > 0.035, fringe - y, -1.0)
        return smax(shell, np.maximum(front, -0.075 - y), 0.005) + _strands(p, 0.0007)
    if style == "bun":
        shell = base - 0.006
        line = np.where(z > 0.0, 0.058 - 0.025 * smoothstep(0.02, 0.07, np.abs(x)), 0.02 - 0.5 * np.clip(-z, 0, 0.12))
        d = smax(shell, line - y, 0.005)
        d = smin(d, sphere(p, (0, 0.118, -0.045), 0.032), 0.018)  # a top knot, visible from the front
        return d + _strands(p, 0.0006)
    raise ValueError(f"unknown hair style {style!r}")


def _strands(p: np.ndarray, depth: float) -> np.ndarray:
    """Shallow grooves running from the crown: hair reads as hair, not a helmet."""
    ang = np.arctan2(p[:, 0], p[:, 2] + 0.01)
    return depth * np.sin(ang * 40 + 50 * p[:, 1])


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
