"""Skeletons for linear-blend skinning: joints, hierarchy, bind pose, inverse bind matrices and posing.

A pose is a set of *world-aligned* rotations about joints (the head turns by yaw/pitch/roll in the
viewer's frame, whatever the bone's own rest orientation — glTF rigs have arbitrary bone axes). Each
rotation is conjugated into the joint's rest frame, so children follow their parents and the skin
matrices are ``posed_world @ inverse_bind`` as in glTF. The vertex shader blends ≤ 4 of them per vertex;
``skin_points`` is the same maths on the CPU (pyrender backend, tests, export checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

MAX_INFLUENCES = 4
MAX_JOINTS = 256  # the renderer's uniform block holds this many mat4 (16 KB)
# Humanoid slots the rig drives, in VRM's humanBones vocabulary.
DRIVEN_BONES = ("hips", "spine", "chest", "upperChest", "neck", "head", "leftEye", "rightEye", "jaw")


@dataclass
class Skeleton:
    names: list[str]
    parents: np.ndarray  # (J,) int, -1 = root; every parent index is smaller than its child's
    rest: np.ndarray  # (J,4,4) world transforms in the bind pose
    inverse_bind: np.ndarray | None = None  # (J,4,4); None → inverse of ``rest``
    humanoid: dict[str, str] = field(default_factory=dict)  # VRM bone name → joint name

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.parents, np.int64).reshape(-1)
        self.rest = np.asarray(self.rest, float).reshape(-1, 4, 4)
        j = len(self.names)
        if len(self.parents) != j or len(self.rest) != j:
            raise InputError("skeleton: names, parents and rest transforms differ in length")
        if j == 0 or j > MAX_JOINTS:
            raise InputError(f"skeleton must have 1..{MAX_JOINTS} joints, got {j}")
        for i, p in enumerate(self.parents):
            if p >= i:
                raise InputError("skeleton joints must be ordered parents first")
        if self.inverse_bind is None:
            self.inverse_bind = np.linalg.inv(self.rest)
        self.inverse_bind = np.asarray(self.inverse_bind, float).reshape(-1, 4, 4)
        for k, v in self.humanoid.items():
            if v not in self.names:
                raise InputError(f"humanoid bone {k} names unknown joint {v!r}")

    @property
    def joint_count(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def bone(self, humanoid_name: str) -> int | None:
        """Joint index of a humanoid bone (VRM name), or None when the model has none."""
        j = self.humanoid.get(humanoid_name)
        return None if j is None else self.names.index(j)

    def joint_position(self, i: int) -> np.ndarray:
        return self.rest[i, :3, 3].copy()

    def local_rest(self) -> np.ndarray:
        """(J,4,4) parent-relative bind transforms."""
        # One batched inverse: this runs every frame, and 54 separate np.linalg.inv calls cost ~3 ms.
        parents = np.asarray(self.parents)
        out = self.rest.copy()
        child = np.flatnonzero(parents >= 0)
        if len(child):
            out[child] = np.linalg.inv(self.rest[parents[child]]) @ self.rest[child]
        return out

    def posed(self, rotations: dict[int, np.ndarray]) -> np.ndarray:
        """(J,4,4) posed world transforms for world-aligned 3×3 ``rotations`` about joints."""
        local = self.local_rest()
        world = np.empty_like(self.rest)
        for i, p in enumerate(self.parents):
            m = local[i]
            r = rotations.get(i)
            if r is not None:
                rr = self.rest[i, :3, :3]
                # Conjugate into the joint's rest frame: the rotation acts about world axes at the joint.
                d = np.eye(4)
                d[:3, :3] = np.linalg.solve(rr, np.asarray(r, float) @ rr)
                m = m @ d
            world[i] = m if p < 0 else world[p] @ m
        return world

    def skin_matrices(self, rotations: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """(J,4,4) matrices the shader blends: posed world × inverse bind (identity in the bind pose)."""
        world = self.posed(rotations or {})
        return world @ self.inverse_bind


def validate_influences(joints: np.ndarray, weights: np.ndarray, n_vertices: int, n_joints: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(V,4) int32 joints and normalised float32 weights; clear errors for out-of-range data."""
    j = np.asarray(joints).reshape(n_vertices, -1)
    w = np.asarray(weights, np.float32).reshape(n_vertices, -1)
    if j.shape != w.shape:
        raise InputError("skin: joints and weights differ in shape")
    if j.shape[1] > MAX_INFLUENCES:  # keep the strongest four
        top = np.argsort(-w, axis=1)[:, :MAX_INFLUENCES]
        j, w = np.take_along_axis(j, top, 1), np.take_along_axis(w, top, 1)
    elif j.shape[1] < MAX_INFLUENCES:
        pad = MAX_INFLUENCES - j.shape[1]
        j = np.hstack([j, np.zeros((n_vertices, pad), j.dtype)])
        w = np.hstack([w, np.zeros((n_vertices, pad), np.float32)])
    w = np.where(w > 0, w, 0.0).astype(np.float32)
    if j.size and (int(j.min()) < 0 or int(j[w > 0].max(initial=0)) >= n_joints):
        raise InputError(f"skin: joint index out of range (skeleton has {n_joints} joints)")
    j = np.where(w > 0, j, 0)
    s = w.sum(axis=1, keepdims=True)
    w = np.where(s > 1e-8, w / np.maximum(s, 1e-8), 0.0).astype(np.float32)
    return np.ascontiguousarray(j, np.int32), np.ascontiguousarray(w, np.float32)


def blend_matrices(skin: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V,4,4) per-vertex blended matrices; vertices with no weight stay in the bind pose."""
    m = np.einsum("vk,vkab->vab", weights, skin[joints])
    rest = 1.0 - weights.sum(axis=1)
    m += rest[:, None, None] * np.eye(4)
    return m


def skin_points(skin: np.ndarray, joints: np.ndarray, weights: np.ndarray, positions: np.ndarray,
                normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """CPU linear-blend skinning, exactly what the vertex shader computes."""
    m = blend_matrices(skin, joints, weights)
    p = np.einsum("vab,vb->va", m[:, :3, :3], positions) + m[:, :3, 3]
    n = None
    if normals is not None:
        n = np.einsum("vab,vb->va", m[:, :3, :3], normals)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return p, n


def translation(p) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = np.asarray(p, float)
    return m
