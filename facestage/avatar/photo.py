"""Photo avatars: one frontal photo → a textured, densified 3D face set into a head, with eyes and a mouth
interior, driven by the same 52 ARKit shapes.

The tracked 468 landmarks and MediaPipe's tessellation give the face surface; the photo itself is the
texture (sampled at each landmark's own pixel, so at neutral the face re-renders the photo exactly: the
"talking photo" mode). Shapes are defined on the landmarks (smooth fields from ``face_shapes`` plus
landmark-pair lid motion for blinks) and carried to the densified mesh by the same subdivision.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..errors import InputError
from ..tracking.arkit import ARKIT_INDEX
from .eyes import GAZE_DEG
from .face_layout import FaceLayout, rot_x, rot_y
from .face_shapes import lower_jaw_shapes, skin_shapes
from .model import NUM_SHAPES, Avatar, Material, MeshPart, attach_normal_deltas, vertex_normals
from .procedural import _teeth, _tongue

# MediaPipe face-mesh indices (subject's left = image right).
LOWER_LIP_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
UPPER_LIP_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
MOUTH_CORNERS = (78, 308)
LIPS_OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
# Upper-lid → lower-lid landmark pairs, and the eye contours (outer corner → lower lid → inner corner → upper lid).
LID_PAIRS = {"Right": ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)),
             "Left": ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382))}
EYE_CONTOUR = {"Right": (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
               "Left": (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)}
UPPER_LID_RING = {"Right": (247, 30, 29, 27, 28, 56, 190), "Left": (467, 260, 259, 257, 258, 286, 414)}
FACE_WIDTH_M = 0.142  # cheek to cheek (landmarks 234–454) of an adult face
# MediaPipe's z comes out flatter than a real face: with its z as is (1.0) the turned head under-reads
# (astronaut, yaw ±30 / pitch ±15 closed loop: worst 8.4°, yaw 30 reads ~23; grace at 1.0 is not even
# detected at most angles), at 1.3 the worst is 5.4–5.7° on both photos. The tracker was not tuned
# to this value; its accuracy on independent 3-D heads is in docs/tracking.md ("Head pose accuracy").
DEPTH_SCALE = 1.3


@cache
def tessellation() -> np.ndarray:
    """Triangles of MediaPipe's face mesh (from the tessellation edge list)."""
    import mediapipe as mp

    edges = np.array(sorted(mp.solutions.face_mesh.FACEMESH_TESSELATION))
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), set()).add(int(b))
        adj.setdefault(int(b), set()).add(int(a))
    tris = {tuple(sorted((int(a), int(b), int(c)))) for a, b in edges for c in adj[int(a)] & adj[int(b)]}
    return np.array(sorted(tris), np.int64)


