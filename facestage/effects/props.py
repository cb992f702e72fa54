"""props: 3D glasses, hat and ears anchored to the tracked 3D face, hidden where the head is in front.

Per face: the face frame (``anchor3d``: the tracker's pose solver on the chain's landmarks, pinned at the
nose bridge) moves the prop's vertices (``propmodels``, face coordinates) into the camera; the GL job
(``rendering.props_gl``) draws the head occluder depth-only and the prop lit to match, into a layer the
size of the prop's screen box; the layer is alpha-composited over the frame.

Head occluder: the tracked face mesh (852 triangles, each landmark back-projected at its tracked depth)
pushed ``FACE_PUSH`` back so the frame in front of the eyes is never clipped by the face, plus an ellipsoid
in face coordinates closing the head behind it — as wide as this face (its landmarks 234-454), as tall as
forehead-to-chin plus the skull, as deep as a head. Light: ambient = the face's mean colour (the room's
light on skin, normalised to its brightness) and one directional light from the upper left of the camera.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from ..tracking.types import Face
from .anchor3d import FaceFrame, face_frame
from .base import Effect, P, Param, register
from .propmodels import PROPS, TRANSLUCENT, PropMesh, prop_mesh
from .regions import face_roi
from .uvspace import triangles

FACE_PUSH = 0.004  # metres: the occluding face mesh sits this far behind the tracked surface
# Head proxy in face coordinates (metres): centre and semi-axes of the ellipsoid behind the face. The width
# follows each face; these are for the reference face (half-width 0.068 m at landmarks 234/454).
# A 15.6 cm wide, 20 cm deep head whose front (z -0.015) stays behind the glasses (-0.016 .. -0.019) and
# whose sides contain the face's own sides (x 0.068 at z 0.045); the glasses' arms run just outside it.
HEAD_CENTER = (0.0, -0.005, 0.085)
HEAD_AXES = (0.078, 0.125, 0.1)


@cache
def _ellipsoid() -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere (positions, triangles) to scale into the head proxy."""
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=3)
    return np.asarray(s.vertices, np.float64), np.asarray(s.faces, np.int32)


