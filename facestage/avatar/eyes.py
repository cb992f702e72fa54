"""Eyeball geometry and its painted iris texture (the built-ins' and photo avatars' eyes, on eye bones)."""

from __future__ import annotations

import numpy as np

GAZE_DEG = 24.0  # full eyeLook weight turns the eye bones this far


def iris_texture(color: tuple[float, float, float], size: int = 128) -> np.ndarray:
    """Equirectangular eyeball texture with the cornea at the top row (polar angle 0 = +Z)."""
    h, w = size // 2, size
    theta = (np.arange(h) + 0.5) / h * np.pi  # polar angle from the front
    phi = (np.arange(w) + 0.5) / w * 2 * np.pi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    rng = np.random.default_rng(7)
    # A living sclera is not paper white: warm off-white, pinker towards the corners, and shaded under
    # the upper lid (the lid shell does not cast shadows in the renderer, so it is painted in).
    white = np.array([0.86, 0.82, 0.78])
    img = np.ones((h, w, 3)) * white
    y = np.sin(th) * np.sin(ph)  # +Y on the eyeball
    corner = np.clip((np.abs(np.sin(th) * np.cos(ph)) - 0.45) / 0.4, 0, 1)
    img = img * (1 - 0.25 * corner[..., None]) + np.array([0.80, 0.55, 0.52]) * 0.25 * corner[..., None]
    img *= (1 - 0.22 * np.clip((y - 0.15) / 0.45, 0, 1))[..., None]  # upper-lid shadow
    img *= (1 - 0.12 * np.clip((th - 1.2) / 1.2, 0, 1))[..., None]  # darker towards the back
    iris_r, pupil_r = 0.50, 0.21
    c = np.asarray(color, float)
    streaks = 0.82 + 0.18 * np.sin(ph * 31 + rng.uniform(0, 6.28)) * np.sin(ph * 17 + 1.3)
    radial = th / iris_r
    iris = c[None, None, :] * (0.55 + 0.6 * radial[..., None]) * streaks[..., None]
    iris = np.where((radial > 0.85)[..., None], iris * 0.45, iris)  # limbal ring
    in_iris = (th < iris_r)[..., None]
    img = np.where(in_iris, iris, img)
    img = np.where((th < pupil_r)[..., None], np.array([0.03, 0.03, 0.04]), img)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _uv_sphere(r: float, n_theta: int = 18, n_phi: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    th = np.linspace(0, np.pi, n_theta + 1)
    ph = np.linspace(0, 2 * np.pi, n_phi + 1)
    T, P = np.meshgrid(th, ph, indexing="ij")
    n = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], axis=-1).reshape(-1, 3)
    uv = np.stack([P / (2 * np.pi), T / np.pi], axis=-1).reshape(-1, 2)
    idx = []
    cols = n_phi + 1
    for i in range(n_theta):
        for j in range(n_phi):
            a, b, c, d = i * cols + j, i * cols + j + 1, (i + 1) * cols + j, (i + 1) * cols + j + 1
            idx += [(a, c, b), (b, c, d)]
    return n * r, n, np.array(idx, np.uint32), uv