def subdivide(tris: np.ndarray, fields: list[np.ndarray], levels: int = 2) -> tuple[np.ndarray, list[np.ndarray]]:
    """Midpoint subdivision; every per-vertex field (positions, uvs, shape deltas…) is averaged alike."""
    for _ in range(levels):
        n = len(fields[0])
        e = np.sort(np.vstack([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(e, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        mid = n + inv.reshape(3, -1).T  # (T,3) new vertex ids for edges 01, 12, 20
        fields = [np.concatenate([f, 0.5 * (f[uniq[:, 0]] + f[uniq[:, 1]])], axis=0) for f in fields]
        a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
        m01, m12, m20 = mid[:, 0], mid[:, 1], mid[:, 2]
        tris = np.vstack([np.stack([a, m01, m20], 1), np.stack([m01, b, m12], 1),
                          np.stack([m20, m12, c], 1), np.stack([m01, m12, m20], 1)])
    return tris, fields


def _to_metric(lm: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Pixels → metres in the avatar frame (y up, z towards the camera), mid-eyes at the built-ins' eye line."""
    s = FACE_WIDTH_M / max(float(np.linalg.norm(lm[234, :2] - lm[454, :2])), 1e-6)
    eyes = lm[[33, 133, 263, 362]].mean(axis=0)  # the four eye corners
    origin = np.array([eyes[0], eyes[1], lm[1, 2]])
    p = np.empty((len(lm), 3))
    p[:, 0] = (lm[:, 0] - origin[0]) * s
    p[:, 1] = -(lm[:, 1] - origin[1]) * s + 0.017
    p[:, 2] = -(lm[:, 2] - origin[2]) * s * DEPTH_SCALE + 0.103  # nose tip where the built-in heads have it
    return p, s, origin


def _layout(p: np.ndarray) -> FaceLayout:
    mouth = 0.5 * (p[13] + p[14])
    half = 0.5 * float(np.linalg.norm(p[MOUTH_CORNERS[0]] - p[MOUTH_CORNERS[1]]))
    ey = float(p[[159, 145, 386, 374], 1].mean())  # mid-lids of both eyes
    eye_x = float(np.abs(0.5 * (p[[33, 263], 0] + p[[133, 362], 0])).mean())  # half the distance between eyes
    return FaceLayout(eye_x=eye_x, eye_y=ey, eye_z=float(0.5 * (p[159, 2] + p[386, 2]) - 0.012),
                      mouth_y=float(mouth[1]), mouth_z=float(max(p[13, 2], p[14, 2])), mouth_half=half,
                      brow_y=float(0.5 * (p[105, 1] + p[334, 1])),
                      jaw_pivot=(0.0, float(mouth[1]) + 0.054, float(mouth[2]) - 0.10),
                      nose_tip=tuple(float(v) for v in p[1]))


def _lower_labels(p: np.ndarray) -> np.ndarray:
    """1 for landmarks on the mandible side of the lips, 0 above; exact on the inner lips."""
    mouth_y = 0.5 * (p[13, 1] + p[14, 1])
    lower = (p[:, 1] < mouth_y).astype(np.float64)
    lower[list(LOWER_LIP_INNER + LIPS_OUTER_LOWER)] = 1.0
    lower[list(UPPER_LIP_INNER)] = 0.0
    lower[list(MOUTH_CORNERS)] = 0.5
    return lower


def _lid_shapes(p: np.ndarray, d: np.ndarray) -> None:
    """Blink/squint/wide as landmark moves: the upper lid comes down onto the lower one."""
    for side, pairs in LID_PAIRS.items():
        for up, lo in pairs:
            gap = p[lo] - p[up]
            d[ARKIT_INDEX[f"eyeBlink{side}"], up] = 0.88 * gap
            d[ARKIT_INDEX[f"eyeBlink{side}"], lo] = -0.12 * gap
            d[ARKIT_INDEX[f"eyeSquint{side}"], lo] = -0.3 * gap
            d[ARKIT_INDEX[f"eyeSquint{side}"], up] = 0.15 * gap
            d[ARKIT_INDEX[f"eyeWide{side}"], up] = -0.3 * gap
            d[ARKIT_INDEX[f"eyeLookDown{side}"], up] = 0.15 * gap
            d[ARKIT_INDEX[f"eyeLookUp{side}"], up] = -0.12 * gap
        ring = UPPER_LID_RING[side]
        mean_gap = np.mean([p[lo] - p[up] for up, lo in pairs], axis=0)
        for r in ring:  # the fold above the lid follows it half-way
            d[ARKIT_INDEX[f"eyeBlink{side}"], r] = 0.35 * mean_gap
            d[ARKIT_INDEX[f"eyeWide{side}"], r] = -0.2 * mean_gap


def _eye_patch(side: str, p: np.ndarray, uv_of) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A photo-textured disc behind one eye opening, a bit larger than it, so the eye can slide (gaze)."""
    ring = np.array(EYE_CONTOUR[side])
    c = p[ring].mean(axis=0)
    out = c + (p[ring] - c) * 1.35
    pos = np.vstack([c, p[ring], out])
    pos[:, 2] = np.minimum(pos[:, 2], p[ring, 2].min()) - 0.0025
    k = len(ring)
    tris = [(0, 1 + i, 1 + (i + 1) % k) for i in range(k)]
    tris += [(1 + i, 1 + k + i, 1 + (i + 1) % k) for i in range(k)]
    tris += [(1 + (i + 1) % k, 1 + k + i, 1 + k + (i + 1) % k) for i in range(k)]
    return pos, np.array(tris), uv_of(pos), c


def _mouth_patch(p: np.ndarray, uv_of, f: FaceLayout, deltas: np.ndarray, lower: np.ndarray) -> MeshPart:
    """The photo's own teeth (what shows between the lips in the photo), just behind the lips.

    It rides with the upper jaw and stretches a little with the lower lip, so an opening jaw reveals the
    dark mouth interior below it while a smiling photo keeps its teeth."""
    ring = np.array((78,) + UPPER_LIP_INNER + (308,) + LOWER_LIP_INNER[::-1])
    c = p[ring].mean(axis=0)
    pos = np.vstack([c, p[ring]])
    pos[:, 2] = p[ring, 2].min() - 0.002
    k = len(ring)
    tris = np.array([(0, 1 + i, 1 + (i + 1) % k) for i in range(k)])
    d = np.zeros((NUM_SHAPES, len(pos), 3))
    d[:, 1:] = deltas[:, ring] * np.where(lower[ring] > 0.5, 0.3, 1.0)[None, :, None]
    d[:, 1:, 2] = 0.0
    part = MeshPart("mouth_patch", pos, np.tile([0, 0, 1.0], (len(pos), 1)), _orient(tris, pos),
                    Material("photo_mouth", texture=None, unlit=True, double_sided=True), uvs=uv_of(pos))
    attach_normal_deltas(part, d.astype(np.float32))
    return part


def _orient(tris: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Wind every triangle counter-clockwise as seen from the camera (+Z)."""
    a, b, c = pos[tris[:, 0]], pos[tris[:, 1]], pos[tris[:, 2]]
    z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return np.where((z < 0)[:, None], tris[:, ::-1], tris)


def _move(part: MeshPart, scale: float, shift: np.ndarray) -> None:
    part.positions = (part.positions * scale + shift).astype(np.float32)
    if part.deltas is not None:
        d = part.deltas.reshape(NUM_SHAPES, -1, 6)
        d[:, :, :3] *= scale
        part.deltas = d.reshape(NUM_SHAPES, -1)


def photo_avatar(image_bgr: np.ndarray, name: str = "photo") -> Avatar:
    """Build an avatar from one frontal photo (BGR). InputError when no face is found."""
    from ..tracking import FaceTracker

    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise InputError("photo must be a colour image")
    h, w = image_bgr.shape[:2]
    with FaceTracker(max_faces=1, static=True) as tracker:
        faces = tracker.track(image_bgr)
    if not faces:
        raise InputError("no face found in the photo (use a frontal, well-lit face photo)")
    lm = faces[0].landmarks.astype(np.float64)
    if lm[152, 1] < lm[10, 1]:
        raise InputError("the face in the photo is upside down")
    p, s, origin = _to_metric(lm)
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])

    def uv_of(q: np.ndarray) -> np.ndarray:
        # Back to photo pixels through the same (orthographic) mapping.
        x = q[:, 0] / s + origin[0]
        y = -(q[:, 1] - 0.017) / s + origin[1]
        return np.stack([x / w, y / h], axis=1)

    f = _layout(p)
    mp_ = p[:468]
    nrm0 = np.zeros_like(mp_)
    nrm0[:, 2] = 1.0
    lower = _lower_labels(mp_)
    deltas = skin_shapes(mp_, nrm0, f, lower=lower).astype(np.float64)
    _lid_shapes(mp_, deltas)
    tris = tessellation()
    fields = [mp_, uv_of(mp_)] + [deltas[i] for i in range(NUM_SHAPES)]
    tris, fields = subdivide(tris, fields, levels=2)
    pos, uv = fields[0], fields[1]
    tris = _orient(tris, pos)
    face = MeshPart("face", pos, vertex_normals(pos, tris), tris,
                    Material("photo", roughness=0.6, specular=0.15, texture=rgb, unlit=True, double_sided=True), uvs=uv)
    attach_normal_deltas(face, np.stack(fields[2:]).astype(np.float32))

    parts = [face]
    for side in ("Left", "Right"):
        ep, et, euv, c = _eye_patch(side, p, uv_of)
        eye = MeshPart(f"eye_{side[0].lower()}", ep, np.tile([0, 0, 1.0], (len(ep), 1)), _orient(et, ep),
                       Material(f"eye_{side[0].lower()}", texture=rgb, unlit=True, double_sided=True), uvs=euv)
        d = np.zeros((NUM_SHAPES, len(ep), 3))
        rel = ep - c
        sgn = 1 if side == "Left" else -1
        depth = np.array([0, 0, 0.012])  # turn about a centre behind the patch, like an eyeball
        for nm, r in {f"eyeLookUp{side}": rot_x(-GAZE_DEG * 0.5), f"eyeLookDown{side}": rot_x(GAZE_DEG * 0.5),
                      f"eyeLookOut{side}": rot_y(sgn * GAZE_DEG * 0.5),
                      f"eyeLookIn{side}": rot_y(-sgn * GAZE_DEG * 0.5)}.items():
            d[ARKIT_INDEX[nm]] = (rel + depth) @ r.T - (rel + depth)
            d[ARKIT_INDEX[nm], :, 2] = 0.0  # slide, don't poke through the lids
        attach_normal_deltas(eye, d.astype(np.float32))
        parts.append(eye)

    patch = _mouth_patch(p, uv_of, f, deltas, lower)
    patch.material.texture = rgb
    parts.append(patch)
    # Mouth interior from the procedural head, scaled to this mouth.
    proc = FaceLayout()
    scale = f.mouth_half / proc.mouth_half
    shift = np.array([0.5 * (p[13, 0] + p[14, 0]), f.mouth_y, f.mouth_z]) - scale * np.array(
        [0.0, proc.mouth_y, proc.mouth_z + 0.004])
    for part in (_teeth(True, proc), _teeth(False, proc), _tongue(proc), _cavity(proc)):
        _move(part, scale, shift)
        parts.append(part)
    shell_parts = _head_shell(p, rgb, lm, f)
    parts += shell_parts
    parts += _bust(shell_parts[1].colors[0])
    box = _photo_box(w, h, s, origin)
    return Avatar(name, parts, head_pivot=(0.0, f.mouth_y - 0.01, -0.02), neck_pivot=(0.0, -0.15, -0.03),
                  eye_centers=(tuple(f.eye_center(1)), tuple(f.eye_center(-1))),
                  # Frame the face itself: the photo head has no hair volume to show.
                  frame_center={"head": (0.0, float(0.5 * (p[10, 1] + p[152, 1])), 0.0), "bust": (0.0, -0.08, 0.0)},
                  frame_height={"head": 0.27, "bust": 0.45},
                  meta={"generator": "photo", "photo_box": box, "photo_size": (w, h), "photo_rgb": rgb,
                        "photo_hide": ("head_shell", "neck", "body", "clothing")})


def _photo_box(w: int, h: int, s: float, origin: np.ndarray) -> tuple[float, float, float, float]:
    """Orthographic window (left, right, bottom, top) in metres that reproduces the photo's framing."""
    left, right = (0 - origin[0]) * s, (w - origin[0]) * s
    top, bottom = -(0 - origin[1]) * s + 0.017, -(h - origin[1]) * s + 0.017
    return float(left), float(right), float(bottom), float(top)


def _bust(skin: np.ndarray, garment: tuple[float, float, float] = (0.22, 0.27, 0.36)) -> list[MeshPart]:
    """Shoulders and a crew-neck top (the built-ins' bust), so "bust" framing works for photo avatars."""
    from .procedural import head_weights
    from .sculpt import body_sdf, clothing_sdf, neckline_y
    from .sdf import mesh_sdf

    def skin_body(q: np.ndarray) -> np.ndarray:
        return np.maximum(body_sdf(q, "crew"), neckline_y(q, "crew") - 0.03 - q[:, 1])

    out = []
    for name, sdf, color, lo, hi, step, tris in (
            ("body", skin_body, skin, (-0.215, -0.51, -0.135), (0.215, -0.1, 0.12), 0.005, 2500),
            ("clothing", lambda q: clothing_sdf(q, "crew"), np.asarray(garment), (-0.22, -0.5, -0.14),
             (0.22, -0.16, 0.125), 0.004, 3000)):
        pos, idx, nrm = mesh_sdf(sdf, lo, hi, step, max_triangles=tris)
        hw, nw = head_weights(pos)
        out.append(MeshPart(name, pos, nrm, idx, Material(name, roughness=0.75, specular=0.12, subsurface=0.4),
                            colors=np.tile(np.asarray(color, np.float32), (len(pos), 1)), head_weight=hw,
                            neck_weight=nw))
    return out


def _cavity(f: FaceLayout) -> MeshPart:
    """Dark back of the mouth: the rear half of an ellipsoid; its floor opens with the jaw."""
    th = np.linspace(0.5 * np.pi, np.pi, 12)
    ph = np.linspace(0, 2 * np.pi, 25)
    T, P = np.meshgrid(th, ph, indexing="ij")
    dirs = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    c = np.array([0.0, f.mouth_y - 0.004, 0.072])
    pos = c + dirs * np.array([0.020, 0.017, 0.03])
    tris = []
    cols = len(ph)
    for i in range(len(th) - 1):
        for j in range(cols - 1):
            a, b = i * cols + j, i * cols + j + 1
            tris += [(a, a + cols, b), (b, a + cols, b + cols)]
    part = MeshPart("mouth_cavity", pos, -dirs, np.array(tris),
                    Material("mouth", roughness=0.8, specular=0.05, double_sided=True),
                    colors=np.tile([0.22, 0.05, 0.06], (len(pos), 1)))
    jaw = lower_jaw_shapes(pos, f) * (pos[:, 1] < c[1])[None, :, None]
    attach_normal_deltas(part, jaw.astype(np.float32))
    return part


def _head_shell(p: np.ndarray, rgb: np.ndarray, lm: np.ndarray, f: FaceLayout) -> list[MeshPart]:
    """Back of the head and neck behind the face mask, coloured from the photo (skin, hair)."""
    from .sdf import mesh_sdf, rounded_cylinder_y

    h, w = rgb.shape[:2]

    def sample(px: np.ndarray, r: int = 6) -> np.ndarray:
        x, y = int(np.clip(px[0], r, w - r - 1)), int(np.clip(px[1], r, h - r - 1))
        return rgb[y - r:y + r, x - r:x + r].reshape(-1, 3).mean(axis=0) / 255.0

    # Photo colours already carry the photo's lighting; darken them so lit parts don't glow beside it.
    skin = sample(0.5 * (lm[50] + lm[280])) * 0.78
    hair_px = lm[10] + (lm[10] - lm[168]) * 1.9
    hair = sample(hair_px) * 0.85
    oval = p[[10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
              176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]]
    cx, cy = 0.0, 0.5 * (oval[:, 1].max() + oval[:, 1].min()) + 0.022
    rx = float(np.abs(oval[:, 0]).max()) * 1.03
    ry = float(oval[:, 1].max() - oval[:, 1].min()) * 0.62
    zc = float(np.median(oval[:, 2])) - 0.004

    def sdf(q: np.ndarray) -> np.ndarray:
        rz = np.where(q[:, 2] > zc, 0.03, 0.105)  # flat in front (behind the mask), round at the back
        k = np.sqrt(((q[:, 0] - cx) / rx) ** 2 + ((q[:, 1] - cy) / ry) ** 2 + ((q[:, 2] - zc) / rz) ** 2)
        return (k - 1.0) * min(rx, ry) * 0.9

    pos, tri, nrm = mesh_sdf(sdf, (-rx - 0.01, cy - ry - 0.01, zc - 0.12), (rx + 0.01, cy + ry + 0.01, zc + 0.04),
                             0.005, max_triangles=3000)
    top = np.clip((pos[:, 1] - (f.brow_y - 0.01)) / 0.03, 0, 1) + np.clip((zc - 0.03 - pos[:, 2]) / 0.03, 0, 1)
    col = np.where((np.clip(top, 0, 1) > 0.5)[:, None], hair, skin).astype(np.float32)
    shell = MeshPart("head_shell", pos, nrm, tri, Material("skin", roughness=0.7, specular=0.1, subsurface=0.4),
                     colors=col)
    chin_y = float(p[152, 1])
    neck_c = (0.0, chin_y - 0.05, zc - 0.035)
    npos, ntri, nnrm = mesh_sdf(lambda q: rounded_cylinder_y(q, neck_c, 0.056, 0.06, 0.01),
                                (-0.07, chin_y - 0.14, zc - 0.1), (0.07, chin_y + 0.02, zc + 0.04), 0.006,
                                max_triangles=1500)
    hw = np.clip((npos[:, 1] - (chin_y - 0.08)) / 0.05, 0, 1).astype(np.float32)
    neck = MeshPart("neck", npos, nnrm, ntri, Material("skin", roughness=0.7, specular=0.1, subsurface=0.4),
                    colors=np.tile(skin, (len(npos), 1)).astype(np.float32), head_weight=hw,
                    neck_weight=(1 - hw) * 0.6)
    return [shell, neck]


@cache
def _package_photo(source: str) -> Avatar:
    from .. import testdata

    img = testdata.astronaut() if source == "astronaut" else testdata.grace_hopper()
    return photo_avatar(img, name=f"photo:{source}")


def photo_avatar_from_source(source: str) -> Avatar:
    """``astronaut``/``grace_hopper`` (package photos, cached: two entries at most) or a photo path (a local
    user's file, not cached: a cache keyed by arbitrary paths grows without bound)."""
    if not source:
        raise InputError("photo avatar needs a source: photo:astronaut, photo:grace_hopper or photo:FILE.jpg")
    if source in ("astronaut", "grace_hopper"):
        return _package_photo(source)
    from ..mediaio import read_image

    return photo_avatar(read_image(source), name=f"photo:{source}")
