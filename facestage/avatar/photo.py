"""Photo avatars: one photo → the body model's head fitted to the face, the photo baked into its UV map.

1. Track the photo (static mode, up to two faces so a group photo is refused) → 478 landmarks.
2. Fit the MakeHuman head to them (``photo_fit``): macro details + local shape targets + a similarity pose.
3. Build an ordinary skinned body-model character with that identity (``human.build_character``): the
   game-engine skeleton, the 52 ARKit Face Units, its own eyes/teeth/tongue/lashes, a hair shell in the
   hair colour segmented from the photo, irises in the photo's iris colour.
4. Bake the photo into the skin's UV layout (``photo_bake``): seen texels from the photo, the unseen half
   mirrored, skin tone elsewhere.

The result renders through the same path as the built-ins and exports as VRM 1.0.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import anny_data as data
from .model import Avatar

MAX_PIXELS = 40_000_000  # decoding more costs seconds and GBs for no gain (the face is resampled to ~1 k)
MIN_SIDE = 64
MIN_FACE_PX = 60  # cheek to cheek: below this the landmarks are too coarse to fit a head
CHEEKS = (50, 280, 205, 425, 117, 346)  # landmark points on both cheeks: the skin tone
IRIS = {"left": (473, 474, 476), "right": (468, 469, 471)}  # centre and two rim points per eye
GARMENT = (0.22, 0.27, 0.36)
COLOUR_GAP = 45.0  # RGB distance that separates hair from skin and from the background


def read_photo(path: str | Path) -> np.ndarray:
    """A photo file as BGR, refusing huge images from their header before decoding them."""
    from PIL import Image, UnidentifiedImageError

    from ..mediaio import read_image

    p = Path(path)
    if p.exists() and p.is_file():
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError):
            raise InputError(f"{p} is not a readable image") from None
        if w * h > MAX_PIXELS:
            raise InputError(f"{p} has {w}x{h} pixels ({w * h / 1e6:.0f} MP); photo avatars take at most "
                             f"{MAX_PIXELS // 1_000_000} MP")
    return read_image(p)


def _check_image(image_bgr) -> None:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
            or image_bgr.dtype != np.uint8:
        raise InputError("photo must be a colour image (H x W x 3, uint8)")
    h, w = image_bgr.shape[:2]
    if w * h > MAX_PIXELS:
        raise InputError(f"photo has {w * h / 1e6:.0f} MP; photo avatars take at most {MAX_PIXELS // 1_000_000} MP")
    if min(h, w) < MIN_SIDE:
        raise InputError(f"photo is {w}x{h}: at least {MIN_SIDE} pixels a side")


def _track(image_bgr: np.ndarray) -> np.ndarray:
    from ..tracking import FaceTracker

    with FaceTracker(max_faces=2, static=True) as tracker:
        faces = tracker.track(image_bgr)
    if not faces:
        raise InputError("no face found in the photo (use a frontal, well-lit face photo)")
    if len(faces) > 1:
        raise InputError(f"the photo shows {len(faces)} faces: crop it to the one person the avatar is of")
    lm = faces[0].landmarks.astype(np.float64)
    if lm[152, 1] < lm[10, 1]:
        raise InputError("the face in the photo is upside down")
    width = float(np.linalg.norm(lm[234, :2] - lm[454, :2]))
    if width < MIN_FACE_PX:
        raise InputError(f"the face is too small ({width:.0f} px cheek to cheek, at least {MIN_FACE_PX}): "
                         "use a closer or larger photo")
    return lm


def _sample(rgb: np.ndarray, pts: np.ndarray, r: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    out = []
    for x, y in pts:
        x0, y0 = int(np.clip(x - r, 0, w - 1)), int(np.clip(y - r, 0, h - 1))
        out.append(rgb[y0:int(np.clip(y + r + 1, 1, h)), x0:int(np.clip(x + r + 1, 1, w))].reshape(-1, 3))
    return np.concatenate(out).astype(float)


def photo_colours(rgb: np.ndarray, lm: np.ndarray) -> dict[str, np.ndarray]:
    """Skin tone, hair colour (a simple segmentation of the band above the forehead) and iris colour (0..255)."""
    face_px = float(np.linalg.norm(lm[234, :2] - lm[454, :2]))
    skin = np.median(_sample(rgb, lm[list(CHEEKS), :2], max(2, int(face_px * 0.03))), axis=0)
    h, w = rgb.shape[:2]
    border = np.concatenate([rgb[: max(2, h // 20)].reshape(-1, 3), rgb[:, : max(2, w // 30)].reshape(-1, 3),
                             rgb[:, -max(2, w // 30):].reshape(-1, 3)]).astype(float)
    background = np.median(border, axis=0)
    face_h = float(lm[152, 1] - lm[10, 1])
    x0, x1 = int(max(0, lm[234, 0])), int(min(w, lm[454, 0]))
    y0, y1 = int(max(0, lm[10, 1] - 0.35 * face_h)), int(max(1, lm[10, 1] - 0.04 * face_h))
    band = rgb[y0:y1, x0:x1].reshape(-1, 3).astype(float)
    hair_px = band[(np.linalg.norm(band - background, axis=1) > COLOUR_GAP)
                   & (np.linalg.norm(band - skin, axis=1) > COLOUR_GAP)] if len(band) else band
    hair = np.median(hair_px, axis=0) if len(hair_px) > 0.05 * max(len(band), 1) else np.array([60.0, 45, 35])
    iris = []
    for c, a, b in IRIS.values():
        r = max(1, int(0.5 * 0.5 * (np.linalg.norm(lm[a, :2] - lm[c, :2]) + np.linalg.norm(lm[b, :2] - lm[c, :2]))))
        iris.append(_sample(rgb, lm[[c], :2], r))
    iris_c = np.median(np.concatenate(iris), axis=0)
    return {"skin": skin, "hair": hair, "iris": iris_c, "background": background}


def photo_avatar(image_bgr: np.ndarray, name: str = "photo") -> Avatar:
    """Build a skinned body-model avatar from one photo (BGR). InputError for unusable photos."""
    from scipy.spatial import cKDTree

    from .human import CharacterSpec, build_character
    from .photo_bake import BakeInput, bake, face_region
    from .photo_fit import fit_landmarks

    t0 = time.perf_counter()
    _check_image(image_bgr)
    lm = _track(image_bgr)
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    fit = fit_landmarks(lm)
    col = photo_colours(rgb, lm)
    skin_c = tuple(float(v) / 255 for v in col["skin"])
    female = fit.macro["gender"] < 0.5
    spec = CharacterSpec(name, "photo avatar", gender=fit.macro["gender"], age=fit.macro["age"],
                         race={fit.macro["race"]: 1.0}, skin=skin_c, lips=skin_c,
                         hair=tuple(float(v) / 255 for v in col["hair"]), brows=(0.1, 0.08, 0.06),
                         iris=tuple(float(v) / 255 for v in col["iris"]), brand=GARMENT,
                         hair_style="full" if female else "short")
    av = build_character(spec, identity=fit.positions, skin_texture=np.zeros((4, 4, 3), np.uint8))
    skin = av.part("skin")
    shift = np.asarray(av.meta["identity_shift"], float)
    pos = skin.positions.astype(float) - shift
    mirror = cKDTree(pos).query(pos * (-1.0, 1.0, 1.0))[1]
    mouth = _mouth_mask()
    tex, seen = bake(rgb, BakeInput(skin.uvs, skin.indices, pos, skin.normals.astype(float), pos[mirror],
                                    skin.normals[mirror] * (-1.0, 1.0, 1.0)),
                     fit.scale, fit.rotation, fit.translation, col["skin"], mouth,
                     face_region(rgb.shape[:2], lm))
    skin.material.texture = tex
    av.meta.update({"generator": "photo", "description": "photo avatar on the MakeHuman body model",
                    "licence": "", "photo_fit": {"rms_px": round(fit.rms_px, 2), "macro": fit.macro,
                                                 "targets": len(fit.weights), "seen": round(seen, 3),
                                                 "seconds": round(time.perf_counter() - t0, 2)}})
    return av


@cache
def _mouth_mask() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(data.data_root() / "mpfb2" / "textures" / "mpfb_inside-mouth.jpg").convert("L"))


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
    return photo_avatar(read_photo(source), name=f"photo:{source}")
