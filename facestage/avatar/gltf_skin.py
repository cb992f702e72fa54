"""Skeletons, skins, humanoid bones and materials of imported glTF 2.0 / VRM 0.x / VRM 1.0 files.

The node tree becomes the avatar's ``Skeleton`` (only nodes that skins, meshes or humanoid bones use, plus
their ancestors): skinned primitives keep their ``JOINTS_0``/``WEIGHTS_0`` (remapped to skeleton order),
rigid meshes ride on their node with weight 1. Positions are baked into the rest pose so that every skin
matrix is the identity at rest (``posed @ inverse(rest)``), the renderers' convention.
"""

from __future__ import annotations

import re

import numpy as np

from .skeleton import MAX_JOINTS, Skeleton

# glTF name heuristics for files without VRM humanoid data (Mixamo, Unreal, Blender/Rigify, CC, MakeHuman).
_NAME_RULES: list[tuple[str, str]] = [
    ("leftEye", r"(^|[^a-z])(eye[._ ]?l|l[._ ]?eye|left[._ ]?eye|eye[._ ]?left)([^a-z]|$)"),
    ("rightEye", r"(^|[^a-z])(eye[._ ]?r|r[._ ]?eye|right[._ ]?eye|eye[._ ]?right)([^a-z]|$)"),
    ("jaw", r"jaw"),
    ("head", r"(^|[^a-z])head([^a-z]|$)(?!.*(top|end|nub))"),
    ("neck", r"neck"),
    ("upperChest", r"upper[._ ]?chest|spine[._ ]?0?3|spine2"),
    ("chest", r"(^|[^a-z])chest|spine[._ ]?0?2|spine1"),
    ("spine", r"(^|[^a-z])spine([._ ]?0?1)?$|(^|[^a-z])spine$"),
    ("hips", r"hips|pelvis"),
]
UNSUPPORTED_EXTENSIONS = {"KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_texture_basisu",
                          "KHR_mesh_quantization"}
KNOWN_EXTENSIONS = {"KHR_materials_unlit", "VRMC_materials_mtoon", "VRMC_vrm", "VRM", "VRMC_springBone",
                    "VRMC_node_constraint", "KHR_materials_emissive_strength", "VRMC_vrm_animation"}


def scene_nodes(gltf, root: np.ndarray, node_matrix) -> tuple[list[int], dict[int, int], dict[int, np.ndarray]]:
    """(DFS order, parent of each node, world rest transform of each node) of the default scene."""
    scene = gltf.scenes[gltf.scene or 0] if gltf.scenes else None
    tops = list(scene.nodes) if scene and scene.nodes else [i for i in range(len(gltf.nodes))
                                                             if not any(i in (n.children or []) for n in gltf.nodes)]
    order: list[int] = []
    parent: dict[int, int] = {}
    world: dict[int, np.ndarray] = {}
    stack = [(n, -1, root) for n in tops[::-1]]
    seen: set[int] = set()
    while stack:
        ni, p, pw = stack.pop()
        if ni in seen or ni >= len(gltf.nodes):
            continue  # a node listed twice or a bad index: glTF forbids both, ignore rather than loop
        seen.add(ni)
        w = pw @ node_matrix(gltf.nodes[ni])
        order.append(ni)
        parent[ni] = p
        world[ni] = w
        stack.extend((c, ni, w) for c in (gltf.nodes[ni].children or [])[::-1])
    return order, parent, world


def humanoid_nodes(gltf) -> dict[str, int]:
    """VRM humanoid bone → node index (VRM 1.0 ``VRMC_vrm``, VRM 0.x ``VRM``), else name heuristics."""
    ext = gltf.extensions or {}
    out: dict[str, int] = {}
    v1 = (ext.get("VRMC_vrm") or {}).get("humanoid", {}).get("humanBones", {})
    for bone, ref in v1.items():
        if isinstance(ref, dict) and isinstance(ref.get("node"), int):
            out[bone] = ref["node"]
    for ref in (ext.get("VRM") or {}).get("humanoid", {}).get("humanBones", []) or []:
        if isinstance(ref, dict) and isinstance(ref.get("node"), int) and ref.get("bone"):
            out.setdefault(ref["bone"], ref["node"])
    if out:
        return {k: v for k, v in out.items() if 0 <= v < len(gltf.nodes)}
    skin_joints = {j for s in gltf.skins or [] for j in s.joints or []}
    candidates = sorted(skin_joints) if skin_joints else range(len(gltf.nodes))
    for bone, rule in _NAME_RULES:
        for ni in candidates:
            name = (gltf.nodes[ni].name or "").lower()
            if name and re.search(rule, name) and ni not in out.values():
                out[bone] = ni
                break
    return out


