"""Run the cluster: Redis (``--redis URL`` or a local redis-server), a local Ray (small object store, no
dashboard) or an existing one (``RAY_ADDRESS``), the ingress on the requested port (HAProxy in front of
the replicas, or Serve's Python proxy: ingress.py), and the
facestage deployment with a fixed replica count or autoscaling on ongoing sessions."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .ingress import MODES, HAProxyIngress, resolve
from .redis_server import LocalRedis, free_port

log = logging.getLogger("facestage.cluster")
OBJECT_STORE_BYTES = 100 * 2**20  # Ray's minimum is ~75 MB; sessions pass no large objects through it
APP_NAME = "facestage"


@dataclass
class ClusterOptions:
    replicas: int
    min_replicas: int | None = None  # autoscaling when min or max is given
    max_replicas: int | None = None
    sessions_per_replica: int = 64  # max_ongoing_requests: an open WebSocket holds one slot for its life
    target_sessions: float | None = None  # autoscaler target per replica (default: 3/4 of the capacity)
    gpu_per_replica: float = 0.0
    cpu_per_replica: float = 1.0
    redis_url: str | None = None
    ingress: str = "auto"  # "haproxy" (Serve's direct ingress), "proxy" (Serve's Python proxy), "auto"

    def check(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be >= 1, got {self.replicas}")
        lo = self.min_replicas if self.min_replicas is not None else self.replicas
        hi = self.max_replicas if self.max_replicas is not None else max(self.replicas, lo)
        if not 0 <= lo <= self.replicas <= hi:
            raise ConfigError(f"replica counts must satisfy min <= replicas <= max, got {lo} <= {self.replicas} "
                              f"<= {hi}")
        if self.sessions_per_replica < 1:
            raise ConfigError("--sessions-per-replica must be >= 1")
        if self.gpu_per_replica < 0 or self.cpu_per_replica < 0:
            raise ConfigError("--gpu-per-replica and --cpu-per-replica are >= 0")
        if self.ingress not in MODES:
            raise ConfigError(f"--ingress must be one of {', '.join(MODES)}, got {self.ingress!r}")

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    def deployment_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "max_ongoing_requests": self.sessions_per_replica,
            "ray_actor_options": {"num_cpus": self.cpu_per_replica, "num_gpus": self.gpu_per_replica,
                                  "runtime_env": {"env_vars": {"OPENBLAS_NUM_THREADS": "1"}}},
            # a killed replica is found and replaced in seconds, not the default 10 s + 30 s
            "health_check_period_s": 1.0, "health_check_timeout_s": 10.0,
            "graceful_shutdown_timeout_s": 5.0, "graceful_shutdown_wait_loop_s": 0.5,
        }
        if self.ingress == "proxy":  # HAProxy hashes the session itself (ingress.BALANCE)
            opts["request_router_config"] = {"request_router_class":
                                             "facestage.serving.cluster.routing.SessionAffinityRouter"}
        if self.autoscaling:
            opts["autoscaling_config"] = {
                "min_replicas": self.min_replicas if self.min_replicas is not None else self.replicas,
                "initial_replicas": self.replicas,
                "max_replicas": self.max_replicas if self.max_replicas is not None else self.replicas,
                "target_ongoing_requests": self.target_sessions or max(1.0, 0.75 * self.sessions_per_replica),
                "upscale_delay_s": 5.0, "downscale_delay_s": 60.0,
            }
        else:
            opts["num_replicas"] = self.replicas
        return opts


class Cluster:
    """Start with ``start()``, stop with ``stop()`` (also on SIGINT/SIGTERM through ``serve_cluster``)."""

    def __init__(self, options: ClusterOptions, host: str, port: int, db_path: str | Path | None,
                 allow_origins: tuple[str, ...] = (), trust_local: bool | None = None,
                 open_media: bool | None = None, outbound: tuple[str, ...] = ("public",),
                 operator_key_file: Path | None = None, warm: bool = True) -> None:
        options.check()
        self.options, self.host = options, host
        self.port = port or free_port(host if host not in ("0.0.0.0", "") else "127.0.0.1")
        self.db_path = str(db_path) if db_path is not None else None
        self.allow_origins, self.trust_local, self.open_media = allow_origins, trust_local, open_media
        self.outbound, self.operator_key_file, self.warm = outbound, operator_key_file, warm
        self.redis: LocalRedis | None = None
        self.redis_url = options.redis_url or ""
        self.new_operator_key: str | None = None
        self.haproxy: HAProxyIngress | None = None

    def _prepare_files(self) -> str:
        """Secrets and operator keys are made once here, before replicas start, so none race to make them."""
        from ...dialogue.store import default_path, load_secrets_key
        from ..security import SecurityConfig, resolve_operator_key

        db = self.db_path or str(default_path())
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        load_secrets_key(db)
        cfg = SecurityConfig(operator_key_file=self.operator_key_file)
        _, self.new_operator_key = resolve_operator_key(cfg, Path(db).parent)
        return db

    def start(self) -> Cluster:
        o = self.options
        o.ingress = resolve(o.ingress)
        if o.ingress == "haproxy" and not os.environ.get("RAY_ADDRESS"):
            self.haproxy = HAProxyIngress()
            self.haproxy.apply()  # before Ray starts: Serve reads it at import, in every worker
        import ray
        from ray import serve

        from .deployment import FacestageReplica, ReplicaConfig

        db = self._prepare_files()
        if not self.redis_url:
            self.redis = LocalRedis()
            self.redis_url = self.redis.url
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init(log_to_driver=False)
            else:
                peak = o.max_replicas or o.replicas
                ray.init(num_cpus=max(os.cpu_count() or 1, int(peak * o.cpu_per_replica + 0.999)),
                         object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, log_to_driver=False,
                         configure_logging=True, logging_level=logging.WARNING)
        if o.gpu_per_replica > 0 and not ray.cluster_resources().get("GPU", 0):
            raise ConfigError(f"--gpu-per-replica {o.gpu_per_replica:g}: the Ray cluster has no GPU (replicas would "
                              "wait for one forever); leave it at 0 to render on the CPU")
        serve.start(http_options={"host": self.host, "port": self.port})
        cfg = ReplicaConfig(redis_url=self.redis_url, db_path=db, port=self.port, host=self.host,
                            capacity=o.sessions_per_replica, allow_origins=self.allow_origins,
                            trust_local=self.trust_local, open_media=self.open_media, outbound=self.outbound,
                            warm=self.warm)
        app = FacestageReplica.options(**o.deployment_options()).bind(cfg)
        serve.run(app, name=APP_NAME, route_prefix="/")
        return self

    def stop(self) -> None:
        try:
            import ray
            from ray import serve

            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            if self.redis is not None:
                self.redis.stop()
                self.redis = None
            if self.haproxy is not None:
                self.haproxy.cleanup()
                self.haproxy = None

    def describe(self) -> dict[str, Any]:
        return {"url": f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}",
                "redis": self.redis_url, **asdict(self.options)}


def serve_cluster(cluster: Cluster) -> None:
    """Start, print the banner, serve until SIGINT/SIGTERM, stop everything that was started."""
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        cluster.start()
        for sig in (signal.SIGINT, signal.SIGTERM):  # again: ray.init installs its own (a stack dump)
            signal.signal(sig, on_signal)
        d = cluster.describe()
        if cluster.haproxy is not None:  # before the banner: ClusterProcess stops reading at the banner
            print(f"haproxy config under {cluster.haproxy.dir}", flush=True)
        mode = (f"autoscaling {cluster.options.min_replicas}..{cluster.options.max_replicas}"
                if cluster.options.autoscaling else f"{cluster.options.replicas} replicas")
        print(f"facestage cluster on {d['url']}  ({mode}, {cluster.options.sessions_per_replica} sessions each, "
              f"ingress {cluster.options.ingress}, Redis {d['redis']})", flush=True)
        if cluster.new_operator_key:
            print(f"operator key (shown once, saved beside the database): {cluster.new_operator_key}", flush=True)
        stop.wait()
    finally:
        cluster.stop()
