"""Builds the stylized built-in avatars from a small spec: sculpted SDFs → marching cubes → painted,
skinned parts with all 52 ARKit shapes. Takes a few seconds once; ``builtin.py`` caches the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .eyes import eyeball, eyelids
from .face_layout import FaceLayout, gauss
from .face_shapes import lower_jaw_shapes, skin_shapes
from .model import NUM_SHAPES, Avatar, Material, MeshPart, attach_normal_deltas
from .sculpt import HeadShape, body_sdf, clothing_sdf, hair_sdf, head_sdf, mouth_cavity_sdf, neckline_y
from .sdf import ellipsoid, mesh_sdf, smoothstep

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class AvatarSpec:
    name: str
    description: str
    skin: RGB
    lips: RGB
    hair: RGB
    brows: RGB
    iris: RGB
    brand: RGB
    hair_style: str  # crop | bob | bun
    clothing: str  # crew | vneck | open
    shape: HeadShape = HeadShape()
    head_step: float = 0.0022


def head_weights(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skinning weights: the head transform above the jaw, a neck band below, the body at the bottom."""
    hw = smoothstep(-0.14, -0.10, p[:, 1])
    nw = (1 - hw) * smoothstep(-0.235, -0.16, p[:, 1])
    return hw.astype(np.float32), nw.astype(np.float32)


def _paint_skin(p: np.ndarray, spec: AvatarSpec, f: FaceLayout) -> np.ndarray:
    skin = np.asarray(spec.skin)
    col = np.tile(skin, (len(p), 1))
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # Warm cheeks and nose tip, slightly cooler jaw: cheap painted "subsurface".
    blush = gauss(p, (0.042, -0.018, 0.065), 0.02) + gauss(p, (-0.042, -0.018, 0.065), 0.02)
    blush += 0.5 * gauss(p, f.nose_tip, 0.012)
    col = col * (1 - 0.10 * blush[:, None]) + np.array([0.85, 0.35, 0.35]) * 0.10 * blush[:, None]
    # Lips.
    lx = x / 0.022
    ly = (y - f.mouth_y) / np.where(y > f.mouth_y, 0.0095, 0.0125)
    lip_r = np.sqrt(lx**2 + ly**2)
    lip = (1 - smoothstep(0.8, 1.05, lip_r)) * smoothstep(0.065, 0.075, z)
    col = col * (1 - lip[:, None]) + np.asarray(spec.lips) * lip[:, None]
    # Brows: tapered arcs.
    for side in (1, -1):
        u = (side * x - 0.012) / 0.038  # 0 at the inner end, 1 at the outer end
        centre = f.brow_y + 0.005 + 0.004 * np.sin(np.pi * np.clip(u, 0, 1) * 0.8) - 0.006 * np.clip(u - 0.6, 0, 1)
        half = 0.0034 * (1 - 0.55 * np.clip(u, 0, 1))
        inside = (1 - smoothstep(half * 0.6, half * 1.4, np.abs(y - centre)))
        inside *= smoothstep(-0.08, 0.02, u) * (1 - smoothstep(0.95, 1.08, u)) * smoothstep(0.045, 0.06, z)
        col = col * (1 - 0.9 * inside[:, None]) + np.asarray(spec.brows) * 0.9 * inside[:, None]
    # Eye sockets: painted occlusion so the eyes sit in the head instead of on it.
    for side in (1, -1):
        wall = np.linalg.norm(p - f.eye_center(side), axis=1) - (f.lid_r + 0.0018)
        occl = 1 - smoothstep(0.0, 0.004, wall)
        col *= (1 - 0.28 * occl)[:, None]
    # Mouth interior: dark, redder near the lips, near-black deep inside.
    cav = mouth_cavity_sdf(p, f)
    inside = 1 - smoothstep(0.0008, 0.0032, cav)
    depth = smoothstep(0.055, 0.08, z)
    interior = np.array([0.26, 0.06, 0.07]) * (0.2 + 0.8 * depth)[:, None]
    col = col * (1 - inside[:, None]) + interior * inside[:, None]
    return col.astype(np.float32)