def head_occluders(ff: FaceFrame, lm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Depth-only geometry in camera coordinates: the pushed-back face mesh and the head ellipsoid."""
    face = ff.landmarks_camera(lm[:468], push_back=FACE_PUSH)
    sphere, tri = _ellipsoid()
    head = ff.to_camera((sphere * np.array(HEAD_AXES) + np.array(HEAD_CENTER)) * ff.width_ratio)
    return [(face, triangles().astype(np.int32)), (head, tri)]


def light_from_face(frame: np.ndarray, lm: np.ndarray) -> tuple[tuple, tuple]:
    """(ambient RGB, light RGB) 0..1 from the face's mean colour: props take the room's light."""
    roi = face_roi(lm, frame.shape, margin=0.0, top=0.0, bottom=0.0)
    if roi is None:
        return (0.45, 0.45, 0.45), (0.7, 0.7, 0.7)
    sub = frame[roi.slice()]
    small = cv2.resize(sub, (16, 16), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float64) / 255.0
    bgr = small.mean(axis=0)
    level = float(np.clip(bgr.mean(), 0.15, 0.9))
    tint = bgr[::-1] / max(bgr.max(), 1e-3)  # RGB hue of the light, brightest channel 1
    tint = 0.6 + 0.4 * tint  # skin is reddish: keep only part of its hue as the light's
    ambient = tuple(float(v) for v in tint * (0.35 + 0.5 * level))
    light = tuple(float(v) for v in tint * (0.45 + 0.6 * level))
    return ambient, light


BIG_PROPS = ("ears", "hat")
LIGHT_DIR = tuple(float(v) for v in np.array([-0.4, -0.6, -0.7]) / np.linalg.norm([-0.4, -0.6, -0.7]))


def combine(meshes: list[tuple[PropMesh, float]]) -> tuple[PropMesh, np.ndarray]:
    """Several props as one mesh (one GL job, one read-back per face) and the per-triangle translucent flag:
    lenses, and every part of a prop drawn at opacity < 1 (its alpha scaled, blended after the opaque)."""
    if len(meshes) == 1 and meshes[0][1] >= 1.0:
        m = meshes[0][0]
        return m, m.part_mask(set(TRANSLUCENT))
    pos, nrm, col, tri, part, clear, names, off = [], [], [], [], [], [], [], 0
    for m, opacity in meshes:
        c = m.colors.copy()
        c[:, 3] *= opacity
        pos.append(m.positions)
        nrm.append(m.normals)
        col.append(c)
        tri.append(m.triangles + off)
        part.append(m.part + len(names))
        clear.append(m.part_mask(set(TRANSLUCENT)) | (opacity < 1.0))
        names += list(m.parts)
        off += len(m.positions)
    return PropMesh(np.concatenate(pos), np.concatenate(nrm), np.concatenate(col), np.concatenate(tri),
                    np.concatenate(part), tuple(names)), np.concatenate(clear)


def prop_layer(frame_shape: tuple[int, ...], face: Face, mesh: PropMesh, scale: float = 1.0,
               occlude: bool = True, light: tuple[tuple, tuple] = ((0.5, 0.5, 0.5), (0.7, 0.7, 0.7)),
               parts: set[str] | None = None, translucent: np.ndarray | None = None, samples: int = 4
               ) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(premultiplied RGBA layer, box) for a prop (or a ``combine``d set) on one face, or None when it is
    off screen or the face is degenerate.

    ``parts`` limits the drawn parts (tests measure single parts; the occluders always draw);
    ``translucent`` flags the triangles blended after the opaque ones (default: the lenses)."""
    from ..rendering.props_gl import Layer, render_layer

    lm = face.landmarks
    ff = face_frame(lm, frame_shape)
    if ff is None:
        return None
    cam = ff.to_camera(mesh.positions.astype(np.float64) * (ff.width_ratio * scale))
    if (cam[:, 2] < 0.05).any():  # behind or at the camera: nothing sensible to draw
        return None
    nrm = mesh.normals.astype(np.float64) @ ff.rotation.T
    px = ff.project_camera(cam)
    h, w = frame_shape[:2]
    x0, y0 = np.floor(px.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(px.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    keep = np.ones(len(mesh.triangles), bool) if parts is None else mesh.part_mask(parts)
    clear = mesh.part_mask(set(TRANSLUCENT)) if translucent is None else translucent
    opaque_tri, clear_tri = mesh.triangles[keep & ~clear], mesh.triangles[keep & clear]
    layer = Layer(box=(int(x0), int(y0), int(x1), int(y1)), focal=ff.focal, center=ff.center,
                  opaque=(cam, nrm, mesh.colors, opaque_tri),
                  translucent=(cam, nrm, mesh.colors, clear_tri) if len(clear_tri) else None,
                  occluders=head_occluders(ff, lm) if occlude else [],
                  ambient=light[0], light_dir=LIGHT_DIR, light_col=light[1], samples=samples)
    return render_layer(layer), layer.box


def composite(frame: np.ndarray, rgba: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """frame[box] = layer + frame * (1 - alpha), the layer premultiplied, in place."""
    x0, y0, x1, y1 = box
    sub = frame[y0:y1, x0:x1]
    keep = cv2.cvtColor(255 - rgba[..., 3], cv2.COLOR_GRAY2BGR)
    rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)
    frame[y0:y1, x0:x1] = cv2.add(cv2.multiply(sub, keep, scale=1.0 / 255.0), rgb)


@register
class Props(Effect):
    name = "props"
    description = "3D glasses, top hat and bunny ears on the tracked 3D head, hidden behind the head, lit to match"
    params = {
        "glasses": P(0.0, 0, 1, "3D glasses on the nose bridge (opacity; 0 = off)"),
        "hat": P(0.0, 0, 1, "3D top hat on the head (opacity; 0 = off)"),
        "ears": P(0.0, 0, 1, "3D bunny ears on the head (opacity; 0 = off)"),
        "scale": P(1.0, 0.7, 1.5, "size relative to the face"),
        "occlude": Param("bool", True, "hide what is behind the head (the far arm of the glasses)"),
    }

    def is_active(self, params: dict) -> bool:
        return any(params[k] > 0 for k in PROPS)

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        # Two GL jobs per face at most: the glasses' thin arms need MSAA on a small box; hat and ears are big,
        # smooth shapes whose box costs 2-3x more with MSAA on llvmpipe, so they render without it.
        groups = [(kinds, samples) for kinds, samples in ((BIG_PROPS, 0), (("glasses",), 4))
                  if any(params[k] > 0 for k in kinds)]
        key = chosen_key(params)
        if state.get("key") != key:
            state["meshes"] = [(combine([(prop_mesh(k), params[k]) for k in kinds if params[k] > 0]), samples)
                               for kinds, samples in groups]
            state["key"] = key
        for face in faces:
            light = light_from_face(frame, face.landmarks)
            for (mesh, translucent), samples in state["meshes"]:
                out = prop_layer(frame.shape, face, mesh, params["scale"], params["occlude"], light,
                                 translucent=translucent, samples=samples)
                if out is not None:
                    composite(frame, out[0], out[1])
        return frame


def chosen_key(params: dict) -> tuple:
    return tuple((kind, params[kind]) for kind in PROPS if params[kind] > 0)
