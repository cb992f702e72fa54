"""VRM 0.x / 1.0 expressions → ARKit-52 shapes.

An expression is a weighted sum of morph targets. Where it names one side's motion of a symmetric ARKit
pair (``blink``, ``happy``, ``lookLeft`` …) the delta is split by the sign of x (+X = the avatar's left), so
both halves can be driven separately. ARKit-named expressions ("Perfect Sync" models) map 1:1.
Documented in docs/avatar.md.
"""

from __future__ import annotations

import numpy as np

from ..tracking.arkit import ARKIT_INDEX, ARKIT_NAMES
from .model import NUM_SHAPES

_LOWER = {n.lower(): n for n in ARKIT_NAMES}

# expression (lower-case, VRM 1.0 name or VRM 0.x preset) → [(ARKit name, side, scale)],
# side: "L" keeps x > 0 (the avatar's left), "R" keeps x < 0, "" keeps everything.
VRM_TO_ARKIT: dict[str, list[tuple[str, str, float]]] = {
    "aa": [("jawOpen", "", 1.0)], "a": [("jawOpen", "", 1.0)],
    "ih": [("mouthStretchLeft", "L", 1.0), ("mouthStretchRight", "R", 1.0)],
    "i": [("mouthStretchLeft", "L", 1.0), ("mouthStretchRight", "R", 1.0)],
    "ou": [("mouthPucker", "", 1.0)], "u": [("mouthPucker", "", 1.0)],
    "ee": [("mouthSmileLeft", "L", 0.6), ("mouthSmileRight", "R", 0.6)],
    "e": [("mouthSmileLeft", "L", 0.6), ("mouthSmileRight", "R", 0.6)],
    "oh": [("mouthFunnel", "", 1.0)], "o": [("mouthFunnel", "", 1.0)],
    "blink": [("eyeBlinkLeft", "L", 1.0), ("eyeBlinkRight", "R", 1.0)],
    "blinkleft": [("eyeBlinkLeft", "", 1.0)], "blink_l": [("eyeBlinkLeft", "", 1.0)],
    "blinkright": [("eyeBlinkRight", "", 1.0)], "blink_r": [("eyeBlinkRight", "", 1.0)],
    "lookup": [("eyeLookUpLeft", "L", 1.0), ("eyeLookUpRight", "R", 1.0)],
    "lookdown": [("eyeLookDownLeft", "L", 1.0), ("eyeLookDownRight", "R", 1.0)],
    "lookleft": [("eyeLookOutLeft", "L", 1.0), ("eyeLookInRight", "R", 1.0)],
    "lookright": [("eyeLookInLeft", "L", 1.0), ("eyeLookOutRight", "R", 1.0)],
    "happy": [("mouthSmileLeft", "L", 1.0), ("mouthSmileRight", "R", 1.0)],
    "joy": [("mouthSmileLeft", "L", 1.0), ("mouthSmileRight", "R", 1.0)],
    "angry": [("browDownLeft", "L", 1.0), ("browDownRight", "R", 1.0)],
    "sad": [("mouthFrownLeft", "L", 1.0), ("mouthFrownRight", "R", 1.0)],
    "sorrow": [("mouthFrownLeft", "L", 1.0), ("mouthFrownRight", "R", 1.0)],
    "surprised": [("eyeWideLeft", "L", 1.0), ("eyeWideRight", "R", 1.0)],
}
# Kept for the docs: VRM presets with no ARKit equivalent are ignored.
UNMAPPED = ("neutral", "relaxed", "fun")


def _strip(name: str) -> str:
    # "blendShape1.jawOpen", "Face.M_F00_000_00_Fcl_jawOpen" → "jawOpen"
    return name.rsplit(".", 1)[-1].rsplit("_", 1)[-1] if name.lower() not in _LOWER else name


def arkit_targets_for_names(names: list[str]) -> dict[int, int]:
    """ARKit index → morph-target index for targets named with ARKit names."""
    out: dict[int, int] = {}
    for ti, raw in enumerate(names):
        for cand in (raw, _strip(raw)):
            arkit = _LOWER.get(cand.lower())
            if arkit is not None:
                out.setdefault(ARKIT_INDEX[arkit], ti)
                break
    return out


def _expressions(gltf) -> list[tuple[str, list[tuple[int, int, float]], bool]]:
    """(name, [(mesh index, target index, weight 0..1)], binds-are-node-indices) for VRM 0.x and 1.0."""
    ext = gltf.extensions or {}
    out = []
    if "VRM" in ext:
        groups = ((ext["VRM"] or {}).get("blendShapeMaster") or {}).get("blendShapeGroups") or []
        for grp in groups:
            name = grp.get("presetName") or grp.get("name") or ""
            if name == "unknown":
                name = grp.get("name") or ""
            binds = [(int(b["mesh"]), int(b["index"]), float(b.get("weight", 100)) / 100.0)
                     for b in grp.get("binds") or []]
            out.append((name, binds, False))
    if "VRMC_vrm" in ext:
        exprs = (ext["VRMC_vrm"] or {}).get("expressions") or {}
        for group in ("preset", "custom"):
            for name, e in (exprs.get(group) or {}).items():
                binds = [(int(b["node"]), int(b["index"]), float(b.get("weight", 1.0)))
                         for b in e.get("morphTargetBinds") or []]
                out.append((name, binds, True))
    return out


def vrm_expression_deltas(gltf, parts, part_of: dict, node_of_mesh: dict, raw_targets: dict) -> list[str]:
    """Fill ARKit shapes of ``parts`` from VRM expressions (only channels still empty). Returns names used."""
    used = []
    # Shapes some part already has by ARKit name ("perfect sync") are never refilled from presets, in any
    # part: a preset such as "surprised" mixes several shapes and would smear into parts that lack one.
    present = {i for p in parts if p.deltas is not None
               for i in np.flatnonzero(np.abs(p.deltas.reshape(NUM_SHAPES, -1)).max(axis=1) > 0)}
    for name, binds, by_node in _expressions(gltf):
        key = name.lower()
        arkit_direct = _LOWER.get(key)
        mapping = [(arkit_direct, "", 1.0)] if arkit_direct else VRM_TO_ARKIT.get(key)
        if not mapping or not binds:
            continue
        used.append(name)
        per_part: dict[int, np.ndarray] = {}
        for ref, ti, weight in binds:
            mesh = gltf.nodes[ref].mesh if by_node else ref
            if mesh is None:
                continue
            for (mi, _prim), pi in part_of.items():
                if mi != mesh or ti >= len(raw_targets[pi]):
                    continue
                per_part[pi] = per_part.get(pi, 0) + weight * raw_targets[pi][ti]
        for pi, delta in per_part.items():
            part = parts[pi]
            if part.deltas is None:
                part.deltas = np.zeros((NUM_SHAPES, part.vertex_count * 6), np.float32)
            d = part.deltas.reshape(NUM_SHAPES, -1, 6)
            x = part.positions[:, 0]
            for arkit, side, scale in mapping:
                ai = ARKIT_INDEX[arkit]
                if ai in present or np.any(d[ai]):
                    continue  # a directly named target wins
                mask = np.ones_like(x) if not side else (x > 0 if side == "L" else x <= 0).astype(np.float32)
                d[ai] = delta * mask[:, None] * scale
    return used
