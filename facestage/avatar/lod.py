"""Realtime level of detail for the built-in avatars.

On llvmpipe a frame's cost grows with the triangle count (set-up and binning) as well as with the covered
pixels, so the streaming path renders a decimated copy of each built-in (~15 k triangles instead of ~32 k)
while stills (``facestage avatar render``, README screenshots) keep the full mesh.

The copy is made from the full avatar, not re-sculpted: each big part is quadric-decimated and every
per-vertex attribute — normal, colour, UV, skin weights and all 52 blendshape deltas — is taken from the
nearest full-resolution vertex. Decimated vertices lie on the original surface, so the nearest vertex is
the one whose motion they should share; the lips stay at full resolution so the lip line (upper and lower
lip move apart on jawOpen) is never bridged by a coarse triangle.
"""

from __future__ import annotations

import threading

import numpy as np

from .face_layout import FaceLayout
from .model import Avatar, MeshPart

# Triangle budgets per part for the realtime copy; parts not listed (eyes, lids: thin shells with
# texture-painted irises) stay as they are.
REALTIME_BUDGET: dict[str, int] = {"head": 7000, "hair": 1300, "body": 600, "clothing": 700,
                                   "teeth_upper": 700, "teeth_lower": 500, "tongue": 400}
LODS = ("full", "realtime")

_cache: dict[int, Avatar] = {}  # full avatar uid -> its realtime copy
_lock = threading.Lock()


def _lip_region(p: np.ndarray) -> np.ndarray:
    f = FaceLayout()
    x, y, z = np.abs(p[:, 0]), p[:, 1], p[:, 2]
    return (x < f.mouth_half + 0.008) & (np.abs(y - f.mouth_y) < 0.014) & (z > 0.062)


def decimate_part(part: MeshPart, max_triangles: int, keep_lips: bool = False) -> MeshPart:
    """A decimated copy of ``part`` whose attributes and deltas come from the nearest original vertex."""
    from scipy.spatial import cKDTree

    from .sdf import _decimate

    if len(part.indices) <= max_triangles:
        return part
    verts, faces = _decimate(part.positions, part.indices, max_triangles, _lip_region if keep_lips else None)
    _, near = cKDTree(part.positions).query(verts)
    # Keep the original winding: orient each new triangle by the (transferred) vertex normals.
    from .model import orient_faces

    normals = part.normals[near]
    faces = orient_faces(verts, faces, normals).astype(np.uint32)
    deltas = None
    if part.deltas is not None:
        d = part.deltas.reshape(part.deltas.shape[0], -1, 6)
        deltas = np.ascontiguousarray(d[:, near]).reshape(d.shape[0], -1)
    out = MeshPart(part.name, verts, normals, faces, part.material, colors=part.colors[near], uvs=part.uvs[near],
                   head_weight=part.head_weight[near], neck_weight=part.neck_weight[near], deltas=deltas)
    return out


def realtime_lod(avatar: Avatar) -> Avatar:
    """The realtime copy of a procedural built-in (cached per avatar); any other avatar is returned as is."""
    if avatar.meta.get("generator") != "procedural" or avatar.meta.get("lod") == "realtime":
        return avatar
    with _lock:
        lod = _cache.get(avatar.uid)
        if lod is None:
            parts = [decimate_part(p, REALTIME_BUDGET[p.name], keep_lips=p.name == "head")
                     if p.name in REALTIME_BUDGET else p for p in avatar.parts]
            lod = Avatar(avatar.name, parts, head_pivot=avatar.head_pivot, neck_pivot=avatar.neck_pivot,
                         eye_centers=avatar.eye_centers, frame_center=dict(avatar.frame_center),
                         frame_height=dict(avatar.frame_height), meta={**avatar.meta, "lod": "realtime"})
            while len(_cache) >= 16:  # bounded: built-ins are few, but avatars can be rebuilt
                _cache.pop(next(iter(_cache)))
            _cache[avatar.uid] = lod
        return lod


def with_lod(avatar: Avatar, lod: str) -> Avatar:
    if lod == "realtime":
        return realtime_lod(avatar)
    return avatar
