"""What every saved benchmark result carries besides its figures: when, on what, with which versions.

``facestage bench NAME`` writes ``bench/results/NAME.json`` = ``{"bench", "result", "machine", "versions",
"git", "started", "duration_s", "load_avg"}`` so a figure quoted anywhere can be traced to the run and the
machine state that produced it (the README's table is generated from these files).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The packages whose versions move the figures (runtime, renderer, models).
VERSIONED = ("facestage", "numpy", "opencv-contrib-python", "mediapipe", "moderngl", "onnxruntime", "torch",
             "piper-tts", "sentence-transformers", "faster-whisper", "websockets", "pyrender")
DEFAULT_DIR = Path("bench/results")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip()

    try:
        return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "system": f"{platform.system()} {platform.release()}",
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def run_and_record(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark and wrap its figures with the context they were measured in."""
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result = fn()
    return {"bench": name, "result": result, "started": started.isoformat(),
            "duration_s": round(time.perf_counter() - t0, 1),
            # the 1-minute load before and after: on a shared machine it says how much to trust the medians
            "load_avg": {"before_1m": round(load_before[0], 2), "after_1m": round(os.getloadavg()[0], 2)},
            "machine": machine(), "versions": _versions(), "git": _git()}


def save(record: dict[str, Any], directory: Path = DEFAULT_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['bench']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)  # a crashed run never leaves half a file where the README reads
    return path


def load_all(directory: Path = DEFAULT_DIR) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
