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
from .model import NUM_SHAPES, Avatar, Material, MeshPart, vertex_normals
from .vrm_map import arkit_targets_for_names, vrm_expression_deltas

FLOAT, UINT, USHORT, UBYTE = 5126, 5125, 5123, 5121
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}


class _Blob:
    """Accumulates the binary chunk with 4-byte alignment and builds bufferViews/accessors."""

    def __init__(self, gltf) -> None:
        self.gltf = gltf
        self.data = io.BytesIO()

    def view(self, raw: bytes, target: int | None = None) -> int:
        import pygltflib as g

        pad = (-self.data.tell()) % 4
        self.data.write(b"\0" * pad)
        off = self.data.tell()
        self.data.write(raw)
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=off, byteLength=len(raw), target=target))
        return len(self.gltf.bufferViews) - 1

    def accessor(self, arr: np.ndarray, kind: str, target: int | None = ARRAY_BUFFER, minmax: bool = False) -> int:
        import pygltflib as g

        arr = np.ascontiguousarray(arr)
        ctype = UINT if arr.dtype == np.uint32 else FLOAT
        acc = g.Accessor(bufferView=self.view(arr.tobytes(), target), componentType=ctype, count=len(arr), type=kind)
        if minmax:
            acc.min = [float(v) for v in arr.reshape(len(arr), -1).min(axis=0)]
            acc.max = [float(v) for v in arr.reshape(len(arr), -1).max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, arr: np.ndarray) -> int:
        """A VEC3 float accessor, sparse when that is smaller (zeros elsewhere, per the glTF spec)."""
        import pygltflib as g

        arr = np.ascontiguousarray(arr, np.float32)
        nz = np.flatnonzero(np.abs(arr).max(axis=1) > 0).astype(np.uint32)
        if len(nz) * 16 >= arr.nbytes:
            return self.accessor(arr, "VEC3", minmax=True)
        acc = g.Accessor(componentType=FLOAT, count=len(arr), type="VEC3",
                         min=[float(v) for v in arr.min(axis=0)], max=[float(v) for v in arr.max(axis=0)])
        if len(nz):
            iv, vv = self.view(nz.tobytes()), self.view(arr[nz].tobytes())
            acc.sparse = g.Sparse(count=len(nz), indices=g.AccessorSparseIndices(bufferView=iv, componentType=UINT),
                                  values=g.AccessorSparseValues(bufferView=vv))
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def export_glb(avatar: Avatar, path: str | Path) -> Path:
    """Write ``avatar`` as a GLB with all 52 ARKit morph targets per deformable part."""
    import pygltflib as g

    gltf = g.GLTF2(asset=g.Asset(generator="facestage", version="2.0"))
    gltf.scenes = [g.Scene(nodes=[])]
    gltf.scene = 0
    blob = _Blob(gltf)
    for part in avatar.parts:
        m = part.material
        mat = g.Material(name=m.name, doubleSided=bool(m.double_sided), pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=[float(c) for c in m.color], metallicFactor=0.0, roughnessFactor=float(m.roughness)),
            extras={"specular": m.specular, "subsurface": m.subsurface})
        if m.unlit:
            mat.extensions = {"KHR_materials_unlit": {}}
            gltf.extensionsUsed = sorted(set(gltf.extensionsUsed or []) | {"KHR_materials_unlit"})
        if m.texture is not None:
            gltf.images.append(g.Image(bufferView=blob.view(_png(m.texture)), mimeType="image/png"))
            gltf.samplers = gltf.samplers or [g.Sampler(magFilter=9729, minFilter=9987)]
            gltf.textures.append(g.Texture(source=len(gltf.images) - 1, sampler=0))
            mat.pbrMetallicRoughness.baseColorTexture = g.TextureInfo(index=len(gltf.textures) - 1)
        gltf.materials.append(mat)
        attrs = g.Attributes(POSITION=blob.accessor(part.positions, "VEC3", minmax=True),
                             NORMAL=blob.accessor(part.normals, "VEC3"),
                             TEXCOORD_0=blob.accessor(part.uvs, "VEC2"),
                             COLOR_0=blob.accessor(part.colors, "VEC3"),
                             _HEADWEIGHT=blob.accessor(part.head_weight, "SCALAR"),
                             _NECKWEIGHT=blob.accessor(part.neck_weight, "SCALAR"))
        prim = g.Primitive(attributes=attrs, indices=blob.accessor(part.indices.reshape(-1), "SCALAR",
                                                                   ELEMENT_ARRAY_BUFFER),
                           material=len(gltf.materials) - 1)
        mesh = g.Mesh(name=part.name, primitives=[prim])
        if part.deltas is not None:
            d = part.deltas.reshape(NUM_SHAPES, -1, 6)
            prim.targets = [g.Attributes(POSITION=blob.sparse_vec3(d[i, :, :3]), NORMAL=blob.sparse_vec3(d[i, :, 3:]))
                            for i in range(NUM_SHAPES)]
            mesh.weights = [0.0] * NUM_SHAPES
            mesh.extras = {"targetNames": list(ARKIT_NAMES)}
        gltf.meshes.append(mesh)
        gltf.nodes.append(g.Node(name=part.name, mesh=len(gltf.meshes) - 1))
        gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)
    gltf.asset.extras = {"facestage": {
        "name": avatar.name, "head_pivot": list(avatar.head_pivot), "neck_pivot": list(avatar.neck_pivot),
        "eye_centers": [list(c) for c in avatar.eye_centers],
        "frame_center": {k: list(v) for k, v in avatar.frame_center.items()},
        "frame_height": dict(avatar.frame_height),
        "meta": {k: v for k, v in avatar.meta.items() if isinstance(v, str | int | float | list | tuple)}}}
    data = blob.data.getvalue()
    data += b"\0" * ((-len(data)) % 4)
    gltf.buffers = [g.Buffer(byteLength=len(data))]
    gltf.set_binary_blob(data)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        gltf.save_binary(str(path))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


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

    def accessor(self, idx: int) -> np.ndarray:
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
        if acc.normalized or (acc.componentType in (UBYTE, USHORT) and acc.type != "SCALAR"):
            arr = arr.astype(np.float32) / float(np.iinfo(_DTYPE[acc.componentType]).max)
        return arr


