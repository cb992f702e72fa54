"""The FastAPI front-end of a replica: the same protocol v1 WebSocket and HTTP routes as the
single-process server, by driving the same pieces — ``app.ClientConnection`` (which runs the sans-I/O
``ConnectionCore``) for WebSockets and ``http.handle`` for requests. Nothing of the protocol is here."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from .. import http as routes
from ..app import WS_PATH, ClientConnection

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("facestage.cluster")
HOP_HEADERS = {"connection", "content-length"}  # starlette sets these itself


class _Closed(ConnectionClosed):
    def __init__(self) -> None:
        super().__init__(None, None)


class StarletteSocket:
    """What ``ClientConnection`` needs of a websockets connection, over a starlette WebSocket.
    A disconnect becomes websockets' ConnectionClosed, which the connection already handles."""

    transport = None  # no socket buffer to read through the proxy: the Outbox sends without dropping
    request = None

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send(self, data: str | bytes) -> None:
        try:
            if isinstance(data, str):
                await self.ws.send_text(data)
            else:
                await self.ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _Closed() from None

    async def recv(self) -> str | bytes:
        try:
            msg = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _Closed() from None
        if msg["type"] == "websocket.disconnect":
            raise _Closed()
        text = msg.get("text")
        if text is not None:
            return str(text)
        data = msg.get("bytes")
        return data if type(data) is bytes else bytes(data or b"")  # a frame's ~40 KB: no copy when possible

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code, reason)


def _headers(items: Any) -> Headers:
    h = Headers()
    for k, v in items:
        h[k] = v
    return h


async def websocket_session(app: App, ws: WebSocket) -> None:
    headers = _headers(ws.headers.items())
    if not app.origins.allowed(headers.get("Origin"), headers.get("Host")):
        await ws.close(1008, "origin not allowed (start the server with --allow-origin to permit it)")
        return
    if app.connections >= app.max_connections:
        await ws.close(1013, f"this replica is at its {app.max_connections} connections; try again")
        return
    await ws.accept()
    remote = ws.client.host if ws.client else ""
    app.connections += 1
    conn = ClientConnection(app, StarletteSocket(ws), remote, headers)
    try:
        await conn.run()
    except ConnectionClosed:
        pass
    finally:
        app.connections -= 1
        await conn.close()


def to_response(resp: Any) -> Response:
    headers = {k: v for k, v in resp.headers.raw_items() if k.lower() not in HOP_HEADERS}
    headers["X-Facestage-Replica"] = str(os.getpid())  # which replica answered (operators, tests)
    return Response(resp.body, status_code=resp.status_code, headers=headers)


async def http_request(app: App, request: Request, health: dict[str, Any] | None = None) -> Response:
    headers = _headers(request.headers.items())
    path = request.url.path
    if path == WS_PATH:
        return to_response(routes.error_response(426, "upgrade", f"{WS_PATH} takes WebSocket connections"))
    if health is not None and request.method == "GET" and path.rstrip("/") == "/healthz":
        return to_response(routes.make_response(200, health))
    limit = app.security.limits.upload_bytes
    try:
        length = int(headers.get("Content-Length", "0"))
    except ValueError:
        length = -1
    if length < 0 or length > limit:
        return to_response(routes.error_response(413, "too_large", f"request bodies are limited to "
                                                 f"{limit // 2**20} MB"))
    body = await request.body()
    target = path + (f"?{request.url.query}" if request.url.query else "")
    remote = request.client.host if request.client else ""
    try:
        if request.method in ("GET", "HEAD"):  # as process_request does: pages and GETs carry no Origin check
            path_only, query = routes.split_target(target)
            resp = await routes.handle(app, routes.HTTPRequest(request.method, path_only, query, headers, b"",
                                                               remote))
        else:
            resp = await app.handle_http(request.method, target, headers, body, remote)
    except Exception:
        log.exception("HTTP %s %s failed", request.method, path)
        resp = routes.error_response(500, "internal", "internal error (see the server log)")
    return to_response(resp)