def build_skeleton(gltf, order: list[int], parent: dict[int, int], world: dict[int, np.ndarray],
                   humanoid: dict[str, int]) -> tuple[Skeleton, dict[int, int]]:
    """The skeleton over the nodes in use; returns it and node index → joint index."""
    used = {j for s in gltf.skins or [] for j in s.joints or []}
    used |= {i for i in order if gltf.nodes[i].mesh is not None and gltf.nodes[i].skin is None}  # rigid meshes
    used |= set(humanoid.values())
    keep: set[int] = set()
    for n in used:
        while n != -1 and n in parent and n not in keep:
            keep.add(n)
            n = parent[n]
    nodes = [n for n in order if n in keep]
    if all(parent.get(n, -1) < n for n in nodes):
        nodes.sort()  # file order when it already lists parents first (facestage's exports do): stable round trips
    if len(nodes) > MAX_JOINTS:
        from ..errors import InputError

        raise InputError(f"the model uses {len(nodes)} nodes as joints; at most {MAX_JOINTS} are supported")
    index = {n: i for i, n in enumerate(nodes)}
    names, seen = [], set()
    for n in nodes:
        base = gltf.nodes[n].name or f"node{n}"
        name = base if base not in seen else f"{base}#{n}"
        seen.add(name)
        names.append(name)
    parents = []
    for n in nodes:
        p = parent.get(n, -1)
        while p != -1 and p not in index:
            p = parent.get(p, -1)
        parents.append(index[p] if p != -1 else -1)
    rest = np.stack([world[n] for n in nodes])
    hum = {bone: names[index[n]] for bone, n in humanoid.items() if n in index}
    return Skeleton(names, parents, rest, humanoid=hum), index


def skin_vertices(reader, gltf, node_index: int, attrs: dict, pos: np.ndarray, nrm: np.ndarray,
                  targets: list[np.ndarray], world: dict[int, np.ndarray], joint_of: dict[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Bake a skinned primitive into the rest pose: (positions, normals, joints, weights, targets).

    Vertices without any weight are placed by the mesh's node and ride on the skin's first joint."""
    node = gltf.nodes[node_index]
    skin = gltf.skins[node.skin]
    joints_raw = reader.accessor(attrs["JOINTS_0"], raw=True).astype(np.int64)
    weights = reader.accessor(attrs["WEIGHTS_0"]).astype(np.float64)
    nj = len(skin.joints)
    if skin.inverseBindMatrices is not None:
        ibm = reader.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
    else:
        ibm = np.broadcast_to(np.eye(4), (nj, 4, 4))
    bad = (joints_raw >= nj) | (joints_raw < 0)
    weights = np.where(bad, 0.0, weights)
    joints_raw = np.where(bad, 0, joints_raw)
    mats = np.stack([world[j] for j in skin.joints]) @ ibm  # bind space → world at rest, per skin joint
    s = weights.sum(axis=1, keepdims=True)
    weights = np.where(s > 0, weights / np.maximum(s, 1e-12), 0.0)
    m = np.einsum("vk,vkab->vab", weights, mats[joints_raw])
    none = s[:, 0] <= 0
    m[none] = world[node_index]
    p = np.einsum("vab,vb->va", m[:, :3, :3], pos) + m[:, :3, 3]
    n = np.einsum("vab,vb->va", m[:, :3, :3], nrm)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    out_targets = []
    for t in targets:
        dp = np.einsum("vab,vb->va", m[:, :3, :3], t[:, :3].astype(np.float64))
        dn = np.einsum("vab,vb->va", m[:, :3, :3], t[:, 3:].astype(np.float64))
        out_targets.append(np.hstack([dp, dn]).astype(np.float32))
    remap = np.array([joint_of[j] for j in skin.joints], np.int64)
    joints = remap[joints_raw]
    joints[none] = joint_of[skin.joints[0]]
    weights = weights.astype(np.float32)
    weights[none] = (1.0, 0.0, 0.0, 0.0)
    return p, n, joints, weights, out_targets


def mtoon(material) -> dict:
    """MToon (VRM 1.0 extension, or VRM 0.x materialProperties passed in ``extras``) → shade colour + toony."""
    ext = (material.extensions or {}).get("VRMC_materials_mtoon") if material else None
    if not ext:
        return {}
    shade = ext.get("shadeColorFactor") or [1.0, 1.0, 1.0]
    toony = float(ext.get("shadingToonyFactor", 0.9))
    return {"toon": float(np.clip(toony, 0.05, 1.0)), "shade_color": tuple(float(c) for c in shade[:3])}


def vrm0_mtoon(gltf) -> dict[int, dict]:
    """VRM 0.x MToon parameters by material index (``extensions.VRM.materialProperties``)."""
    props = ((gltf.extensions or {}).get("VRM") or {}).get("materialProperties") or []
    out: dict[int, dict] = {}
    names = {m.name: i for i, m in enumerate(gltf.materials or [])}
    for p in props:
        if not isinstance(p, dict) or "MToon" not in str(p.get("shader", "")):
            continue
        i = names.get(p.get("name"))
        if i is None:
            continue
        vec = p.get("vectorProperties") or {}
        flt = p.get("floatProperties") or {}
        shade = vec.get("_ShadeColor") or [1.0, 1.0, 1.0]
        out[i] = {"toon": float(np.clip(float(flt.get("_ShadeToony", 0.9)), 0.05, 1.0)),
                  "shade_color": tuple(float(c) for c in shade[:3])}
    return out


def unsupported(gltf) -> tuple[list[str], list[str]]:
    """(features that are ignored with a warning, required extensions we cannot read)."""
    used = set(gltf.extensionsUsed or [])
    required = [e for e in gltf.extensionsRequired or [] if e not in KNOWN_EXTENSIONS]
    ignored = sorted(e for e in used if e not in KNOWN_EXTENSIONS)
    if gltf.animations:
        ignored.append(f"{len(gltf.animations)} animation(s)")
    if gltf.cameras:
        ignored.append("cameras")
    return ignored, [e for e in required if e in UNSUPPORTED_EXTENSIONS or e not in KNOWN_EXTENSIONS]
