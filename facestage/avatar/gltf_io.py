"""glTF 2.0 / GLB import and export with morph targets (pygltflib; trimesh drops them), plus VRM expressions.

Export: one mesh per part, 52 ARKit morph targets (POSITION + NORMAL, sparse accessors: most shapes touch
few vertices), ``mesh.extras.targetNames``, vertex colours, textures as embedded PNG, head/neck skin weights
as the custom attributes ``_HEADWEIGHT``/``_NECKWEIGHT`` and the rig pivots in ``asset.extras.facestage``.

Import: any glTF/GLB (node transforms applied), morph targets named with ARKit names (prefixes such as
``blendShape1.`` are ignored), VRM 0.x ``blendShapeMaster`` and VRM 1.0 ``VRMC_vrm.expressions``
mapped to ARKit names (table in ``vrm_map.py`` and docs/avatar.md).
"""

from __future__ import annotations

import base64
import io
import struct
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..tracking.arkit import ARKIT_NAMES
from ..tracking.geometry import rotation_from_quaternion
from .gltf_export import (
    UBYTE,
    USHORT,
    export_glb,  # noqa: F401 - the public export lives beside the import
)
from .gltf_skin import build_skeleton, humanoid_nodes, mtoon, scene_nodes, skin_vertices, unsupported, vrm0_mtoon
from .model import NUM_SHAPES, Avatar, Material, MeshPart, vertex_normals
from .skinned_import import _skinned_avatar
from .vrm_map import arkit_targets_for_names, vrm_expression_deltas

_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}


# ---------------------------------------------------------------------------------------------- import

def _buffer_bytes(gltf, path: Path) -> list[bytes]:
    out = []
    for i, buf in enumerate(gltf.buffers):
        if buf.uri is None:
            blob = gltf.binary_blob()
            if blob is None:
                raise InputError(f"{path}: buffer {i} has no data")
            out.append(blob)
        elif buf.uri.startswith("data:"):
            out.append(base64.b64decode(buf.uri.split(",", 1)[1]))
        else:
            f = path.parent / buf.uri
            if not f.exists():
                raise InputError(f"{path}: missing external buffer {buf.uri}")
            out.append(f.read_bytes())
    return out


class _Reader:
    def __init__(self, gltf, buffers: list[bytes]) -> None:
        self.gltf, self.buffers = gltf, buffers

    def view_bytes(self, idx: int) -> tuple[bytes, int, int | None]:
        bv = self.gltf.bufferViews[idx]
        return self.buffers[bv.buffer], (bv.byteOffset or 0), bv.byteStride

    def _dense(self, view: int, offset: int, ctype: int, count: int, ncomp: int) -> np.ndarray:
        data, base, stride = self.view_bytes(view)
        dt = np.dtype(_DTYPE[ctype])
        elem = dt.itemsize * ncomp
        start = base + offset
        if stride and stride != elem:
            rows = np.frombuffer(data, np.uint8, count=stride * (count - 1) + elem, offset=start)
            idx = (np.arange(count)[:, None] * stride + np.arange(elem)[None, :])
            return rows[idx].copy().view(dt).reshape(count, ncomp)
        return np.frombuffer(data, dt, count=count * ncomp, offset=start).reshape(count, ncomp).copy()

    def accessor(self, idx: int, raw: bool = False) -> np.ndarray:
        """Decoded accessor data; ``raw`` keeps integer components (JOINTS_0) unnormalised."""
        if idx is None or not 0 <= idx < len(self.gltf.accessors):
            raise InputError(f"accessor {idx} does not exist")
        acc = self.gltf.accessors[idx]
        n = _NCOMP[acc.type]
        if acc.bufferView is not None:
            arr = self._dense(acc.bufferView, acc.byteOffset or 0, acc.componentType, acc.count, n)
        else:
            arr = np.zeros((acc.count, n), _DTYPE[acc.componentType])
        if acc.sparse is not None and acc.sparse.count:
            sp = acc.sparse
            ind = self._dense(sp.indices.bufferView, sp.indices.byteOffset or 0, sp.indices.componentType,
                              sp.count, 1)[:, 0].astype(np.int64)
            val = self._dense(sp.values.bufferView, sp.values.byteOffset or 0, acc.componentType, sp.count, n)
            arr = arr.copy()
            arr[ind] = val
        if not raw and (acc.normalized or (acc.componentType in (UBYTE, USHORT) and acc.type != "SCALAR")):
            arr = arr.astype(np.float32) / float(np.iinfo(_DTYPE[acc.componentType]).max)
        return arr


