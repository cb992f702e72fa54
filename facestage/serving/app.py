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

from . import http as routes
from .auth import Access, OriginPolicy, is_local_request
from .auth import identify as identify_access
from .avatar_session import AvatarSession
from .base import Outbox, Session
from .connection import (
    Action,
    Checkpoint,
    ClientCounter,
    Close,
    CloseSession,
    ConnectionCore,
    FrameToSession,
    LoadCheckpoint,
    Send,
    StartSession,
    ToSession,
    error_for,
)
from .effects_session import EffectsSession
from .employee_session import EmployeeSession
from .engine import Engine
from .httpconn import HTTPAwareConnection, _remote
from .protocol import MAX_WIRE_BYTES, dumps
from .render_session import RenderSession
from .security import OperatorKey, SecurityConfig, SessionCounter, resolve_operator_key
from .shared import CheckpointStore, MemoryCheckpoints
from .watch_session import WatchSession

log = logging.getLogger("facestage.server")
WS_PATH = "/v1/ws"
SESSION_TYPES: dict[str, type[Session]] = {"effects": EffectsSession, "avatar": AvatarSession,
                                           "employee": EmployeeSession, "render": RenderSession,
                                           "watch": WatchSession}
MAX_CONNECTIONS = 256  # WebSocket sessions per process; more get 503 (scale out with more replicas)


