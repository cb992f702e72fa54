"""The server: one port for WebSocket sessions, pages and the HTTP API.

``App`` owns the engine (shared heavy parts) and the live sessions; ``ServerThread`` runs it on its own
event loop in a thread (tests, notebooks, embedding); ``serve_forever`` is what ``facestage serve`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from ..errors import FacestageError
from . import http as routes
from .auth import OriginPolicy
from .avatar_session import AvatarSession
from .employee_session import EmployeeSession
from .engine import Engine
from .protocol import MAX_WIRE_BYTES, ProtocolError, dumps, parse_message, unpack_frame
from .sessions import EffectsSession, Outbox, RenderSession, Session, WatchSession
from .state import SessionState

log = logging.getLogger("facestage.server")
WS_PATH = "/v1/ws"
SESSION_TYPES: dict[str, type[Session]] = {"effects": EffectsSession, "avatar": AvatarSession,
                                           "employee": EmployeeSession, "render": RenderSession,
                                           "watch": WatchSession}
MAX_HEAD_BYTES = 16 * 1024
MAX_CONNECTIONS = 256  # WebSocket sessions per process; more get 503 (scale out with more replicas)


class App:
    def __init__(self, db_path: str | Path | None = None, port: int = 8765, demo: bool = True,
                 allow_origins: tuple[str, ...] = (), workers: int | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.engine = Engine(db_path, workers=workers)
        self.max_connections = max_connections
        self.origins = OriginPolicy(port, allow_origins)
        self.sessions: set[Session] = set()
        self.connections = 0
        self.demo_brand: str | None = None
        self.demo_key: str | None = None
        if demo:
            self._setup_demo()

    def _setup_demo(self) -> None:
        """Install the demo brand; its key lives in a 0600 file beside the database and survives restarts."""
        store = self.engine.store
        profile = store.ensure_demo()
        self.demo_brand = profile.id
        key_file = self.engine.data_dir / f"{profile.id}.key"
        key = key_file.read_text().strip() if key_file.is_file() else ""
        if not key or not store.verify_key(profile.id, key):
            key = store.create_key(profile.id)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key + "\n")
        self.demo_key = key

    # ------------------------------------------------------------------------------------- WebSocket
    async def process_request(self, connection: ServerConnection, request: Any):
        path, query = routes.split_target(request.path)
        remote = _remote(connection)
        if path == WS_PATH:
            origin = request.headers.get("Origin")
            if not self.origins.allowed(origin, request.headers.get("Host")):
                return routes.error_response(403, "origin", f"origin {origin} may not open sessions here "
                                             "(start the server with --allow-origin to permit it)")
            if self.connections >= self.max_connections:
                return routes.error_response(503, "busy", f"this server is at its {self.max_connections} "
                                             "connections; try again later")
            return None  # go on with the WebSocket handshake
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return routes.error_response(404, "not_found", f"WebSocket sessions live at {WS_PATH}")
        return await routes.handle(self, routes.HTTPRequest("GET", path, query, request.headers, b"", remote))

    async def handle_http(self, method: str, target: str, headers: Headers, body: bytes, remote: str):
        path, query = routes.split_target(target)
        origin = headers.get("Origin")
        if not self.origins.allowed(origin, headers.get("Host")):
            return routes.error_response(403, "origin", f"requests from {origin} are not allowed")
        return await routes.handle(self, routes.HTTPRequest(method, path, query, headers, body, remote))

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = _Client(self, ws)
        try:
            await conn.run()
        finally:
            self.connections -= 1
            await conn.close()

    def connection_factory(self):
        app = self

        def create(*args: Any, **kwargs: Any) -> ServerConnection:
            return HTTPAwareConnection(app, *args, **kwargs)

        return create

    async def serve(self, host: str, port: int, stop: asyncio.Event | None = None,
                    on_ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``on_ready(port)`` is called once listening (port 0 = a free one)."""
        stop = stop or asyncio.Event()
        async with serve(self.handler, host, port, process_request=self.process_request,
                         create_connection=self.connection_factory(), max_size=MAX_WIRE_BYTES, max_queue=4,
                         write_limit=64 * 1024, compression=None, ping_interval=20, ping_timeout=20) as server:
            bound = server.sockets[0].getsockname()[1]
            self.origins.port = bound
            if on_ready is not None:
                on_ready(bound)
            await stop.wait()
            server.close()
            await server.wait_closed()
        for s in list(self.sessions):
            await s.close()

    def warmup(self) -> None:
        """Load what the first visitor would otherwise wait for: the default avatar, the demo employee
        (retrieval model) and the TTS engines. Runs on a worker thread after the server is listening."""
        steps = [("avatar", lambda: self.engine.avatar("default")),
                 ("render", lambda: self.engine.render.render(self.engine.avatar("default"), None, size=64))]
        if self.demo_brand:
            steps.append(("employee", lambda: self.engine.employee(self.demo_brand)))
        steps.append(("speech", lambda: self.engine.tts.warmup(("en", "zh"))))
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - warm-up is an optimisation; report and go on
                log.warning("warm-up of %s failed: %s", name, exc)

    def close(self) -> None:
        self.engine.close()


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
        if length < 0 or length > routes.MAX_UPLOAD_BODY:
            return self._reply(routes.error_response(413, "too_large", f"request bodies are limited to "
                                                     f"{routes.MAX_UPLOAD_BODY // 2**20} MB"))
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