def _node_matrix(node) -> np.ndarray:
    if node.matrix and len(node.matrix) == 16:
        return np.array(node.matrix, float).reshape(4, 4).T
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        rm = np.eye(4)
        rm[:3, :3] = rotation_from_quaternion(node.rotation)
        m = rm @ m
    if node.translation:
        t = np.eye(4)
        t[:3, 3] = node.translation
        m = t @ m
    return m


def _texture(gltf, reader: _Reader, material, path: Path) -> np.ndarray | None:
    pbr = material.pbrMetallicRoughness if material else None
    if pbr is None or pbr.baseColorTexture is None:
        return None
    from PIL import Image

    img = gltf.images[gltf.textures[pbr.baseColorTexture.index].source]
    if img.bufferView is not None:
        data, off, _ = reader.view_bytes(img.bufferView)
        raw = data[off:off + gltf.bufferViews[img.bufferView].byteLength]
    elif img.uri and img.uri.startswith("data:"):
        raw = base64.b64decode(img.uri.split(",", 1)[1])
    elif img.uri:
        raw = (path.parent / img.uri).read_bytes()
    else:
        return None
    try:
        im = Image.open(io.BytesIO(raw))
        if im.width * im.height > MAX_TEXTURE_PIXELS:
            raise InputError(f"{path}: a texture of {im.width}x{im.height} exceeds {MAX_TEXTURE_PIXELS} pixels")
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable texture ignored ({exc})", stacklevel=2)
        return None


def _read_gltf(path: Path):
    import pygltflib as g

    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a model file")
    head = path.read_bytes()[:4]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pygltflib warns before failing on bad headers
            gltf = g.GLTF2.load_binary(str(path)) if head == b"glTF" else g.GLTF2.load_json(str(path))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a valid glTF/GLB/VRM file: {exc}") from None
    if gltf is None:
        raise InputError(f"{path} is not a valid glTF/GLB/VRM file")
    return gltf


MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_VERTICES = 1_000_000
MAX_TEXTURE_PIXELS = 4096 * 4096


def _material(gltf, reader, prim, path: Path, mtoon0: dict[int, dict]) -> Material:
    gm = gltf.materials[prim.material] if prim.material is not None and gltf.materials else None
    color, rough = (1.0, 1.0, 1.0, 1.0), 0.6
    if gm is not None and gm.pbrMetallicRoughness is not None:
        pbr = gm.pbrMetallicRoughness
        color = tuple(pbr.baseColorFactor or color)
        rough = pbr.roughnessFactor if pbr.roughnessFactor is not None else 1.0
    extras = (gm.extras or {}) if gm else {}
    toon = mtoon(gm) or mtoon0.get(prim.material, {})
    return Material(gm.name if gm and gm.name else f"material{prim.material}", color, float(rough),
                    float(extras.get("specular", 0.25)), float(extras.get("subsurface", 0.0)),
                    texture=_texture(gltf, reader, gm, path),
                    unlit=bool(gm and gm.extensions and "KHR_materials_unlit" in gm.extensions and not toon),
                    double_sided=bool(gm.doubleSided) if gm else True,
                    alpha_mode=(gm.alphaMode or "OPAQUE") if gm else "OPAQUE",
                    alpha_cutoff=float(gm.alphaCutoff if gm and gm.alphaCutoff is not None else 0.5), **toon)


