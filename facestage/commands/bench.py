"""``facestage bench NAME``: speed and memory benchmarks that print JSON and save it under bench/results/."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

BENCHES = {
    "tracking": "raw MediaPipe face mesh vs the full tracker at 1280x720",
    "effects": "tracking, each effect and full chains at 1280x720, 1 and 4 faces",
    "avatar": "solve + deform + render + JPEG per frame at 512x512, moderngl vs pyrender",
    "speech": "question to first audio, TTS real-time factor, retrieval latency",
    "server": "concurrent 640x480 effect streams at 30 fps and the latency the server adds",
    "browser": "studio avatar mode in Chromium: client-rendered (three-vrm) vs server-rendered fps, latency, bytes",
    "conversation": "spoken questions in Chromium (fake mic): end of speech to first reply audio, en and zh; "
                    "TTS RTF per voice",
    "cluster": "one process vs --replicas 2 (Ray Serve): streams sustained, per-frame proxy overhead p50/p95, "
               "kill -9 failover resume time over 5 kills",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print JSON",
                       description="Benchmarks print one JSON object (medians measured in one run).")
    p.add_argument("name", choices=sorted(BENCHES), help="; ".join(f"{k}: {v}" for k, v in BENCHES.items()))
    p.add_argument("--json", action="store_true", help="print the JSON object on one line (default: indented)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write NAME.json with the figures, machine, load and versions "
                        "(default bench/results)")
    p.add_argument("--no-save", action="store_true", help="only print, write no result file")
    p.add_argument("--frames", type=int, default=None, help="frames or iterations to time (default per bench)")
    p.add_argument("--lod", choices=("realtime", "full"), default=None,
                   help="avatar bench only: mesh level of detail (default realtime)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..bench.record import DEFAULT_DIR, run_and_record, save

    bench = importlib.import_module(f"facestage.bench.{args.name}")
    record = run_and_record(args.name, lambda: bench.run(args))
    print(json.dumps(record, indent=None if args.json else 2, ensure_ascii=False))
    if not args.no_save:
        path = save(record, Path(args.out) if args.out else DEFAULT_DIR)
        print(f"wrote {path}", file=sys.stderr)
    return 0
