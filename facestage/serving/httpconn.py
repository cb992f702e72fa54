"""HTTP requests with a body on the WebSocket port: websockets parses only bodiless GETs, so the request
head is sniffed first (GETs go to websockets untouched; POST/PUT/DELETE are read here and routed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers

from . import http as routes

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("facestage.server")
MAX_HEAD_BYTES = 16 * 1024


def _remote(connection: Any) -> str:
    with contextlib.suppress(Exception):
        return str(connection.remote_address[0])
    return ""


class HTTPAwareConnection(ServerConnection):
    """A websockets connection that also answers HTTP requests with a body (POST/PUT/DELETE).

    websockets parses only bodiless GET requests, so the request head is sniffed first: GETs go to
    websockets untouched (WebSocket upgrades, pages), anything else is read here, answered by the
    router and closed.
    """

    def __init__(self, app: App, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app
        self._mode: str | None = None  # None while sniffing, then "ws" or "http"
        self._buf = bytearray()  # appended in place: an upload arrives in thousands of pieces
        self._need = 0
        self._head: tuple[str, str, Headers] | None = None

    def data_received(self, data: bytes) -> None:
        if self._mode == "ws":
            return super().data_received(data)
        if self._mode == "http":
            if self._head is not None:  # after the answer is on its way, further bytes are ignored
                self._buf += data
                self._maybe_answer()
            return None
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                self._mode = "ws"  # let websockets reject the oversized head with its own error
                buf, self._buf = bytes(self._buf), bytearray()
                super().data_received(buf)
            return None
        if bytes(self._buf[:4]) == b"GET ":
            self._mode = "ws"
            buf, self._buf = bytes(self._buf), bytearray()
            return super().data_received(buf)
        self._mode = "http"
        try:
            lines = self._buf[:end].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = Headers()
            for line in lines[1:]:
                k, v = line.split(":", 1)
                headers[k.strip()] = v.strip()
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            return self._reply(routes.error_response(400, "bad_request", "malformed HTTP request"))
        if "Transfer-Encoding" in headers:
            return self._reply(routes.error_response(411, "length_required", "send a Content-Length body, not "
                                                     "chunked transfer encoding"))
        limit = self.app.security.limits.upload_bytes
        if length < 0 or length > limit:
            return self._reply(routes.error_response(413, "too_large", f"request bodies are limited to "
                                                     f"{limit // 2**20} MB"))
        self._head = (method, target, headers)
        del self._buf[:end + 4]
        self._need = length
        return self._maybe_answer()

    def _maybe_answer(self) -> None:
        if self._head is None or len(self._buf) < self._need:
            return
        if len(self._buf) > self._need:
            self._head = None
            return self._reply(routes.error_response(400, "bad_request", "more bytes than Content-Length "
                                                     "(pipelined requests are not supported)"))
        method, target, headers = self._head
        body, self._head = bytes(self._buf), None
        self._buf = bytearray()
        asyncio.ensure_future(self._answer(method, target, headers, body))

    async def _answer(self, method: str, target: str, headers: Headers, body: bytes) -> None:
        try:
            resp = await self.app.handle_http(method, target, headers, body, _remote(self))
        except Exception:
            log.exception("HTTP %s %s failed", method, target)
            resp = routes.error_response(500, "internal", "internal error (see the server log)")
        self._reply(resp)

    def _reply(self, resp: Any) -> None:
        if not self.transport.is_closing():
            self.transport.write(resp.serialize())
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self._mode == "http":
            return True  # half-closed after the body: keep the transport open to write the answer
        return super().eof_received()
