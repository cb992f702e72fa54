"""The Ray Serve deployment: each replica is one facestage ``App`` (its own Engine: worker threads, the GL
thread, trackers, models — all lazy) whose brands, checkpoints, watch channels and client counters live in
Redis, behind a FastAPI ingress that serves the same URLs as ``facestage serve``."""


import logging
import os
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from ray import serve

from . import front

log = logging.getLogger("facestage.cluster")
api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)  # the protocol is documented in docs/


@dataclass
class ReplicaConfig:
    """What every replica is built from (plain data: it travels to the replicas through Ray)."""

    redis_url: str
    db_path: str  # beside it: secrets.key, operator.key, the demo key, uploads (shared disk in a real cluster)
    port: int
    host: str = "127.0.0.1"
    capacity: int = 64  # sessions one replica carries (= max_ongoing_requests)
    allow_origins: tuple[str, ...] = ()
    demo: bool = True
    trust_local: bool | None = None
    open_media: bool | None = None
    outbound: tuple[str, ...] = ("public",)
    workers: int | None = None
    warm: bool = True  # a replica enters service with trackers, effects, the avatar and the demo employee loaded
    extra: dict[str, Any] = field(default_factory=dict)


def build_app(cfg: ReplicaConfig) -> tuple[Any, Any]:
    """A facestage App on shared state and its (not yet started) registry entry."""
    import redis

    from ...dialogue.outbound import OutboundPolicy
    from ...dialogue.store import ProfileStore
    from ..app import App
    from ..security import SecurityConfig
    from ..shared.redis_profiles import RedisRows
    from ..shared.redis_state import RedisChannels, RedisCheckpoints, RedisClientCounter
    from .registry import ReplicaRegistry

    security = SecurityConfig(trust_local=cfg.trust_local, open_media=cfg.open_media,
                              outbound=OutboundPolicy(cfg.outbound))
    app = App(cfg.db_path, port=cfg.port, demo=False, allow_origins=cfg.allow_origins, workers=cfg.workers,
              max_connections=cfg.capacity, host=cfg.host, security=security)
    client = redis.Redis.from_url(cfg.redis_url)
    engine = app.engine
    engine.store.close()  # the SQLite file stays the single-process server's; brands come from Redis
    engine.store = ProfileStore(cfg.db_path, rows=RedisRows(client))
    engine.channels = RedisChannels(cfg.redis_url)
    app.checkpoints = RedisCheckpoints(cfg.redis_url)
    counter = RedisClientCounter(client, security.limits.sessions_per_client)
    app.clients = counter
    if cfg.demo:
        with client.lock("fs:lock:demo", timeout=30, blocking_timeout=60):  # one replica installs it
            app._setup_demo()
    app.hello_info = {"replica": os.getpid()}
    registry = ReplicaRegistry(client, cfg.capacity, lambda: len(app.sessions), counter.forget_replicas)
    counter.replica = registry.id
    return app, registry


def warm_replica(app: Any) -> None:
    """Load, before Serve routes anything here, what a resumed session needs on its first frame: a
    replacement replica must not make failed-over clients wait for MediaPipe graphs and models (measured:
    the first frame after a failover to a cold replica came 1.7-2.2 s after the kill, under load).
    Speech is left lazy: a reply in flight cannot move anyway, and the voices are the heaviest part."""
    from ..effects_session import MAX_FACES

    engine = app.engine
    steps = [("trackers", lambda: [engine.release_tracker(engine.acquire_tracker(n)) for n in (1, MAX_FACES)]),
             ("effects", lambda: _effects_chain()),
             ("avatar", lambda: engine.avatar("default")),
             ("render", lambda: engine.render.render(engine.avatar("default"), None, size=64))]
    if app.demo_brand:
        steps.append(("employee", lambda: engine.employee(app.demo_brand)))
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - warm-up is an optimisation; report and go on
            log.warning("replica warm-up of %s failed: %s", name, exc)


def _effects_chain() -> None:
    import numpy as np

    from ...effects import EffectChain, load_preset

    EffectChain.from_config(load_preset("natural")).apply(np.zeros((64, 64, 3), np.uint8), [])


def health(app: Any, registry: Any) -> dict[str, Any]:
    replicas = registry.replicas()
    return {"ok": True, "version": 1, "mode": "cluster", "replica": os.getpid(),
            "sessions": sum(r["sessions"] for r in replicas),
            "replicas": [{k: r[k] for k in ("pid", "sessions", "load", "capacity", "id")} for r in replicas]}


@serve.deployment(name="facestage")
@serve.ingress(api)
class FacestageReplica:
    def __init__(self, cfg: ReplicaConfig) -> None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        self.fs, self.registry = build_app(cfg)
        if cfg.warm:
            warm_replica(self.fs)
        self.registry.start()  # announced once ready: /healthz lists replicas that can take sessions

    @api.websocket("/v1/ws")
    async def websocket(self, ws: WebSocket) -> None:
        await front.websocket_session(self.fs, ws)

    @api.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "DELETE"])
    async def http(self, request: Request, path: str):
        is_health = request.url.path.rstrip("/") == "/healthz"
        info = health(self.fs, self.registry) if is_health else None
        return await front.http_request(self.fs, request, info)

    def check_health(self) -> None:
        if self.fs.engine._closed:
            raise RuntimeError("engine closed")

    def __del__(self) -> None:
        try:
            self.registry.stop()
            self.fs.close()
        except Exception:  # noqa: BLE001 - the replica is going away
            pass
