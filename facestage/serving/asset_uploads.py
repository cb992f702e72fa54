"""The streamer's own effect assets: upload a sticker, background, paint texture or LUT, then use it by name.

``POST /v1/assets?kind=sticker&filename=cat.png`` with the file as the body answers
``{"name": "upload:…"}``; that name goes into an effect parameter (``sticker.image``,
``background.image``, ``paint.image``, ``lut.lut``) like any shipped asset name.

* With ``&brand=ID`` and the brand's key the file belongs to the brand (``uploads/<brand>/``), its
  name is ``upload:<kind>-<stem>.<ext>`` (the kind prefix keeps it apart from the brand's avatar
  ``photo.jpg``/``model.glb``), and only that brand's sessions can use it.
* Without a brand (the studio on an open server) the file is the uploader's: its name carries 128 random
  bits (``upload:tmp-<hex>.png``), which only the uploader learns; any session that names it may use it,
  like a capability URL. These live in ``uploads/_session/`` (brand ids cannot start with ``_``), at most
  ``SESSION_FILES`` of them, oldest evicted, none older than ``SESSION_TTL_S``.

Every file is checked by decoding, not by its name: the suffix must match the content's type, images
are measured from their header before any pixel is decoded (a 40000² PNG of zeros is a few KB), then
decoded in full; LUTs are parsed by the same reader the effect uses. Each kind has its own byte and pixel
limits (``KINDS``); errors say which limit and by how much.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, InputError
from .protocol import ProtocolError

if TYPE_CHECKING:
    from websockets.http11 import Response

    from .context import ServerContext as App
    from .http import HTTPRequest

SESSION_DIR = "_session"
SESSION_FILES = 64  # per server: enough for every open stream's few assets
SESSION_TTL_S = 24 * 3600
_TOKEN_NAME = re.compile(r"^tmp-[0-9a-f]{32}\.(png|jpg|jpeg|cube)$")


@dataclass(frozen=True)
class Kind:
    """What one kind of asset may be."""

    suffixes: tuple[str, ...]
    max_bytes: int
    max_side: tuple[int, int] = (0, 0)  # (width, height) limit for images; (0, 0) for LUTs
    alpha: bool = False  # needs an alpha channel (drawn over the face)
    what: str = ""


KINDS = {
    "sticker": Kind((".png",), 8 * 2**20, (2048, 2048), True, "a PNG with transparency"),
    "paint": Kind((".png",), 8 * 2**20, (2048, 2048), True, "an RGBA PNG in face UV space"),
    "background": Kind((".jpg", ".jpeg", ".png"), 16 * 2**20, (3840, 2160), False, "a JPEG or PNG photo"),
    "lut": Kind((".cube",), 8 * 2**20, what="a .cube 3D LUT (size 2..65)"),
}
_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg")}


def _stem(filename: str) -> str:
    stem = re.sub(r"[^a-z0-9_-]+", "-", Path(filename).stem.lower()).strip("-_")
    return stem[:40] or "asset"


def check_image(kind: str, spec: Kind, suffix: str, data: bytes) -> None:
    """Refuse what is not an image of this kind, by decoding: InputError saying why."""
    import cv2
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            fmt, (w, h), mode = im.format, im.size, im.mode
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError(f"this file is not an image; a {kind} is {spec.what}") from None
    if suffix not in _FORMATS.get(fmt or "", ()):
        raise InputError(f"the file is a {fmt} image but is named {suffix}; a {kind} is {spec.what}")
    mw, mh = spec.max_side
    if not (w <= mw and h <= mh) and not (w <= mh and h <= mw):
        raise InputError(f"the image is {w}x{h} pixels; a {kind} may be at most {mw}x{mh}")
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and b"tRNS" in data[:4096])
    if spec.alpha and not has_alpha:
        raise InputError(f"the image has no transparency (mode {mode}); a {kind} is {spec.what}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.shape[0] != h or img.shape[1] != w:
        raise InputError(f"the {fmt} image is damaged or truncated")


def check_lut(data: bytes, folder: Path) -> None:
    from ..effects.lut import read_cube

    tmp = folder / f".check-{secrets.token_hex(8)}.cube"
    tmp.write_bytes(data)
    try:
        read_cube(tmp, "the upload")
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)


def _prune_session_dir(folder: Path) -> None:
    """Drop expired files, then the oldest beyond the count bound (the new one is written after this)."""
    now = time.time()
    files = sorted((p for p in folder.iterdir() if _TOKEN_NAME.match(p.name)), key=lambda p: p.stat().st_mtime)
    for p in files:
        if now - p.stat().st_mtime > SESSION_TTL_S:
            p.unlink(missing_ok=True)
    files = [p for p in files if p.exists()]
    for p in files[:max(len(files) - SESSION_FILES + 1, 0)]:
        p.unlink(missing_ok=True)


def save_asset(upload_root: Path, brand: str | None, kind: str, filename: str, data: bytes) -> str:
    """Check and store one effect asset; returns the name to use in effect parameters."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ConfigError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    suffix = Path(filename).suffix.lower()
    if suffix not in spec.suffixes:
        raise InputError(f"a {kind} is {spec.what} ({'/'.join(spec.suffixes)}), not {suffix or 'no extension'}")
    if len(data) > spec.max_bytes:
        raise ProtocolError("too_large", f"the file is {len(data) / 2**20:.1f} MB; a {kind} may be at most "
                            f"{spec.max_bytes // 2**20} MB")
    if not data:
        raise InputError("the upload is empty")
    folder = upload_root / (brand if brand else SESSION_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "lut":
        check_lut(data, folder)
    else:
        check_image(kind, spec, suffix, data)
    if brand:
        name = f"{kind}-{_stem(filename)}{suffix}"
    else:
        _prune_session_dir(folder)
        name = f"tmp-{secrets.token_hex(16)}{suffix}"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / name)
    return "upload:" + name


def session_asset(upload_root: Path, name: str) -> Path | None:
    """The file of an uploader's ``tmp-…`` asset (any session may name it), or None."""
    if not _TOKEN_NAME.match(name):
        return None
    p = upload_root / SESSION_DIR / name
    return p if p.is_file() else None


async def handle_upload(app: App, req: HTTPRequest) -> Response:
    """``POST /v1/assets?kind=…&filename=…[&brand=ID]`` → 200 ``{"name", "kind", "bytes"}``."""
    from .auth import Unauthorized, bearer_key, identify, is_local_request, require_brand
    from .http import make_response

    engine = app.engine
    brand = (req.query.get("brand") or [None])[0]
    access = await engine.run(identify, app, bearer_key(req.headers), brand,
                              is_local_request(req.remote, req.headers), io=True)
    if brand is not None:
        require_brand(access, brand)
        if not await engine.run(engine.store.exists, brand, io=True):
            raise InputError(f"no brand {brand!r}")
    elif not app.security.open_media and not (access.operator or access.brand):
        raise Unauthorized(401, "this server needs a key for uploads: 'Authorization: Bearer KEY' "
                           "(a brand key with ?brand=ID)")
    kind = (req.query.get("kind") or [""])[0]
    filename = (req.query.get("filename") or [""])[0]
    name = await engine.run(save_asset, engine.upload_dir, brand, kind, filename, req.body, io=True)
    return make_response(200, {"name": name, "kind": kind, "bytes": len(req.body)})
