"""Signed-distance primitives and a marching-cubes mesher for the procedural avatars.

Distances are in metres over (N,3) point arrays; negative inside. Smooth unions (polynomial smin)
are what make the heads read as one sculpted surface instead of spheres glued together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SDF = Callable[[np.ndarray], np.ndarray]


def ellipsoid(p: np.ndarray, c, r) -> np.ndarray:
    # Bound-corrected ellipsoid distance (Quilez): good near the surface, which is all marching cubes needs.
    q = (p - np.asarray(c)) / np.asarray(r)
    k0 = np.linalg.norm(q, axis=1)
    k1 = np.linalg.norm(q / np.asarray(r), axis=1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def sphere(p: np.ndarray, c, r: float) -> np.ndarray:
    return np.linalg.norm(p - np.asarray(c), axis=1) - r


def capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    pa, ba = p - a, b - a
    h = np.clip((pa @ ba) / (ba @ ba), 0.0, 1.0)
    return np.linalg.norm(pa - h[:, None] * ba, axis=1) - r


def rounded_cylinder_y(p: np.ndarray, c, r: float, half_h: float, round_r: float) -> np.ndarray:
    q = p - np.asarray(c)
    d = np.stack([np.hypot(q[:, 0], q[:, 2]) - r + round_r, np.abs(q[:, 1]) - half_h + round_r], axis=1)
    return np.minimum(np.maximum(d[:, 0], d[:, 1]), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=1) - round_r


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -smin(-a, -b, k)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def sdf_normals(sdf: SDF, verts: np.ndarray, eps: float = 2e-4) -> np.ndarray:
    """Unit outward normals from the analytic field's central-difference gradient."""
    v = verts.astype(np.float64)
    g = np.stack([sdf(v + np.eye(3)[i] * eps) - sdf(v - np.eye(3)[i] * eps) for i in range(3)], axis=1)
    return (g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _decimate(verts: np.ndarray, faces: np.ndarray, max_triangles: int,
              keep: Callable[[np.ndarray], np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation; triangles wholly inside ``keep`` stay at full resolution (their painted detail
    would smear over large triangles), the rest is decimated with its border to them locked."""
    import fast_simplification

    kept = keep(verts)[faces].all(axis=1) if keep is not None else np.zeros(len(faces), bool)
    rest = faces[~kept]
    budget = max(max_triangles - int(kept.sum()), len(rest) // 20)
    if len(rest) <= budget:
        return verts, faces
    used, inv = np.unique(rest, return_inverse=True)
    rv, rf = fast_simplification.simplify(verts[used], inv.reshape(-1, 3), target_count=budget,
                                          preserve_border=bool(kept.any()))
    if not kept.any():
        return rv.astype(np.float32), rf.astype(np.uint32)
    kused, kinv = np.unique(faces[kept], return_inverse=True)
    allv = np.vstack([verts[kused], rv.astype(np.float32)])
    allf = np.vstack([kinv.reshape(-1, 3), rf + len(kused)])
    # Locked border vertices exist in both halves with identical coordinates: weld them.
    uniq, weld = np.unique(allv, axis=0, return_inverse=True)
    allf = weld.reshape(-1)[allf]
    allf = allf[(allf[:, 0] != allf[:, 1]) & (allf[:, 1] != allf[:, 2]) & (allf[:, 0] != allf[:, 2])]
    return uniq.astype(np.float32), allf.astype(np.uint32)


def mesh_sdf(sdf: SDF, lo, hi, step: float, max_triangles: int | None = None,
             keep: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching cubes over a box: (positions, triangles, normals) with outward normals, CCW faces.

    Fine voxels keep thin features (the lip line, the ears); quadric decimation down to
    ``max_triangles`` then spends triangles where the curvature is, which llvmpipe's per-triangle
    cost makes worth it.
    """
    from skimage.measure import marching_cubes

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    counts = np.ceil((hi - lo) / step).astype(int) + 1
    axes = [lo[i] + step * np.arange(counts[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    vol = np.empty(len(grid), np.float32)
    chunk = 400_000
    for s in range(0, len(grid), chunk):
        vol[s:s + chunk] = sdf(grid[s:s + chunk])
    vol = vol.reshape(counts)
    verts, faces, _, _ = marching_cubes(vol, 0.0, spacing=(step, step, step))
    verts = (verts + lo).astype(np.float32)
    faces = np.ascontiguousarray(faces).astype(np.uint32)
    if max_triangles is not None and len(faces) > max_triangles:
        verts, faces = _decimate(verts, faces, max_triangles, keep)
    # Normals from the analytic field's gradient are smoother than the mesh's.
    normals = sdf_normals(sdf, verts, eps=step * 0.25)
    from .model import orient_faces

    return verts, orient_faces(verts, faces, normals).astype(np.uint32), normals
