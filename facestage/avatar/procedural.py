"""Procedural mouth parts (teeth, tongue) and the head/neck weights of the photo avatar's relief head.

The SDF-sculpted built-in busts that this module used to build are retired: the built-ins are made from the
MakeHuman body model (``human.py``). The photo avatar still uses these parts until it moves onto the body model.
"""

from __future__ import annotations

import numpy as np

from .face_layout import FaceLayout
from .face_shapes import lower_jaw_shapes
from .model import NUM_SHAPES, Material, MeshPart, attach_normal_deltas
from .sdf import ellipsoid, mesh_sdf, smoothstep


def head_weights(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skinning weights: the head transform above the jaw, a neck band below, the body at the bottom."""
    hw = smoothstep(-0.14, -0.10, p[:, 1])
    nw = (1 - hw) * smoothstep(-0.235, -0.16, p[:, 1])
    return hw.astype(np.float32), nw.astype(np.float32)


def _teeth(upper: bool, f: FaceLayout) -> MeshPart:
    yc = f.mouth_y + (0.0068 if upper else -0.0060)
    h = 0.0042 if upper else 0.0036

    def sdf(q: np.ndarray) -> np.ndarray:
        arch = ellipsoid(q, (0, yc, 0.054), (0.0205, 1.0, 0.0225))
        return np.maximum.reduce([np.abs(arch) - 0.0022, np.abs(q[:, 1] - yc) - h, 0.045 - q[:, 2]])

    pos, idx, nrm = mesh_sdf(sdf, (-0.026, yc - h - 0.002, 0.04), (0.026, yc + h + 0.002, 0.084), 0.0008,
                             max_triangles=900)
    ang = np.degrees(np.arctan2(pos[:, 0], pos[:, 2] - 0.056))
    gaps = np.abs(((ang + 7.5) % 15) - 7.5)
    col = np.where((gaps < 1.2)[:, None], [0.72, 0.70, 0.66], [0.96, 0.95, 0.91]).astype(np.float32)
    edge = np.abs(pos[:, 1] - (yc - h if upper else yc + h)) < 0.0009
    col[edge] *= 0.93
    part = MeshPart("teeth_upper" if upper else "teeth_lower", pos, nrm, idx,
                    Material("teeth", roughness=0.5, specular=0.2), colors=col)
    d = np.zeros((NUM_SHAPES, len(pos), 3), np.float32) if upper else lower_jaw_shapes(pos, f)
    attach_normal_deltas(part, d)
    part.normals[:] = nrm
    return part


def _tongue(f: FaceLayout) -> MeshPart:
    def sdf(q: np.ndarray) -> np.ndarray:
        body = ellipsoid(q, (0, f.mouth_y - 0.0095, 0.050), (0.0165, 0.0055, 0.026))
        return np.maximum(body, -(q[:, 2] - 0.028))

    pos, idx, nrm = mesh_sdf(sdf, (-0.02, f.mouth_y - 0.018, 0.02), (0.02, f.mouth_y - 0.002, 0.08), 0.0009,
                             max_triangles=700)
    groove = np.exp(-(pos[:, 0] / 0.003) ** 2)
    col = np.tile([0.78, 0.36, 0.38], (len(pos), 1)) * (1 - 0.15 * groove)[:, None]
    part = MeshPart("tongue", pos, nrm, idx, Material("tongue", roughness=0.35, specular=0.35, subsurface=0.5),
                    colors=col.astype(np.float32))
    attach_normal_deltas(part, lower_jaw_shapes(pos, f, tongue=True))
    part.normals[:] = nrm
    return part