class App:
    def __init__(self, db_path: str | Path | None = None, port: int = 8765, demo: bool = True,
                 allow_origins: tuple[str, ...] = (), workers: int | None = None,
                 max_connections: int = MAX_CONNECTIONS, host: str = "127.0.0.1",
                 security: SecurityConfig | None = None) -> None:
        self.security = security or SecurityConfig()
        self.security.settle(host)
        self.engine = Engine(db_path, workers=workers)
        self.engine.outbound = self.security.outbound
        self.engine.vmc_policy = self.security.vmc
        key, self.new_operator_key = resolve_operator_key(self.security, self.engine.data_dir)
        self.operator = OperatorKey(key)
        self.operator_key_file = self.security.operator_key_file or self.engine.data_dir / "operator.key"
        # Requests are checked against the hash. The plain key stays only where it came from: the config
        # (an operator-supplied key) or new_operator_key (a generated one, until it has been printed once).
        del key
        self.max_connections = max_connections
        self.clients: SessionCounter = ClientCounter(self.security.limits.sessions_per_client)
        self.origins = OriginPolicy(port, allow_origins)
        self.sessions: set[Session] = set()
        self.connections = 0
        # where live sessions leave their checkpoints (Redis in a cluster: any replica can resume them)
        self.checkpoints: CheckpointStore = MemoryCheckpoints()
        self.hello_info: dict[str, Any] = {}  # extra hello fields: a cluster replica adds {"replica": pid}
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
            if self.connections >= self.max_connections:  # before any per-client accounting
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
        # HTTP API calls run inside the handshake (process_request): a cold photo-avatar build takes 6-15 s on
        # 2 busy cores, past websockets' 10 s default; 60 s still ends a stalled handshake
        async with serve(self.handler, host, port, process_request=self.process_request, open_timeout=60,
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


class _Client:
    """One WebSocket connection: the thin adapter that runs what ``ConnectionCore`` decides.

    ``ws`` is a websockets connection, or anything with its ``send``/``recv``/``close`` and ``transport``
    (the cluster's FastAPI front-end passes an adapter, with the remote address and headers)."""

    def __init__(self, app: App, ws: Any, remote: str | None = None, headers: Any = None) -> None:
        self.app = app
        self.ws = ws
        self.out = Outbox(ws.send, lambda: ws.transport.get_write_buffer_size() if ws.transport else 0)
        self.session: Session | None = None
        remote = _remote(ws) if remote is None else remote
        if headers is None and ws.request is not None:
            headers = ws.request.headers
        local = is_local_request(remote, headers) if headers is not None else False
        sec = app.security

        def identify(key: str | None, brand: str | None) -> Access:
            return identify_access(app, key, brand, local)

        self.core = ConnectionCore(identify, app.clients, sec.limits, bool(sec.open_media), remote,
                                   info=app.hello_info)

    async def run(self) -> None:
        await self.act(self.core.hello(time.time() * 1000))
        try:
            while True:
                try:
                    async with asyncio.timeout(max(self.core.idle_left(), 0.01)):
                        message = await self.ws.recv()
                except TimeoutError:
                    if await self.act(self.core.tick()):
                        return
                    continue
                dropped = self.core.dropped_frames
                actions = self.core.receive(message, time.time() * 1000)
                if self.session is not None and self.core.dropped_frames != dropped:
                    self.session.state.dropped_in += self.core.dropped_frames - dropped
                if await self.act(actions):
                    return
        except ConnectionClosed:
            pass

    async def act(self, actions: list[Action]) -> bool:
        """Run the core's actions; True when the connection is to be closed."""
        for a in actions:
            try:
                if isinstance(a, Send) and a.droppable:
                    self.out.offer(dumps(a.msg))  # never waits: the reader must keep reading
                elif isinstance(a, Send):
                    await self.out.control(a.msg)
                elif isinstance(a, FrameToSession):
                    assert self.session is not None
                    await self.session.on_frame(a.frame)
                elif isinstance(a, ToSession):
                    assert self.session is not None
                    await self.session.on_message(a.msg)
                elif isinstance(a, Checkpoint):
                    assert self.session is not None
                    await self.out.control({"type": "checkpoint", "state": self.session.checkpoint()})
                elif isinstance(a, CloseSession):
                    await self.close(release=False)
                elif isinstance(a, StartSession):
                    await self.start(a)
                elif isinstance(a, LoadCheckpoint):
                    stored = await self.app.checkpoints.get(a.session_id)
                    if await self.act(self.core.resume_loaded(a.msg, stored)):
                        return True
                elif isinstance(a, Close):
                    await self.ws.close(a.code, a.reason)
                    return True
            except ConnectionClosed:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad message must not end the connection
                await self.out.control(error_for(exc).msg)
        return False

    async def start(self, a: StartSession) -> None:
        session = SESSION_TYPES[a.kind](self.app.engine, self.out, a.state)
        session.scope = a.access.principal or "open"
        session.brand_access = a.access.brand
        try:
            extra = await session.start(a.options)
        except BaseException as exc:
            await session.close()
            await self.act(self.core.start_failed(exc))
            if not isinstance(exc, Exception):
                raise
            return
        self.session = session
        self.app.sessions.add(session)
        await self.act(self.core.started(a.kind, a.state.session_id, extra))
        session.keep_checkpoints(self.app.checkpoints)
        await session.after_start()

    async def close(self, release: bool = True) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            self.app.sessions.discard(session)
            try:  # the last state, for a client that reconnects (a dropped network looks like a close)
                await self.app.engine.run(session.capture_tracker)
                await session.save_checkpoint(self.app.checkpoints)
            except Exception as exc:  # noqa: BLE001 - closing goes on without it
                log.warning("final checkpoint of %s not written: %s", session.state.session_id, exc)
            await session.close()
        if release:
            self.core.session_closed()


ClientConnection = _Client  # the name the cluster front-end uses


class ServerThread:
    """Run a server on a background thread: ``with ServerThread(db_path=...) as srv: srv.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, db_path: str | Path | None = None,
                 demo: bool = True, **kwargs: Any) -> None:
        self.host = host
        self.app = App(db_path, port=port, demo=demo, host=host, **kwargs)
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
                        allow_origins: tuple[str, ...] = (), warm: bool = True,
                        security: SecurityConfig | None = None) -> None:
    import signal

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = App(db_path, port=port, allow_origins=allow_origins, host=host, security=security)
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
        sec = app.security
        if app.new_operator_key:  # printed this once; afterwards only the file has it
            print(f"  operator key (new, shown once; also in {app.operator_key_file}): {app.new_operator_key}",
                  flush=True)
            app.new_operator_key = None
        else:
            where = "FACESTAGE_OPERATOR_KEY" if os.environ.get("FACESTAGE_OPERATOR_KEY") else app.operator_key_file
            print(f"  operator key from {where}", flush=True)
        print(f"  local trust {'on' if sec.trust_local else 'off'}, media sessions "
              f"{'open' if sec.open_media else 'need a key'}, outbound {', '.join(sec.outbound.entries)}", flush=True)

    def ready(bound: int) -> None:
        announce(bound)
        if warm:
            loop.run_in_executor(app.engine.io_executor, app.warmup)

    try:
        await app.serve(host, port, stop, ready)
    finally:
        app.close()