def _node_matrix(node) -> np.ndarray:
    if node.matrix and len(node.matrix) == 16:
        return np.array(node.matrix, float).reshape(4, 4).T
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        x, y, z, w = node.rotation
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        rm = np.eye(4)
        rm[:3, :3] = r
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
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


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


def import_gltf(path: str | Path, name: str | None = None) -> Avatar:
    """Load a .glb/.gltf/.vrm as an Avatar; morph targets become ARKit shapes where they map."""
    path = Path(path)
    gltf = _read_gltf(path)
    if not gltf.meshes:
        raise InputError(f"{path} contains no meshes")
    reader = _Reader(gltf, _buffer_bytes(gltf, path))
    ext = gltf.extensions or {}
    vrm0 = "VRM" in ext
    # VRM 0.x faces -Z; glTF and VRM 1.0 face +Z: turn 0.x models around so every avatar faces the camera.
    root = np.diag([-1.0, 1.0, -1.0, 1.0]) if vrm0 else np.eye(4)
    parts: list[MeshPart] = []
    part_of: dict[tuple[int, int], int] = {}  # (mesh index, primitive index) → part index
    node_of_mesh: dict[int, int] = {}
    raw_targets: dict[int, list[np.ndarray]] = {}
    target_names: dict[int, list[str]] = {}
    scene = gltf.scenes[gltf.scene or 0] if gltf.scenes else None
    stack = [(n, root) for n in (scene.nodes if scene else range(len(gltf.nodes)))][::-1]
    while stack:  # depth-first, in file order, so parts keep the exporter's order
        ni, parent = stack.pop()
        node = gltf.nodes[ni]
        world = parent @ _node_matrix(node)
        stack.extend((c, world) for c in (node.children or [])[::-1])
        if node.mesh is None:
            continue
        node_of_mesh.setdefault(node.mesh, ni)
        mesh = gltf.meshes[node.mesh]
        names = (mesh.extras or {}).get("targetNames") or []
        lin = world[:3, :3]
        nrm_m = np.linalg.inv(lin).T
        for pi, prim in enumerate(mesh.primitives):
            if prim.mode not in (None, 4):
                continue  # points and lines are not drawable surfaces here
            attrs = prim.attributes if isinstance(prim.attributes, dict) else vars(prim.attributes)
            if attrs.get("POSITION") is None:
                continue
            pos = reader.accessor(attrs["POSITION"]).astype(np.float64)
            n = len(pos)
            idx = (reader.accessor(prim.indices)[:, 0] if prim.indices is not None else np.arange(n)).astype(np.uint32)
            pos_w = pos @ lin.T + world[:3, 3]
            if attrs.get("NORMAL") is not None:
                nrm = reader.accessor(attrs["NORMAL"]) @ nrm_m.T
                nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
            else:
                nrm = vertex_normals(pos_w, idx.reshape(-1, 3))
            gm = gltf.materials[prim.material] if prim.material is not None and gltf.materials else None
            color = (1.0, 1.0, 1.0, 1.0)
            rough = 0.6
            if gm is not None and gm.pbrMetallicRoughness is not None:
                color = tuple(gm.pbrMetallicRoughness.baseColorFactor or color)
                rough = gm.pbrMetallicRoughness.roughnessFactor if gm.pbrMetallicRoughness.roughnessFactor \
                    is not None else 1.0
            extras = (gm.extras or {}) if gm else {}
            mat = Material(gm.name if gm and gm.name else f"material{prim.material}", color, float(rough),
                           float(extras.get("specular", 0.25)), float(extras.get("subsurface", 0.0)),
                           texture=_texture(gltf, reader, gm, path),
                           unlit=bool(gm and gm.extensions and "KHR_materials_unlit" in gm.extensions),
                           double_sided=bool(gm.doubleSided) if gm else True)
            cols = reader.accessor(attrs["COLOR_0"])[:, :3] if attrs.get("COLOR_0") is not None else None
            uvs = reader.accessor(attrs["TEXCOORD_0"]) if attrs.get("TEXCOORD_0") is not None else None
            hw = reader.accessor(attrs["_HEADWEIGHT"])[:, 0] if attrs.get("_HEADWEIGHT") is not None else None
            nw = reader.accessor(attrs["_NECKWEIGHT"])[:, 0] if attrs.get("_NECKWEIGHT") is not None else None
            part = MeshPart(mesh.name or f"mesh{node.mesh}_{pi}", pos_w, nrm, idx, mat, colors=cols, uvs=uvs,
                            head_weight=hw, neck_weight=nw)
            targets = []
            for t in prim.targets or []:
                ta = t if isinstance(t, dict) else vars(t)
                dp = reader.accessor(ta["POSITION"]) @ lin.T if ta.get("POSITION") is not None else np.zeros((n, 3))
                dn = reader.accessor(ta["NORMAL"]) @ nrm_m.T if ta.get("NORMAL") is not None else np.zeros((n, 3))
                targets.append(np.hstack([dp, dn]).astype(np.float32))
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
    return _finish(parts, gltf, path, name)


def _finish(parts: list[MeshPart], gltf, path: Path, name: str | None) -> Avatar:
    info = ((gltf.asset.extras or {}) if gltf.asset else {}).get("facestage")
    if info:
        return Avatar(name or info.get("name", path.stem), parts, tuple(info["head_pivot"]), tuple(info["neck_pivot"]),
                      tuple(tuple(c) for c in info["eye_centers"]),
                      {k: tuple(v) for k, v in info["frame_center"].items()}, dict(info["frame_height"]),
                      meta={**info.get("meta", {}), "source": str(path)})
    lo = np.min([p.positions.min(axis=0) for p in parts], axis=0)
    hi = np.max([p.positions.max(axis=0) for p in parts], axis=0)
    c = (lo + hi) / 2
    height = float(hi[1] - lo[1])
    if height > 0.6:  # a bust or a full body in metres: the head is the top 0.25 m
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
                  frame_height=frame_height, meta={"source": str(path)})
