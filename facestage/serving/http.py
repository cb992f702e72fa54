"""HTTP routes served on the WebSocket port: pages, health, the render API and the brand REST API.

GET requests arrive through websockets' ``process_request``; requests with a body (POST/PUT/DELETE) are
read by ``app.HTTPAwareConnection`` (websockets only parses bodiless GETs) and land here too.
"""

from __future__ import annotations

import http
import json
import mimetypes
import os
import re
import resource
import threading
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

from ..dialogue.outbound import OutboundRefused
from ..errors import FacestageError
from .assets import check_avatar_name
from .auth import Access, Unauthorized, bearer_key, identify, is_local_request, require_brand, require_operator
from .media import render_image, render_params
from .protocol import ProtocolError

if TYPE_CHECKING:
    from .context import ServerContext as App

MAX_JSON_BODY = 256 * 1024
MAX_UPLOAD_BODY = 32 * 1024 * 1024
WEB_ROOT = resources.files("facestage") / "web"
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(html|js|css|svg|png|ico)$")
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


@dataclass
class HTTPRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    remote: str


def make_response(status: int, body: bytes | str | dict | list, content_type: str | None = None,
                  extra: dict[str, str] | None = None) -> Response:
    if isinstance(body, dict | list):
        body = json.dumps(body, ensure_ascii=False).encode()
        content_type = content_type or "application/json"
    elif isinstance(body, str):
        body = body.encode()
        content_type = content_type or "text/plain; charset=utf-8"
    headers = Headers()
    headers["Content-Type"] = content_type or "application/octet-stream"
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Connection"] = "close"
    for k, v in (extra or {}).items():
        headers[k] = v
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def error_response(status: int, code: str, message: str) -> Response:
    return make_response(status, {"error": code, "message": message})


def rss_kb() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(target)  # websockets 17: request.path includes the query string
    return parts.path, parse_qs(parts.query)


def static_file(path: str) -> Response | None:
    name = path.lstrip("/") or "index.html"
    if not _STATIC_NAME.match(name):
        return None  # flat folder, plain names: no traversal possible
    ref = WEB_ROOT.joinpath(*name.split("/"))
    if not ref.is_file():
        return None
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript",):
        ctype += "; charset=utf-8"
    return make_response(200, ref.read_bytes(), ctype)


def _json_body(req: HTTPRequest) -> Any:
    if len(req.body) > MAX_JSON_BODY:
        raise ProtocolError("too_large", f"JSON body over {MAX_JSON_BODY} bytes")
    try:
        return json.loads(req.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"the request body is not valid JSON: {exc}") from None


async def handle(app: App, req: HTTPRequest) -> Response:
    """Route one request; every failure becomes a JSON error with a clear message, never a crash."""
    try:
        return await _route(app, req)
    except Unauthorized as exc:
        return error_response(exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.message)
    except OutboundRefused as exc:
        return error_response(403, "outbound_refused", str(exc))
    except ProtocolError as exc:
        return error_response(413 if exc.code == "too_large" else 400, exc.code, exc.message)
    except FacestageError as exc:
        return error_response(400, "bad_input", str(exc))


