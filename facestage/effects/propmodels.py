"""3D face props built by code with trimesh, stored as GLB, read back as flat vertex arrays.

Every prop is modelled in face coordinates (see ``anchor3d``: metres, x to the subject's left, y down,
z away from the camera, origin ~1.6 cm behind the nose bridge) so it needs no fitting: the tracked face
frame places it. Each part is a named node of the GLB (``rim``, ``lens``, ``bridge``, ``arm_left`` …) with
a base colour; the loader keeps the part names so tests and shading can tell them apart.

The GLBs are written on first use to ``$FACESTAGE_CACHE`` (default ``~/.cache/facestage``) /props and
read through trimesh like any uploaded glTF would be: the build is the script, the file is a cache.
Licence of the shipped props: ours, Apache-2.0.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError

PROPS = ("glasses", "hat", "ears")
BUILD_VERSION = 6  # bump when a model changes: the cache file name carries it
TRANSLUCENT = ("lens",)  # parts drawn last, blended


@dataclass(frozen=True)
class PropMesh:
    """One prop as flat arrays: positions/normals (N, 3) face coordinates, colours (N, 4) 0..1, triangles
    (M, 3), and per-vertex part index into ``parts``."""

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    triangles: np.ndarray
    part: np.ndarray
    parts: tuple[str, ...]

    def part_mask(self, names: set[str]) -> np.ndarray:
        """Per triangle: True when it belongs to one of ``names``."""
        ids = [i for i, n in enumerate(self.parts) if n in names]
        return np.isin(self.part[self.triangles[:, 0]], ids)


def _ellipse_ring(cx: float, cy: float, z: float, rx: float, ry: float, thick: float, depth: float,
                  n: int = 48):  # noqa: ANN202 - trimesh type
    """A lens rim: an elliptical ring of rectangular cross-section (thick x depth), closed."""
    import trimesh

    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(a), np.sin(a)
    loops = []
    for dr, dz in ((-thick / 2, -depth / 2), (thick / 2, -depth / 2), (thick / 2, depth / 2), (-thick / 2, depth / 2)):
        loops.append(np.column_stack([cx + (rx + dr) * c, cy + (ry + dr) * s, np.full(n, z + dz)]))
    verts = np.concatenate(loops)
    faces = []
    for k in range(4):  # four side strips between consecutive cross-section corners
        k2 = (k + 1) % 4
        for i in range(n):
            j = (i + 1) % n
            a0, a1, b0, b1 = k * n + i, k * n + j, k2 * n + i, k2 * n + j
            faces += [(a0, b0, a1), (a1, b0, b1)]
    m = trimesh.Trimesh(verts, np.array(faces), process=False)
    m.fix_normals()
    return m


def _disc(cx: float, cy: float, z: float, rx: float, ry: float, depth: float):  # noqa: ANN202
    import trimesh

    m = trimesh.creation.cylinder(radius=1.0, height=depth, sections=40)
    m.apply_scale([rx, ry, 1.0])
    m.apply_translation([cx, cy, z])
    return m


def _bar(a: tuple[float, float, float], b: tuple[float, float, float], w: float, h: float):  # noqa: ANN202
    """A box of cross-section w x h from point a to point b."""
    import trimesh

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    d = b_ - a_
    length = float(np.linalg.norm(d))
    m = trimesh.creation.box(extents=[w, h, length])
    # Box axis z -> direction d.
    m.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], d / length))
    m.apply_translation((a_ + b_) / 2)
    return m


def _glasses() -> dict:
    # Lens plane in front of the eyes; the bridge rests on the nose just in front of landmark 168
    # (z -0.016). The reference face curves back fast at the sides (z +0.02 at x 0.062, +0.04 at 0.068),
    # so end pieces (part of the frame) wrap back to hinges 5 mm off the temples and the arms run along the
    # head, outside the head proxy, to hooks behind the ears.
    lens_x, lens_y, z = 0.032, 0.002, -0.016
    rx, ry, thick, depth = 0.025, 0.019, 0.0035, 0.004
    rim = [_ellipse_ring(s * lens_x, lens_y, z, rx, ry, thick, depth) for s in (-1, 1)]
    lens = [_disc(s * lens_x, lens_y, z, rx - thick / 2, ry - thick / 2, 0.0015) for s in (-1, 1)]
    bridge = _bar((-0.009, -0.004, z - 0.003), (0.009, -0.004, z - 0.003), 0.003, 0.003)
    edge = lens_x + rx + thick / 2  # the frame's outer edge
    parts = {}
    for side, s in (("right", -1), ("left", 1)):  # the subject's right is at -x
        front, hinge = (s * edge, -0.004, z), (s * 0.068, -0.004, 0.03)
        ear, tip = (s * 0.079, -0.002, 0.064), (s * 0.079, 0.014, 0.09)
        rim.append(_bar(front, hinge, 0.003, 0.005))  # end piece
        parts[f"arm_{side}"] = [_bar(hinge, ear, 0.003, 0.005)]
        parts[f"tip_{side}"] = [_bar(ear, tip, 0.003, 0.004)]  # the hook behind the ear
    dark, glass = (0.08, 0.07, 0.07, 1.0), (0.12, 0.16, 0.2, 0.55)
    out = {"rim": (rim, dark), "bridge": ([bridge], dark), "lens": (lens, glass)}
    out.update({name: (meshes, dark) for name, meshes in parts.items()})
    return out


def _hat() -> dict:
    import trimesh

    crown = trimesh.creation.cylinder(radius=0.078, height=0.13, sections=48)
    crown.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    crown.apply_translation([0, -0.17, 0.05])
    band = trimesh.creation.cylinder(radius=0.0795, height=0.022, sections=48)
    band.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    band.apply_translation([0, -0.116, 0.05])
    brim = trimesh.creation.cylinder(radius=0.115, height=0.006, sections=64)
    brim.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    brim.apply_translation([0, -0.105, 0.05])
    return {"crown": ([crown], (0.12, 0.1, 0.11, 1.0)), "band": ([band], (0.55, 0.12, 0.14, 1.0)),
            "brim": ([brim], (0.1, 0.08, 0.09, 1.0))}


def _ears() -> dict:
    import trimesh

    out = {}
    for name, s in (("ear_right", -1), ("ear_left", 1)):
        outer = trimesh.creation.icosphere(subdivisions=3)
        outer.apply_scale([0.022, 0.065, 0.01])
        inner = trimesh.creation.icosphere(subdivisions=2)
        inner.apply_scale([0.012, 0.045, 0.006])
        tilt = trimesh.transformations.rotation_matrix(s * 0.25, [0, 0, 1])
        for m, dz in ((outer, 0.0), (inner, -0.006)):
            m.apply_transform(tilt)
            m.apply_translation([s * 0.045, -0.13, 0.04 + dz])
        out[name] = ([outer], (0.9, 0.88, 0.9, 1.0))
        out[name + "_inner"] = ([inner], (0.95, 0.62, 0.7, 1.0))
    return out


BUILDERS = {"glasses": _glasses, "hat": _hat, "ears": _ears}


def build_glb(kind: str) -> bytes:
    """The prop as a GLB: one node per part, each with a PBR base colour."""
    import trimesh

    scene = trimesh.Scene()
    for part, (meshes, rgba) in BUILDERS[kind]().items():
        mesh = trimesh.util.concatenate(meshes)
        mesh.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
            name=part, baseColorFactor=[int(round(c * 255)) for c in rgba], metallicFactor=0.1,
            roughnessFactor=0.5, alphaMode="BLEND" if rgba[3] < 1 else "OPAQUE"))
        scene.add_geometry(mesh, node_name=part, geom_name=part)
    return scene.export(file_type="glb")


def cache_dir() -> Path:
    return Path(os.environ.get("FACESTAGE_CACHE", Path.home() / ".cache" / "facestage")) / "props"


_LOCK = threading.Lock()


def prop_path(kind: str) -> Path:
    """The prop's GLB, built and cached on first use."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown prop {kind!r}; available: {', '.join(PROPS)}")
    path = cache_dir() / f"{kind}-v{BUILD_VERSION}.glb"
    with _LOCK:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(build_glb(kind))
            os.replace(tmp, path)
    return path