def _painted_detail(p: np.ndarray, f: FaceLayout) -> np.ndarray:
    """Where paint has sharp edges (lips, mouth interior, brows): kept at full mesh resolution."""
    x, y, z = np.abs(p[:, 0]), p[:, 1], p[:, 2]
    mouth = (x < f.mouth_half + 0.012) & (np.abs(y - f.mouth_y) < 0.02) & (z > 0.066)  # lips, not the cavity
    brows = (x > 0.006) & (x < 0.056) & (y > f.brow_y - 0.006) & (y < f.brow_y + 0.018) & (z > 0.04)
    socket = np.linalg.norm(np.stack([x - f.eye_x, y - f.eye_y, z - f.eye_z], axis=1), axis=1)
    return mouth | brows | (socket < f.lid_r + 0.0045)  # the socket rim


def _hair_colors(p: np.ndarray, base: RGB) -> np.ndarray:
    ang = np.arctan2(p[:, 0], p[:, 2] + 0.02)
    strands = 0.8 + 0.2 * np.sin(ang * 70 + np.sin(p[:, 1] * 90) * 2.0) * np.sin(ang * 23 + 1.0)
    shade = 0.85 + 0.25 * smoothstep(-0.05, 0.12, p[:, 1])
    return np.clip(np.asarray(base)[None, :] * (strands * shade)[:, None], 0, 1).astype(np.float32)


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


def build_avatar(spec: AvatarSpec) -> Avatar:
    f = FaceLayout()
    shape = spec.shape
    pos, idx, nrm = mesh_sdf(lambda q: head_sdf(q, shape, f), (-0.1, -0.225, -0.125), (0.1, 0.14, 0.125),
                             spec.head_step, max_triangles=12000, keep=lambda q: _painted_detail(q, f))
    hw, nw = head_weights(pos)
    head = MeshPart("head", pos, nrm, idx, Material("skin", roughness=0.6, specular=0.18, subsurface=0.7),
                    colors=_paint_skin(pos, spec, f), head_weight=hw, neck_weight=nw)
    attach_normal_deltas(head, skin_shapes(pos, nrm, f))
    head.normals[:] = nrm

    hp, hi, hn = mesh_sdf(lambda q: hair_sdf(q, spec.hair_style, shape), (-0.115, -0.1, -0.135),
                          (0.115, 0.16, 0.125), 0.0025, max_triangles=5500)
    hair = MeshPart("hair", hp, hn, hi, Material("hair", roughness=0.75, specular=0.1),
                    colors=_hair_colors(hp, spec.hair), head_weight=head_weights(hp)[0],
                    neck_weight=head_weights(hp)[1])

    # Skin only where it can show: the garment covers the rest.
    def skin_body(q: np.ndarray) -> np.ndarray:
        return np.maximum(body_sdf(q, spec.clothing), neckline_y(q, spec.clothing) - 0.03 - q[:, 1])

    bp, bi, bn = mesh_sdf(skin_body, (-0.215, -0.51, -0.135), (0.215, -0.1, 0.12),
                          0.005, max_triangles=2500)
    bhw, bnw = head_weights(bp)
    body = MeshPart("body", bp, bn, bi, Material("skin", roughness=0.55, specular=0.2, subsurface=0.6),
                    colors=np.tile(np.asarray(spec.skin, np.float32), (len(bp), 1)), head_weight=bhw,
                    neck_weight=bnw)
    cp, ci, cn = mesh_sdf(lambda q: clothing_sdf(q, spec.clothing), (-0.22, -0.5, -0.14), (0.22, -0.16, 0.125),
                          0.004, max_triangles=3000)
    fold = 0.93 + 0.07 * np.cos(cp[:, 0] * 45 + cp[:, 1] * 20) * smoothstep(0.3, 0.45, -cp[:, 1])
    chw, cnw = head_weights(cp)
    cloth = MeshPart("clothing", cp, cn, ci, Material("clothing", roughness=0.8, specular=0.1),
                     colors=(np.asarray(spec.brand)[None, :] * fold[:, None]).astype(np.float32),
                     head_weight=chw, neck_weight=cnw)

    parts = [head, hair, body, cloth, _teeth(True, f), _teeth(False, f), _tongue(f)]
    for side in (1, -1):
        parts.append(eyeball(side, f, spec.iris))
        parts.append(eyelids(side, f, spec.skin))
    return Avatar(spec.name, parts, eye_centers=(tuple(f.eye_center(1)), tuple(f.eye_center(-1))),
                  meta={"description": spec.description, "brand_color": spec.brand, "generator": "procedural"})