async def _route(app: App, req: HTTPRequest) -> Response:
    engine = app.engine
    m, p = req.method, req.path.rstrip("/") or "/"
    parts = [x for x in p.split("/") if x]
    from . import web_assets  # /vendor/… (npm packages) and /v1/avatars/NAME.vrm|glb for browser rendering

    if (resp := await web_assets.handle(app, req)) is not None:
        return resp
    if m == "GET" and p == "/healthz":
        return make_response(200, {"ok": True, "version": 1, "sessions": len(app.sessions),
                                   "connections": app.connections, "threads": threading.active_count(),
                                   "frames_dropped": sum(s.out.dropped + s.state.dropped_in for s in app.sessions),
                                   "rss_kb": rss_kb(),
                                   # held for resumes after a drop (bounded; see shared/checkpoints.py)
                                   "checkpoint_kb": app.checkpoints.bytes // 1024})
    if m == "GET" and p == "/v1/effects":
        from ..effects import list_effects, list_presets, load_preset

        return make_response(200, {"effects": list_effects(),
                                   "presets": {n: load_preset(n) for n in list_presets()}})
    if m == "GET" and p == "/v1/avatars":
        from ..avatar import list_avatars

        return make_response(200, {"avatars": list_avatars()})
    if m == "POST" and p == "/v1/render":
        if not app.security.open_media:  # rendering costs CPU: keyed like the media sessions
            brand = (req.query.get("brand") or [None])[0]
            access = await engine.run(identify, app, bearer_key(req.headers), brand,
                                      is_local_request(req.remote, req.headers), io=True)
            if not (access.operator or access.brand):
                raise Unauthorized(401, "this server needs a key for rendering: 'Authorization: Bearer KEY' "
                                   "(a brand key with ?brand=ID)")
        body = _json_body(req)
        if not isinstance(body, dict):
            raise ProtocolError("bad_json", "POST /v1/render takes a JSON object (see docs/server.md)")
        params = render_params(body)
        data, _, (w, h) = await render_image(engine, params)
        return make_response(200, data, CONTENT_TYPES[params["format"]],
                             {"X-Width": str(w), "X-Height": str(h)})
    if m == "POST" and p == "/v1/assets":  # a streamer's sticker/background/paint/LUT (asset_uploads.py)
        from .asset_uploads import handle_upload

        return await handle_upload(app, req)
    if m == "GET" and p == "/v1/demo":
        # The demo brand's key is handed out to this machine only (local trust): enough for `make run` and
        # the console; a server that does not trust local requests never hands it out.
        if not (app.security.trust_local and is_local_request(req.remote, req.headers)) or not app.demo_brand:
            raise Unauthorized(403, "the demo key is only available from this machine")
        return make_response(200, {"brand": app.demo_brand, "key": app.demo_key})
    if parts[:2] == ["v1", "brands"]:
        return await _brands(app, req, parts[2:])
    if m in ("GET", "HEAD"):
        resp = static_file(p)
        if resp is not None:
            return resp
    if m not in ("GET", "POST", "PUT", "DELETE"):
        return error_response(405, "method_not_allowed", f"{m} is not supported")
    return error_response(404, "not_found", f"no route for {m} {p}; see docs/server.md")


def _check_outbound(app: App, body: dict, brand: str | None = None) -> None:
    """A brand's LLM URL must be somewhere the operator allows; refused at save time (and again, pinned,
    at every connection). Its avatar must be a name, never a path."""
    if "avatar" in body:
        check_avatar_name(body["avatar"], brand or body.get("id") if isinstance(body.get("id"), str) else brand,
                          "profile.avatar")
    llm = body.get("llm")
    if isinstance(llm, dict) and isinstance(llm.get("base_url"), str):
        app.security.outbound.check_url(llm["base_url"])


async def _brands(app: App, req: HTTPRequest, rest: list[str]) -> Response:
    engine, store = app.engine, app.engine.store
    run = engine.run
    brand = rest[0] if rest else None
    access: Access = await run(identify, app, bearer_key(req.headers), brand,
                               is_local_request(req.remote, req.headers), io=True)
    if not rest:
        require_operator(access)
        if req.method == "GET":
            return make_response(200, {"brands": await run(store.ids, io=True)})
        if req.method != "POST":
            return error_response(405, "method_not_allowed", "POST /v1/brands creates a brand, GET lists them "
                                  "(operator key); GET /v1/brands/ID reads one")
        body = _json_body(req)
        if not isinstance(body, dict):
            raise ProtocolError("bad_json", "POST /v1/brands takes a profile object")
        if isinstance(body.get("id"), str) and await run(store.exists, body["id"], io=True):
            return error_response(409, "exists", f"brand {body['id']!r} already exists; choose another id")
        await run(_check_outbound, app, body, io=True)
        profile = await run(store.create, body, io=True)
        key = await run(store.create_key, profile.id, io=True)
        return make_response(201, {"profile": profile.public_dict(), "key": key})
    assert brand is not None
    require_brand(access, brand)
    if not await run(store.exists, brand, io=True):  # only the operator gets here for a missing brand
        return error_response(404, "not_found", f"no brand {brand!r}")
    if len(rest) == 1:
        if req.method == "GET":
            return make_response(200, {"profile": (await run(store.get, brand, io=True)).public_dict()})
        if req.method == "PUT":
            body = _json_body(req)
            if not isinstance(body, dict):
                raise ProtocolError("bad_json", "PUT /v1/brands/ID takes an object of profile fields")
            await run(_check_outbound, app, body, brand, io=True)
            profile = await run(store.update, brand, body, io=True)
            engine.forget_employee(brand)
            return make_response(200, {"profile": profile.public_dict()})
        if req.method == "DELETE":
            require_operator(access)
            await run(store.delete, brand, io=True)
            engine.forget_employee(brand)
            await run(engine.delete_uploads, brand, io=True)
            return make_response(200, {"deleted": brand})
    elif rest[1:] == ["avatar"] and req.method == "POST":
        limit = app.security.limits.upload_bytes
        if len(req.body) > limit:
            raise ProtocolError("too_large", f"uploads are limited to {limit // 2**20} MB")
        filename = (req.query.get("filename") or [""])[0]
        name = await run(engine.save_upload, brand, filename, req.body, io=True)
        profile = await run(store.update, brand, {"avatar": name}, io=True)
        engine.forget_employee(brand)
        return make_response(200, {"avatar": name, "profile": profile.public_dict()})
    elif rest[1:] == ["key"] and req.method == "POST":
        return make_response(200, {"brand": brand, "key": await run(store.create_key, brand, io=True)})
    return error_response(404, "not_found", f"no route for {req.method} {req.path}")