def import_gltf(path: str | Path, name: str | None = None) -> Avatar:
    """Load a .glb/.gltf/.vrm as a skinned Avatar: node tree → skeleton, skins kept, humanoid bones mapped,
    morph targets → ARKit shapes where they map (names or VRM expressions). Unsupported parts → a warning."""
    path = Path(path)
    if path.exists() and path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path} is {path.stat().st_size >> 20} MB; avatar files are limited to "
                         f"{MAX_FILE_BYTES >> 20} MB")
    gltf = _read_gltf(path)
    if not gltf.meshes:
        raise InputError(f"{path} contains no meshes")
    ignored, required = unsupported(gltf)
    if required:
        raise InputError(f"{path} requires glTF extensions facestage cannot read: {', '.join(required)}")
    reader = _Reader(gltf, _buffer_bytes(gltf, path))
    vrm0 = "VRM" in (gltf.extensions or {})
    # VRM 0.x faces -Z; glTF and VRM 1.0 face +Z: turn 0.x models around so every avatar faces the camera.
    root = np.diag([-1.0, 1.0, -1.0, 1.0]) if vrm0 else np.eye(4)
    order, parent, world = scene_nodes(gltf, root, _node_matrix)
    humanoid = humanoid_nodes(gltf)
    skel, joint_of = build_skeleton(gltf, order, parent, world, humanoid)
    mtoon0 = vrm0_mtoon(gltf)
    parts: list[MeshPart] = []
    part_of: dict[tuple[int, int], int] = {}  # (mesh index, primitive index) → part index
    node_of_mesh: dict[int, int] = {}
    raw_targets: dict[int, list[np.ndarray]] = {}
    target_names: dict[int, list[str]] = {}
    total = 0
    for ni in order:  # depth-first, in file order, so parts keep the exporter's order
        node = gltf.nodes[ni]
        if node.mesh is None or not 0 <= node.mesh < len(gltf.meshes):
            continue
        node_of_mesh.setdefault(node.mesh, ni)
        mesh = gltf.meshes[node.mesh]
        names = (mesh.extras or {}).get("targetNames") or []
        w = world[ni]
        lin, nrm_m = w[:3, :3], np.linalg.inv(w[:3, :3]).T
        for pi, prim in enumerate(mesh.primitives):
            if prim.mode not in (None, 4):
                ignored.append(f"primitive mode {prim.mode} (only triangles are drawn)")
                continue
            attrs = prim.attributes if isinstance(prim.attributes, dict) else vars(prim.attributes)
            if attrs.get("POSITION") is None:
                continue
            pos = reader.accessor(attrs["POSITION"]).astype(np.float64)
            n = len(pos)
            total += n
            if total > MAX_VERTICES:
                raise InputError(f"{path} has more than {MAX_VERTICES} vertices")
            idx = (reader.accessor(prim.indices)[:, 0] if prim.indices is not None else np.arange(n)).astype(np.uint32)
            if idx.size % 3 or (idx.size and int(idx.max()) >= n):
                raise InputError(f"{path}: mesh {node.mesh} has a broken index list")
            nrm = (reader.accessor(attrs["NORMAL"]).astype(np.float64) if attrs.get("NORMAL") is not None
                   else vertex_normals(pos, idx.reshape(-1, 3)).astype(np.float64))
            targets = []
            for t in prim.targets or []:
                ta = t if isinstance(t, dict) else vars(t)
                dp = reader.accessor(ta["POSITION"]) if ta.get("POSITION") is not None else np.zeros((n, 3))
                dn = reader.accessor(ta["NORMAL"]) if ta.get("NORMAL") is not None else np.zeros((n, 3))
                targets.append(np.hstack([dp, dn]).astype(np.float32))
            if node.skin is not None and attrs.get("JOINTS_0") is not None and attrs.get("WEIGHTS_0") is not None \
                    and 0 <= node.skin < len(gltf.skins or []):
                pos_w, nrm_w, joints, weights, targets = skin_vertices(reader, gltf, ni, attrs, pos, nrm, targets,
                                                                       world, joint_of)
            else:  # a rigid mesh rides on its node
                pos_w = pos @ lin.T + w[:3, 3]
                nrm_w = nrm @ nrm_m.T
                nrm_w /= np.maximum(np.linalg.norm(nrm_w, axis=1, keepdims=True), 1e-12)
                joints = np.zeros((n, 4), np.int64)
                joints[:, 0] = joint_of[ni]
                weights = np.zeros((n, 4), np.float32)
                weights[:, 0] = 1.0
                targets = [np.hstack([t[:, :3] @ lin.T, t[:, 3:] @ nrm_m.T]).astype(np.float32) for t in targets]
            cols = reader.accessor(attrs["COLOR_0"])[:, :3] if attrs.get("COLOR_0") is not None else None
            uvs = reader.accessor(attrs["TEXCOORD_0"]) if attrs.get("TEXCOORD_0") is not None else None
            hw = reader.accessor(attrs["_HEADWEIGHT"])[:, 0] if attrs.get("_HEADWEIGHT") is not None else None
            nw = reader.accessor(attrs["_NECKWEIGHT"])[:, 0] if attrs.get("_NECKWEIGHT") is not None else None
            part = MeshPart(mesh.name or f"mesh{node.mesh}_{pi}", pos_w, nrm_w, idx,
                            _material(gltf, reader, prim, path, mtoon0), colors=cols, uvs=uvs, head_weight=hw,
                            neck_weight=nw, skin_joints=joints, skin_weights=weights)
            part_of[(node.mesh, pi)] = len(parts)
            raw_targets[len(parts)] = targets
            target_names[len(parts)] = list(names)
            parts.append(part)
    if not parts:
        raise InputError(f"{path} has no triangle meshes")
    # Direct ARKit names first, then VRM expressions for shapes still missing.
    for pi, part in enumerate(parts):
        targets = raw_targets[pi]
        if not targets:
            continue
        d = np.zeros((NUM_SHAPES, part.vertex_count, 6), np.float32)
        for ai, ti in arkit_targets_for_names(target_names[pi]).items():
            if ti < len(targets):
                d[ai] = targets[ti]
        part.deltas = d.reshape(NUM_SHAPES, -1)
    vrm_expression_deltas(gltf, parts, part_of, node_of_mesh, raw_targets)
    for part in parts:
        if part.deltas is not None and not np.any(part.deltas):
            part.deltas = None
    if ignored:
        warnings.warn(f"{path.name}: ignored unsupported features: {', '.join(dict.fromkeys(ignored))}",
                      stacklevel=2)
    return _finish(parts, gltf, path, name, skel, ignored)


