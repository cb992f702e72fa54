"""``facestage bench NAME``: speed and memory benchmarks that print JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os

BENCHES = {
    "tracking": "raw MediaPipe face mesh vs the full tracker at 1280x720",
    "effects": "tracking, each effect and full chains at 1280x720, 1 and 4 faces",
    "avatar": "solve + deform + render + JPEG per frame at 512x512, moderngl vs pyrender",
    "speech": "question to first audio, TTS real-time factor, retrieval latency",
    "server": "concurrent 640x480 effect streams at 30 fps and the latency the server adds",
    "conversation": "spoken questions in Chromium (fake mic): end of speech to first reply audio, en and zh; "
                    "TTS RTF per voice",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print JSON",
                       description="Benchmarks print one JSON object (medians measured in one run).")
    p.add_argument("name", choices=sorted(BENCHES), help="; ".join(f"{k}: {v}" for k, v in BENCHES.items()))
    p.add_argument("--json", action="store_true", help="print the JSON object on one line (default: indented)")
    p.add_argument("--frames", type=int, default=None, help="frames or iterations to time (default per bench)")
    p.add_argument("--lod", choices=("realtime", "full"), default=None,
                   help="avatar bench only: mesh level of detail (default realtime)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    result = importlib.import_module(f"facestage.bench.{args.name}").run(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