def load_glb(path: Path) -> PropMesh:
    """Flatten a GLB scene (node transforms applied) into one PropMesh; colours from base colours."""
    import trimesh

    try:
        scene = trimesh.load(str(path), file_type="glb", force="scene")
    except Exception as exc:  # noqa: BLE001 - trimesh raises many types for bad files
        raise ConfigError(f"cannot read the prop model ({type(exc).__name__})") from None
    pos, nrm, col, tri, part, names = [], [], [], [], [], []
    offset = 0
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        mesh = scene.geometry[geom_name].copy()
        mesh.apply_transform(transform)
        rgba = getattr(getattr(mesh.visual, "material", None), "baseColorFactor", None)
        if len(getattr(mesh, "faces", ())) == 0:
            continue
        # Smooth normals only across a part's curved surfaces; boxes and rim edges stay crisp.
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
        mesh.merge_vertices()
        rgba = np.asarray(rgba if rgba is not None else (200, 200, 200, 255), np.float64) / 255.0
        names.append(str(node))
        pos.append(mesh.vertices)
        # Lenses are thin flat discs: one normal facing forward (averaged cap/side normals draw spokes).
        nrm.append(np.tile([0.0, 0.0, -1.0], (len(mesh.vertices), 1)) if str(node) in TRANSLUCENT
                   else mesh.vertex_normals)
        col.append(np.tile(rgba, (len(mesh.vertices), 1)))
        tri.append(mesh.faces + offset)
        part.append(np.full(len(mesh.vertices), len(names) - 1))
        offset += len(mesh.vertices)
    if not pos:
        raise ConfigError("the prop model has no meshes")
    return PropMesh(np.concatenate(pos).astype(np.float32), np.concatenate(nrm).astype(np.float32),
                    np.concatenate(col).astype(np.float32), np.concatenate(tri).astype(np.int32),
                    np.concatenate(part).astype(np.int32), tuple(names))


@cache
def prop_mesh(kind: str) -> PropMesh:
    return load_glb(prop_path(kind))