def _finish(parts: list[MeshPart], gltf, path: Path, name: str | None, skel, ignored: list[str]) -> Avatar:
    info = ((gltf.asset.extras or {}) if gltf.asset else {}).get("facestage")
    present = sorted({ARKIT_NAMES[i] for p in parts if p.deltas is not None
                      for i in np.flatnonzero(np.abs(p.deltas).max(axis=1) > 0)}, key=ARKIT_NAMES.index)
    report = {"source": str(path), "arkit_shapes": present,
              "arkit_missing": [n for n in ARKIT_NAMES if n not in present], "unsupported": list(ignored),
              "humanoid": dict(skel.humanoid)}
    if skel.bone("head") is not None or gltf.skins:
        return _skinned_avatar(parts, path, name, skel, info, report)
    for p in parts:  # no head bone: fall back to the top-of-model head/neck split below
        p.skin_joints = p.skin_weights = None
    if info:
        return Avatar(name or info.get("name", path.stem), parts, tuple(info["head_pivot"]), tuple(info["neck_pivot"]),
                      tuple(tuple(c) for c in info["eye_centers"]),
                      {k: tuple(v) for k, v in info["frame_center"].items()}, dict(info["frame_height"]),
                      meta={**info.get("meta", {}), **report})
    lo = np.min([p.positions.min(axis=0) for p in parts], axis=0)
    hi = np.max([p.positions.max(axis=0) for p in parts], axis=0)
    c = (lo + hi) / 2
    height = float(hi[1] - lo[1])
    width = float(max(hi[0] - lo[0], hi[2] - lo[2]))
    if height > 0.6 and height > 1.2 * width:  # a standing body in metres (taller than wide): head = top 0.25 m
        top = float(hi[1])
        head_c = (float(c[0]), top - 0.12, float(c[2]))
        frame_center = {"head": head_c, "bust": (float(c[0]), top - 0.27, float(c[2]))}
        frame_height = {"head": 0.34, "bust": 0.62}
        head_pivot, neck_pivot = (head_c[0], top - 0.19, head_c[2]), (head_c[0], top - 0.28, head_c[2])
        for p in parts:
            y = p.positions[:, 1]
            p.head_weight = np.clip((y - (top - 0.23)) / 0.04, 0, 1).astype(np.float32)
            p.neck_weight = ((1 - p.head_weight) * np.clip((y - (top - 0.33)) / 0.07, 0, 1)).astype(np.float32)
    else:  # a head model: frame its bounds
        frame_center = {"head": tuple(float(v) for v in c), "bust": tuple(float(v) for v in c)}
        frame_height = {"head": height * 1.15, "bust": height * 1.6}
        head_pivot = neck_pivot = (float(c[0]), float(lo[1]), float(c[2]))
    return Avatar(name or path.stem, parts, head_pivot, neck_pivot, frame_center=frame_center,
                  frame_height=frame_height, meta=report)
