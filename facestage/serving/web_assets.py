"""HTTP assets for browser-side rendering: npm packages under ``/vendor/`` and avatar files under ``/v1/avatars/``.

Kept apart from ``http.py`` so the router only needs one hook (``resp = await web_assets.handle(app, req)``).

* ``GET /vendor/<package>/<path>``: files of the JS runtime packages (three, @pixiv/three-vrm, iwer) from a
  ``node_modules`` directory: ``$FACESTAGE_NODE_MODULES`` or the repository root's (``npm ci --omit=dev``).
  Only whitelisted packages and file types; the resolved path must stay inside the package (no traversal).
* ``GET /v1/avatars/NAME.vrm`` (VRM 1.0, built-ins) and ``NAME.glb`` (every avatar, photo avatars included:
  they have no humanoid skeleton, so no VRM). URL-safe names: ``ava``, ``photo-astronaut`` (``photo:astronaut``
  percent-encoded works too), ``upload-FILE`` with ``?brand=ID`` and the brand's key (its own uploads only).
  Exports are cached in memory with a strong ETag; ``If-None-Match`` gets a 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from websockets.http11 import Response

from .auth import Unauthorized, bearer_key, identify, is_local_request, require_brand
from .http import error_response, make_response

if TYPE_CHECKING:
    from .app import App
    from .http import HTTPRequest

VENDOR_PACKAGES = ("three", "@pixiv/three-vrm", "iwer")
VENDOR_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
                ".json": "application/json", ".map": "application/json", ".wasm": "application/wasm"}
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
_AVATAR = re.compile(r"^/v1/avatars/([^/]+)\.(vrm|glb)$")
_CACHE_MAX = 8
_cache: OrderedDict[tuple[str, str, str], tuple[bytes, str]] = OrderedDict()
_locks: dict[tuple[str, str, str], asyncio.Lock] = {}


def node_modules() -> Path:
    env = os.environ.get("FACESTAGE_NODE_MODULES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "node_modules"


async def handle(app: App, req: HTTPRequest) -> Response | None:
    """Answer a ``/vendor/`` or ``/v1/avatars/NAME.vrm|glb`` request; ``None`` for any other route."""
    if req.method not in ("GET", "HEAD"):
        return None
    if req.path.startswith("/vendor/"):
        return vendor_file(req.path[len("/vendor/"):], req)
    m = _AVATAR.match(req.path)
    if m:
        return await avatar_file(app, req, unquote(m.group(1)), m.group(2))
    return None


def _etag_response(req: HTTPRequest, data: bytes, etag: str, ctype: str, cache: str) -> Response:
    fresh = etag in [t.strip() for t in req.headers.get("If-None-Match", "").split(",")]
    resp = make_response(304 if fresh else 200, b"" if fresh else data, ctype, {"ETag": etag})
    del resp.headers["Cache-Control"]  # websockets' Headers is multi-valued: replace make_response's no-store
    resp.headers["Cache-Control"] = cache
    return resp


def vendor_file(rest: str, req: HTTPRequest) -> Response:
    package = next((p for p in VENDOR_PACKAGES if rest.startswith(p + "/")), None)
    if package is None:
        return error_response(404, "not_found", f"/vendor/ serves only {', '.join(VENDOR_PACKAGES)}")
    parts = rest[len(package) + 1:].split("/")
    suffix = Path(parts[-1]).suffix
    if not all(_PART.match(p) and p not in (".", "..") for p in parts) or suffix not in VENDOR_TYPES:
        return error_response(404, "not_found", f"no such vendor file: {rest}")
    root = node_modules()
    pkg_dir = (root / package).resolve()
    if not pkg_dir.is_dir():
        return error_response(503, "vendor_missing", f"the JS package {package!r} is not installed in {root}: run "
                              "`npm ci --omit=dev` in the facestage checkout (or set FACESTAGE_NODE_MODULES)")
    path = pkg_dir.joinpath(*parts).resolve()
    if not path.is_relative_to(pkg_dir) or not path.is_file():
        return error_response(404, "not_found", f"no such vendor file: {rest}")
    data = path.read_bytes()
    st = path.stat()
    etag = f'"{st.st_size:x}-{int(st.st_mtime_ns):x}"'
    return _etag_response(req, data, etag, VENDOR_TYPES[suffix], "public, max-age=3600")


def avatar_name(url_name: str) -> str:
    """``photo-astronaut`` → ``photo:astronaut``, ``upload-x.glb`` → ``upload:x.glb``; other names unchanged."""
    for prefix in ("photo", "upload"):
        if url_name.startswith(prefix + "-"):
            return f"{prefix}:{url_name[len(prefix) + 1:]}"
    return url_name


def _export(app: App, name: str, brand: str | None, fmt: str) -> bytes:
    from ..avatar.gltf_export import export_glb

    avatar = app.engine.avatar(name, brand)
    with tempfile.TemporaryDirectory(prefix="facestage-export-") as tmp:
        return export_glb(avatar, Path(tmp) / f"avatar.{fmt}").read_bytes()


async def avatar_file(app: App, req: HTTPRequest, url_name: str, fmt: str) -> Response:
    name = avatar_name(url_name)
    brand = (req.query.get("brand") or [None])[0]
    if name.startswith("upload:"):
        if not brand:
            raise Unauthorized(401, "uploaded avatars belong to a brand: add ?brand=ID and the brand's key")
        access = await app.engine.run(identify, app, bearer_key(req.headers), brand,
                                      is_local_request(req.remote, req.headers), io=True)
        require_brand(access, brand)
    else:
        from ..avatar import list_avatars

        known = [a["name"] for a in list_avatars()]
        if name not in known:
            return error_response(404, "unknown_avatar", f"no avatar {name!r}; one of {', '.join(known)} "
                                  "(photo avatars as photo-NAME)")
        brand = None
    key = (brand or "", name, fmt)
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:  # one export per avatar at a time: a page load asks several times at once
        hit = _cache.get(key)
        if hit is None:
            data = await app.engine.run(_export, app, name, brand, fmt)
            hit = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
            _cache[key] = hit
            while len(_cache) > _CACHE_MAX:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
    cache = "private, no-cache" if brand else "public, max-age=300"  # uploads change: revalidate with the ETag
    return _etag_response(req, hit[0], hit[1], "model/gltf-binary" if fmt == "glb" else "model/vrm", cache)
