"""GLB and VRM 1.0 export of any facestage avatar: skin (joints, hierarchy, inverse bind matrices, ≤4 weights),
52 ARKit morph targets per deformable part (sparse accessors), materials (alpha modes, unlit, textures as PNG),
and for ``.vrm`` the ``VRMC_vrm`` extension: humanoid bones, the 52 ARKit expressions ("perfect sync") plus VRM
presets built from them, lookAt (eye bones) and meta with the licence.

The rig pivots and framing also go into ``asset.extras.facestage`` so a re-import frames the avatar the same.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..tracking.arkit import ARKIT_INDEX, ARKIT_NAMES
from ..tracking.geometry import quaternion_from_rotation
from .model import NUM_SHAPES, Avatar

FLOAT, UINT, USHORT, UBYTE = 5126, 5125, 5123, 5121
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
VRM_REQUIRED = ("hips", "spine", "head", "leftUpperArm", "leftLowerArm", "leftHand", "rightUpperArm",
                "rightLowerArm", "rightHand", "leftUpperLeg", "leftLowerLeg", "leftFoot", "rightUpperLeg",
                "rightLowerLeg", "rightFoot")
# VRM presets as ARKit mixes (the inverse of vrm_map.VRM_TO_ARKIT, which reads them back).
VRM_PRESETS: dict[str, dict[str, float]] = {
    "aa": {"jawOpen": 1.0}, "ih": {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0},
    "ou": {"mouthPucker": 1.0}, "ee": {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.6}, "oh": {"mouthFunnel": 1.0},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, "blinkLeft": {"eyeBlinkLeft": 1.0},
    "blinkRight": {"eyeBlinkRight": 1.0}, "happy": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "angry": {"browDownLeft": 1.0, "browDownRight": 1.0}, "sad": {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0},
    "surprised": {"eyeWideLeft": 1.0, "eyeWideRight": 1.0, "browInnerUp": 0.8},
}
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"


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
        ctype = {np.dtype(np.uint32): UINT, np.dtype(np.uint16): USHORT}.get(arr.dtype, FLOAT)
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
        acc = g.Accessor(componentType=FLOAT, count=len(arr), type="VEC3", byteOffset=None,
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


def _trs(m: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """(translation, rotation quaternion xyzw, scale) of an affine matrix without shear."""
    t = m[:3, 3]
    sc = np.linalg.norm(m[:3, :3], axis=0)
    q = quaternion_from_rotation(m[:3, :3] / np.maximum(sc, 1e-12))
    return [float(v) for v in t], [float(v) for v in q], [float(v) for v in sc]


def _material(g, gltf, blob: _Blob, m) -> int:
    mat = g.Material(name=m.name, doubleSided=bool(m.double_sided), pbrMetallicRoughness=g.PbrMetallicRoughness(
        baseColorFactor=[float(c) for c in m.color], metallicFactor=0.0, roughnessFactor=float(m.roughness)),
        extras={"specular": m.specular, "subsurface": m.subsurface}, alphaMode=m.alpha_mode)
    if m.alpha_mode == "MASK":
        mat.alphaCutoff = float(m.alpha_cutoff)
    if m.unlit:
        mat.extensions = {"KHR_materials_unlit": {}}
        gltf.extensionsUsed = sorted(set(gltf.extensionsUsed or []) | {"KHR_materials_unlit"})
    if m.texture is not None:
        gltf.images.append(g.Image(bufferView=blob.view(_png(m.texture)), mimeType="image/png"))
        gltf.samplers = gltf.samplers or [g.Sampler(magFilter=9729, minFilter=9987)]
        gltf.textures.append(g.Texture(source=len(gltf.images) - 1, sampler=0))
        mat.pbrMetallicRoughness.baseColorTexture = g.TextureInfo(index=len(gltf.textures) - 1)
    gltf.materials.append(mat)
    return len(gltf.materials) - 1


def export_glb(avatar: Avatar, path: str | Path) -> Path:
    """Write ``avatar`` as GLB (or VRM 1.0 when ``path`` ends in ``.vrm``): skinned, 52 ARKit morph targets."""
    import pygltflib as g

    path = Path(path)
    as_vrm = path.suffix.lower() == ".vrm"
    skel, skins = avatar.skinning()
    if as_vrm:
        missing = [b for b in VRM_REQUIRED if skel.bone(b) is None]
        if missing:
            raise InputError(f"avatar {avatar.name!r} has no humanoid skeleton for VRM (missing {', '.join(missing)});"
                             " export it as .glb instead")
    gltf = g.GLTF2(asset=g.Asset(generator="facestage", version="2.0"))
    gltf.scenes = [g.Scene(nodes=[])]
    gltf.scene = 0
    blob = _Blob(gltf)
    # Joint nodes, parents first; each carries its parent-relative rest transform.
    local = skel.local_rest()
    for i, name in enumerate(skel.names):
        t, r, sc = _trs(local[i])
        node = g.Node(name=name, translation=t)
        if not np.allclose(r, [0, 0, 0, 1], atol=1e-7):
            node.rotation = r
        if not np.allclose(sc, 1.0, atol=1e-7):
            node.scale = sc
        gltf.nodes.append(node)
    for i, p in enumerate(skel.parents):
        if p < 0:
            gltf.scenes[0].nodes.append(i)
        else:
            gltf.nodes[p].children = [*(gltf.nodes[p].children or []), i]
    ibm = np.ascontiguousarray(skel.inverse_bind.transpose(0, 2, 1).reshape(-1, 16), np.float32)
    gltf.skins = [g.Skin(joints=list(range(skel.joint_count)), inverseBindMatrices=blob.accessor(ibm, "MAT4", None),
                         skeleton=int(np.flatnonzero(skel.parents < 0)[0]))]
    mesh_nodes: dict[str, int] = {}
    for part, (joints, weights) in zip(avatar.parts, skins, strict=True):
        w = np.asarray(weights, np.float64)
        w = np.where(w.sum(axis=1, keepdims=True) > 0, w, np.array([1.0, 0, 0, 0]))
        w32 = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
        w32[:, 0] += 1.0 - w32.sum(axis=1)  # exact unit sums in float32 (the validator checks them)
        jv = np.where(w32 > 0, joints, 0).astype(np.uint16)
        attrs = g.Attributes(POSITION=blob.accessor(part.positions, "VEC3", minmax=True),
                             NORMAL=blob.accessor(part.normals, "VEC3"),
                             TEXCOORD_0=blob.accessor(part.uvs, "VEC2"),
                             COLOR_0=blob.accessor(part.colors, "VEC3"),
                             JOINTS_0=blob.accessor(jv, "VEC4"), WEIGHTS_0=blob.accessor(w32, "VEC4"),
                             _HEADWEIGHT=blob.accessor(part.head_weight, "SCALAR"),
                             _NECKWEIGHT=blob.accessor(part.neck_weight, "SCALAR"))
        prim = g.Primitive(attributes=attrs, indices=blob.accessor(part.indices.reshape(-1), "SCALAR",
                                                                   ELEMENT_ARRAY_BUFFER),
                           material=_material(g, gltf, blob, part.material))
        mesh = g.Mesh(name=part.name, primitives=[prim])
        if part.deltas is not None:
            d = part.deltas.reshape(NUM_SHAPES, -1, 6)
            prim.targets = [g.Attributes(POSITION=blob.sparse_vec3(d[i, :, :3]), NORMAL=blob.sparse_vec3(d[i, :, 3:]))
                            for i in range(NUM_SHAPES)]
            mesh.weights = [0.0] * NUM_SHAPES
            mesh.extras = {"targetNames": list(ARKIT_NAMES)}
        gltf.meshes.append(mesh)
        gltf.nodes.append(g.Node(name=part.name, mesh=len(gltf.meshes) - 1, skin=0))
        gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)
        if part.deltas is not None:
            mesh_nodes[part.name] = len(gltf.nodes) - 1
    gltf.asset.extras = {"facestage": {
        "name": avatar.name, "head_pivot": list(avatar.head_pivot), "neck_pivot": list(avatar.neck_pivot),
        "eye_centers": [list(c) for c in avatar.eye_centers],
        "frame_center": {k: list(v) for k, v in avatar.frame_center.items()},
        "frame_height": dict(avatar.frame_height), "humanoid": dict(skel.humanoid),
        "meta": {k: v for k, v in avatar.meta.items() if isinstance(v, str | int | float | list | tuple)}}}
    if as_vrm:
        gltf.extensions = {"VRMC_vrm": _vrm_extension(avatar, skel, mesh_nodes)}
        gltf.extensionsUsed = sorted(set(gltf.extensionsUsed or []) | {"VRMC_vrm"})
    data = blob.data.getvalue()
    data += b"\0" * ((-len(data)) % 4)
    gltf.buffers = [g.Buffer(byteLength=len(data))]
    gltf.set_binary_blob(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        gltf.save_binary(str(path))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _vrm_extension(avatar: Avatar, skel, mesh_nodes: dict[str, int]) -> dict:
    def binds(mix: dict[str, float]) -> list[dict]:
        return [{"node": n, "index": ARKIT_INDEX[k], "weight": float(v)} for n in mesh_nodes.values()
                for k, v in mix.items()]

    def expression(mix: dict[str, float]) -> dict:
        return {"morphTargetBinds": binds(mix), "isBinary": False, "overrideBlink": "none",
                "overrideLookAt": "none", "overrideMouth": "none"}

    licence = avatar.meta.get("licence", "")
    eye = skel.bone("leftEye")
    head = skel.bone("head")
    offset = (skel.joint_position(eye) - skel.joint_position(head)).tolist() if eye is not None else [0, 0.06, 0]
    rng = {"inputMaxValue": 90.0, "outputScale": 10.0}
    return {
        "specVersion": "1.0",
        "meta": {"name": avatar.name, "version": "1", "authors": ["facestage"],
                 "copyrightInformation": str(avatar.meta.get("source", "")),
                 "licenseUrl": "https://vrm.dev/licenses/1.0/", "avatarPermission": "everyone",
                 "commercialUsage": "corporation", "allowExcessivelyViolentUsage": False,
                 "allowExcessivelySexualUsage": False, "allowPoliticalOrReligiousUsage": False,
                 "allowAntisocialOrHateUsage": False, "creditNotation": "unnecessary", "allowRedistribution": True,
                 "modification": "allowModificationRedistribution",
                 **({"otherLicenseUrl": CC0} if licence == "CC0-1.0" else {})},
        "humanoid": {"humanBones": {b: {"node": skel.index(j)} for b, j in skel.humanoid.items()}},
        "lookAt": {"type": "bone", "offsetFromHeadBone": [float(v) for v in offset],
                   "rangeMapHorizontalInner": rng, "rangeMapHorizontalOuter": rng,
                   "rangeMapVerticalDown": rng, "rangeMapVerticalUp": rng},
        "expressions": {"preset": {k: expression(v) for k, v in VRM_PRESETS.items()},
                        "custom": {k: expression({k: 1.0}) for k in ARKIT_NAMES}},
    }
