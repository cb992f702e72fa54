"""The avatar data model: mesh parts with materials, 52 ARKit blendshape deltas, head/neck/eye pivots.

Geometry is in metres, +Y up, the avatar faces +Z (glTF convention), "left" is the subject's left (+X).
Each part stores its blendshape deltas as one dense ``(52, V*6)`` float32 matrix (position and normal
deltas interleaved per vertex) so a frame's deformation is one matrix-vector product whose result is
written straight into the GPU vertex buffer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..tracking.arkit import ARKIT_INDEX, ARKIT_NAMES
from .skeleton import Skeleton, translation, validate_influences

NUM_SHAPES = len(ARKIT_NAMES)
_uids = itertools.count(1)


@dataclass
class Material:
    """A simple physically-flavoured material: base colour × vertex colour × optional texture."""

    name: str
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    roughness: float = 0.6
    specular: float = 0.3
    subsurface: float = 0.0  # 0..1: warm light wrap for skin
    texture: np.ndarray | None = None  # HxWx3 or HxWx4 uint8, top row first
    unlit: bool = False  # photo textures stay as photographed
    double_sided: bool = False  # open shells (lids, mouth bag, photo mask); closed meshes get back-face culling
    alpha_mode: str = "OPAQUE"  # glTF: OPAQUE, MASK (cut-out at alpha_cutoff) or BLEND (drawn last, sorted)
    alpha_cutoff: float = 0.5
    toon: float = 0.0  # MToon approximation: 0 smooth shading … 1 hard two-tone
    shade_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # MToon shade colour (× albedo in shadow)


@dataclass
class MeshPart:
    """One drawable mesh: vertices, triangles, per-vertex skin weights and blendshape deltas."""

    name: str
    positions: np.ndarray  # (V,3) float32
    normals: np.ndarray  # (V,3) float32
    indices: np.ndarray  # (T,3) uint32
    material: Material
    colors: np.ndarray | None = None  # (V,3) float32 in [0,1]
    uvs: np.ndarray | None = None  # (V,2) float32, v=0 at the top row of the texture
    # Skinning: weight of the head and of the neck transform per vertex; the rest stays with the body.
    head_weight: np.ndarray | None = None  # (V,) float32
    neck_weight: np.ndarray | None = None  # (V,) float32
    deltas: np.ndarray | None = None  # (52, V*6) float32: dx dy dz dnx dny dnz per vertex
    # Linear-blend skinning against ``Avatar.skeleton``: four joint indices and weights per vertex. When
    # the avatar has no skeleton, head_weight/neck_weight above become a three-joint skin (see ``skinning``).
    skin_joints: np.ndarray | None = None  # (V,4) int32
    skin_weights: np.ndarray | None = None  # (V,4) float32

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32)
        self.normals = np.ascontiguousarray(self.normals, dtype=np.float32)
        self.indices = np.ascontiguousarray(self.indices, dtype=np.uint32).reshape(-1, 3)
        n = len(self.positions)
        if self.colors is None:
            self.colors = np.ones((n, 3), np.float32)
        if self.uvs is None:
            self.uvs = np.zeros((n, 2), np.float32)
        if self.head_weight is None:
            self.head_weight = np.ones(n, np.float32)
        if self.neck_weight is None:
            self.neck_weight = np.zeros(n, np.float32)
        self.colors = np.ascontiguousarray(self.colors, dtype=np.float32)
        self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float32)
        self.head_weight = np.ascontiguousarray(self.head_weight, dtype=np.float32)
        self.neck_weight = np.ascontiguousarray(self.neck_weight, dtype=np.float32)
        if self.deltas is not None:
            self.deltas = np.ascontiguousarray(self.deltas, dtype=np.float32).reshape(NUM_SHAPES, n * 6)
        if (self.skin_joints is None) != (self.skin_weights is None):
            raise ValueError(f"part {self.name!r}: skin joints and weights come together")
        if self.indices.size and int(self.indices.max()) >= n:
            raise ValueError(f"part {self.name!r}: triangle index out of range")

    @property
    def vertex_count(self) -> int:
        return len(self.positions)

    def base_interleaved(self) -> np.ndarray:
        """(V*6,) rest positions and normals, the layout the deltas are stored in."""
        return np.hstack([self.positions, self.normals]).reshape(-1)

    def deformed(self, weights: np.ndarray) -> np.ndarray:
        """(V,6) positions+normals for a (52,) weight vector: one matrix-vector product."""
        base = self.base_interleaved()
        if self.deltas is None or not np.any(weights):
            return base.reshape(-1, 6)
        return (base + weights.astype(np.float32) @ self.deltas).reshape(-1, 6)

    def shape_delta(self, name: str) -> np.ndarray:
        """(V,3) position delta of one ARKit shape (zeros when the part has none)."""
        if self.deltas is None:
            return np.zeros_like(self.positions)
        return self.deltas[ARKIT_INDEX[name]].reshape(-1, 6)[:, :3]


@dataclass
class Avatar:
    """A renderable, drivable digital human."""

    name: str
    parts: list[MeshPart]
    head_pivot: tuple[float, float, float] = (0.0, -0.06, -0.01)  # head rotates about here (atlas joint)
    neck_pivot: tuple[float, float, float] = (0.0, -0.16, -0.02)  # neck rotates about its base
    eye_centers: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.032, 0.02, 0.06),
                                                                              (-0.032, 0.02, 0.06))
    frame_center: dict[str, tuple[float, float, float]] = field(default_factory=lambda: {
        "head": (0.0, 0.0, 0.0), "bust": (0.0, -0.11, 0.0)})
    frame_height: dict[str, float] = field(default_factory=lambda: {"head": 0.34, "bust": 0.54})
    meta: dict = field(default_factory=dict)
    skeleton: Skeleton | None = None  # None: a three-joint skin is made from the head/neck pivots and weights
    uid: int = field(default_factory=lambda: next(_uids))

    def skinning(self) -> tuple[Skeleton, list[tuple[np.ndarray, np.ndarray]]]:
        """The skeleton and each part's (V,4) joints/weights: the one skin every renderer path uses."""
        cached = self.__dict__.get("_skinning")
        if cached is not None:
            return cached
        skel = self.skeleton
        if skel is None:
            rest = np.stack([np.eye(4), translation(self.neck_pivot), translation(self.head_pivot)])
            skel = Skeleton(["body", "neck", "head"], [-1, 0, 1], rest, humanoid={"neck": "neck", "head": "head"})
        out = []
        for p in self.parts:
            if self.skeleton is not None and p.skin_joints is not None:
                out.append(validate_influences(p.skin_joints, p.skin_weights, p.vertex_count, skel.joint_count))
                continue
            if self.skeleton is not None:  # an unskinned part of a skinned avatar rides on its root
                j = np.zeros((p.vertex_count, 4), np.int32)
                w = np.zeros((p.vertex_count, 4), np.float32)
                w[:, 0] = 1.0
                out.append((j, w))
                continue
            hw, nw = p.head_weight, p.neck_weight
            body = np.clip(1.0 - hw - nw, 0.0, 1.0)
            j = np.tile(np.array([0, 1, 2, 0], np.int32), (p.vertex_count, 1))
            w = np.stack([body, nw, hw, np.zeros_like(hw)], axis=1).astype(np.float32)
            out.append((j, w))
        self.__dict__["_skinning"] = (skel, out)
        return skel, out

    @property
    def vertex_count(self) -> int:
        return sum(p.vertex_count for p in self.parts)

    @property
    def triangle_count(self) -> int:
        return sum(len(p.indices) for p in self.parts)

    def part(self, name: str) -> MeshPart:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        allp = np.vstack([p.positions for p in self.parts])
        return allp.min(axis=0), allp.max(axis=0)


