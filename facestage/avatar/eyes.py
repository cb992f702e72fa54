"""Eyeballs with a painted iris texture, and eyelid shells that blink, squint and follow the gaze.

Eyes are driven purely by ARKit morph targets (rotation as a linear delta, lids as angular edge moves), so a
GLB export carries all of it and any glTF viewer can play it.
"""

from __future__ import annotations

import numpy as np

from ..tracking.arkit import ARKIT_INDEX
from .face_layout import FaceLayout, rot_x, rot_y
from .model import NUM_SHAPES, Material, MeshPart, attach_normal_deltas, orient_faces

GAZE_DEG = 24.0


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


def eyeball(side: int, layout: FaceLayout, iris_color: tuple[float, float, float]) -> MeshPart:
    c = layout.eye_center(side)
    pos, nrm, idx, uv = _uv_sphere(layout.eye_r)
    idx = orient_faces(pos, idx, nrm)
    part = MeshPart(f"eye_{'l' if side > 0 else 'r'}", pos + c, nrm, idx,
                    Material(f"eye_{'l' if side > 0 else 'r'}", roughness=0.12, specular=0.9,
                             texture=iris_texture(iris_color)), uvs=uv)
    d = np.zeros((NUM_SHAPES, len(pos), 3), np.float32)
    s = "Left" if side > 0 else "Right"
    # Subject's left eye sits at +X; looking "out" turns it further towards +X.
    turns = {f"eyeLookUp{s}": rot_x(-GAZE_DEG), f"eyeLookDown{s}": rot_x(GAZE_DEG * 0.9),
             f"eyeLookOut{s}": rot_y(side * GAZE_DEG), f"eyeLookIn{s}": rot_y(-side * GAZE_DEG)}
    for name, r in turns.items():
        d[ARKIT_INDEX[name]] = pos @ r.T - pos
    attach_normal_deltas(part, d)
    return part


def _lid_edges(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (deg) of the upper edge, lower edge and closed line at azimuth ``a`` (deg)."""
    c = np.clip(np.cos(np.pi / 2 * np.clip(np.abs(a) / 62.0, 0, 1)), 0, 1) ** 0.8
    return -3 + 34 * c, -3 - 19 * c, -3 - 7 * c


def _dir(a_deg: np.ndarray, e_deg: np.ndarray) -> np.ndarray:
    a, e = np.radians(a_deg), np.radians(e_deg)
    return np.stack([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)], axis=-1)


def eyelids(side: int, layout: FaceLayout, skin: tuple[float, float, float],
            liner: tuple[float, float, float] = (0.12, 0.08, 0.07)) -> MeshPart:
    """Upper and lower lid shells of one eye, with blink/squint/wide/gaze-follow shapes."""
    na, ns = 32, 8
    a = np.linspace(-88, 88, na)
    s = np.linspace(0, 1, ns)
    A, S = np.meshgrid(a, s, indexing="ij")
    up_e, lo_e, closed = _lid_edges(A)
    top, bottom = 86.0, -84.0
    r = layout.lid_r
    c = layout.eye_center(side)
    sd = "Left" if side > 0 else "Right"

    def lid(edge: np.ndarray, far: float, moves: dict[str, np.ndarray]) -> tuple:
        e = edge + S * (far - edge)
        p = r * _dir(A, e) + c
        deltas = {}
        for name, new_edge in moves.items():
            e2 = new_edge + S * (far - new_edge)
            deltas[name] = (r * _dir(A, e2) + c) - p
        return p.reshape(-1, 3), {k: v.reshape(-1, 3) for k, v in deltas.items()}

    pu, du = lid(up_e, top, {f"eyeBlink{sd}": closed, f"eyeWide{sd}": up_e + 9 * (up_e > lo_e + 1),
                             f"eyeSquint{sd}": up_e - 7 * (up_e - closed) / 37,
                             f"eyeLookUp{sd}": up_e + 7 * (up_e > lo_e + 1),
                             f"eyeLookDown{sd}": up_e - 12 * (up_e - closed) / 37})
    pl, dl = lid(lo_e, bottom, {f"eyeBlink{sd}": closed, f"eyeSquint{sd}": lo_e + 0.55 * (closed - lo_e),
                                f"cheekSquint{sd}": lo_e + 0.3 * (closed - lo_e),
                                f"eyeLookDown{sd}": lo_e - 3 * (closed - lo_e) / 12,
                                f"eyeWide{sd}": lo_e - 2 * (closed - lo_e) / 12})
    n1 = len(pu)
    pos = np.vstack([pu, pl])
    grid = []
    for i in range(na - 1):
        for j in range(ns - 1):
            q0, q1, q2, q3 = i * ns + j, (i + 1) * ns + j, i * ns + j + 1, (i + 1) * ns + j + 1
            grid += [(q0, q1, q2), (q2, q1, q3)]
    g = np.array(grid, np.uint32)
    idx = np.vstack([g[:, ::-1], g + n1])  # wind both lids outwards
    nrm = (pos - c) / r
    skin_c = np.asarray(skin, np.float32)
    col = np.tile(skin_c * 0.96, (len(pos), 1))
    sflat = S.reshape(-1)
    col[:n1] = np.where((sflat < 0.1)[:, None], liner, col[:n1])  # lash line on the upper lid
    col[n1:] = np.where((sflat < 0.06)[:, None], skin_c * 0.8, col[n1:])
    part = MeshPart(f"lids_{'l' if side > 0 else 'r'}", pos, nrm, idx,
                    Material("skin", roughness=0.55, specular=0.25, subsurface=0.6, double_sided=True), colors=col)
    d = np.zeros((NUM_SHAPES, len(pos), 3), np.float32)
    for name, v in du.items():
        d[ARKIT_INDEX[name], :n1] += v
    for name, v in dl.items():
        d[ARKIT_INDEX[name], n1:] += v
    attach_normal_deltas(part, d)
    part.normals[:] = nrm
    return part