class _Client:
    """One WebSocket connection: control messages, media frames, at most one session at a time."""

    def __init__(self, app: App, ws: ServerConnection) -> None:
        self.app = app
        self.ws = ws
        self.out = Outbox(ws.send, lambda: ws.transport.get_write_buffer_size() if ws.transport else 0)
        self.session: Session | None = None

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.ws.send(dumps({"type": "error", "code": code, "message": message, **extra}))

    async def run(self) -> None:
        await self.out.control({"type": "hello", "protocol": 1, "sessions": list(SESSION_TYPES),
                                "server_time": time.time() * 1000})
        try:
            async for message in self.ws:
                try:
                    if isinstance(message, bytes):
                        frame = unpack_frame(message)
                        if self.session is None:
                            raise ProtocolError("no_session", 'send {"type": "start", "session": ...} before frames')
                        await self.session.on_frame(frame)
                    else:
                        await self.on_message(parse_message(message))
                except ProtocolError as exc:
                    await self.error(exc.code, exc.message)
                except FacestageError as exc:
                    await self.error("bad_config" if "Config" in type(exc).__name__ else "bad_input", str(exc))
                except ConnectionClosed:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad message must not end the connection
                    log.exception("message handling failed")
                    await self.error("internal", f"internal error: {type(exc).__name__}: {exc}")
        except ConnectionClosed:
            pass

    async def on_message(self, msg: dict[str, Any]) -> None:
        t = msg["type"]
        if t == "ping":
            await self.out.control({"type": "pong", "t": msg.get("t"), "server_time": time.time() * 1000})
        elif t == "start":
            await self.start(msg)
        elif self.session is None:
            raise ProtocolError("no_session", f'"{t}" needs a session: send {{"type": "start", "session": ...}} first')
        elif t == "checkpoint":
            await self.out.control({"type": "checkpoint", "state": self.session.checkpoint()})
        else:
            await self.session.on_message(msg)

    async def start(self, msg: dict[str, Any]) -> None:
        kind = msg["session"]
        if kind not in SESSION_TYPES:
            raise ProtocolError("unknown_session", f"unknown session {kind!r}; choose one of "
                                + ", ".join(SESSION_TYPES))
        state = SessionState.from_dict(msg["resume"]) if msg.get("resume") else SessionState(kind)
        if state.session != kind:
            raise ProtocolError("bad_state", f"resume: the state is of a {state.session} session, not {kind}")
        await self.close()  # one session per connection: starting another replaces it
        session = SESSION_TYPES[kind](self.app.engine, self.out, state)
        try:
            extra = await session.start(dict(msg.get("options") or {}))
        except BaseException:
            await session.close()
            raise
        self.session = session
        self.app.sessions.add(session)
        await self.out.control({"type": "started", "session": kind, "session_id": state.session_id, **extra})
        await session.after_start()

    async def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            self.app.sessions.discard(session)
            await session.close()


class ServerThread:
    """Run a server on a background thread: ``with ServerThread(db_path=...) as srv: srv.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, db_path: str | Path | None = None,
                 demo: bool = True, **kwargs: Any) -> None:
        self.host = host
        self.app = App(db_path, port=port, demo=demo, **kwargs)
        self._port = port
        self._info: dict = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="facestage-server", daemon=True)
        self._error: BaseException | None = None

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            def ready(port: int) -> None:
                self._info["port"] = port
                self._ready.set()

            await self.app.serve(self.host, self._port, self._stop, ready)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised in start()
            self._error = exc
            self._ready.set()

    @property
    def port(self) -> int:
        return int(self._info["port"])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        self.app.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_forever(host: str, port: int, db_path: str | Path | None = None,
                        allow_origins: tuple[str, ...] = (), warm: bool = True) -> None:
    import signal

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = App(db_path, port=port, allow_origins=allow_origins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    def announce(bound: int) -> None:
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound}"
        print(f"facestage server on {url}\n  studio   {url}/studio.html\n  output   {url}/output.html\n"
              f"  console  {url}/console.html\n  sessions ws://…:{bound}{WS_PATH}\n"
              f"  demo brand {app.demo_brand!r}, key in {app.engine.data_dir / (str(app.demo_brand) + '.key')}\n"
              f"  profiles {app.engine.store.path}", flush=True)

    def ready(bound: int) -> None:
        announce(bound)
        if warm:
            loop.run_in_executor(app.engine.io_executor, app.warmup)

    try:
        await app.serve(host, port, stop, ready)
    finally:
        app.close()