def weights_vector(blendshapes: dict[str, float] | np.ndarray | None) -> np.ndarray:
    """ARKit name → value mapping (unknown names ignored) as a clipped (52,) float32 vector."""
    w = np.zeros(NUM_SHAPES, np.float32)
    if blendshapes is None:
        return w
    if isinstance(blendshapes, np.ndarray):
        if blendshapes.shape != (NUM_SHAPES,):
            raise ValueError(f"blendshape vector must have shape (52,), got {blendshapes.shape}")
        return np.clip(blendshapes.astype(np.float32), 0.0, 1.0)
    for k, v in blendshapes.items():
        i = ARKIT_INDEX.get(k)
        if i is not None:
            w[i] = float(v)
    return np.clip(w, 0.0, 1.0)


def vertex_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals of a triangle mesh."""
    p = positions.astype(np.float64)
    tri = p[indices]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(p)
    for k in range(3):
        np.add.at(n, indices[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(length, 1e-12)).astype(np.float32)


def orient_faces(positions: np.ndarray, indices: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Wind each triangle counter-clockwise around the outward vertex normals (glTF's front face)."""
    tri = positions[indices]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (fn * normals[indices].sum(axis=1)).sum(axis=1) < 0
    out = indices.copy()
    out[flip] = out[flip][:, ::-1]
    return out
