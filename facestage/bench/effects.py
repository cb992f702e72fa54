"""``facestage bench effects``: median ms per 1280x720 frame for tracking, each effect and full chains,
with one face (zoompan clip of a real photo) and with four faces (2x2 tiles of the same clip)."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator

import numpy as np

from .stats import summary

CASES = {  # one representative, visible setting per effect
    "beauty": "natural",
    "makeup": {"makeup": {"lipstick": 0.7, "blush": 0.5, "brows": 0.5, "eyeshadow": 0.5, "eyeliner": 0.6}},
    "age": "old-70",
    "sticker": {"sticker": {"glasses": 1.0, "hat": 1.0}},
    "paint": {"paint": {"amount": 0.8, "design": "tiger"}},
    "background": {"background": {"mode": "blur"}},
    "lut": {"lut": {"lut": "teal-orange"}},
    "lut_skin": {"lut": {"lut": "warm", "region": "skin"}},
    "props": {"props": {"glasses": 1.0}},
    "props_all": {"props": {"glasses": 1.0, "hat": 1.0, "ears": 1.0}},
}
TARGET_CHAIN_WALL_MS = 10.0  # beauty + makeup + aging, one 720p face, one thread (issue 14)


ROUNDS = 3


def _median_ms(chain, frames: list[np.ndarray], faces: list) -> tuple[float, float]:  # noqa: ANN001
    """(wall, CPU) median ms per frame over the clip, each the best of ``ROUNDS`` passes."""
    t = _timed(chain, frames, faces)
    return t["wall"]["median"], t["cpu"]["median"]


def _timed(chain, frames: list[np.ndarray], faces: list) -> dict:  # noqa: ANN001
    """Wall and CPU summaries (median, p10, p90 …) of the per-frame times of the best of ``ROUNDS`` passes.

    The machine is shared: a neighbour's burst inflates a whole pass; the best pass's median is the
    closest to the effect's own cost. CPU time is this thread's (``time.thread_time``): it leaves out
    the time the scheduler gives to other processes, which wall time does not. The first frame of the
    first pass (texture builds, lazy imports) is dropped.
    """
    passes = []
    for r in range(ROUNDS):
        wall, cpu = [], []
        for frame, ff in zip(frames, faces, strict=True):
            t0, c0 = time.perf_counter(), time.thread_time()
            chain.apply(frame, ff)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
        skip = 1 if r == 0 and len(wall) > 2 else 0
        passes.append((summary(wall[skip:]), summary(cpu[skip:])))
    best_wall = min((w for w, _ in passes), key=lambda s: s["median"])
    best_cpu = min((c for _, c in passes), key=lambda s: s["median"])
    return {"wall": best_wall, "cpu": best_cpu, "pass_medians_wall": [w["median"] for w, _ in passes]}


@contextlib.contextmanager
def _one_core() -> Iterator[dict]:
    """Pin OpenCV and the BLAS to one thread while timing (the target is per core); yields what is in
    effect and restores the previous settings afterwards (tests share the process).

    ``OPENBLAS_NUM_THREADS`` only counts if set before numpy loads (``facestage bench`` sets it first);
    when numpy is already loaded (tests, notebooks) threadpoolctl, if installed, limits it at run time.
    """
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    info: dict = {"cv2": cv2.getNumThreads(), "blas": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
        info["blas"] = max((i.get("num_threads", 1) for i in threadpool_info()), default=1)
    try:
        with limits:
            yield info
    finally:
        cv2.setNumThreads(before)


def _tile4(frame: np.ndarray, faces: list) -> tuple[np.ndarray, list]:  # noqa: ANN001
    """Four half-size copies of the frame in a 2x2 grid, with the tracked face moved into each tile.

    The face-mesh detector misses faces this small in a 1280x720 frame (see BRIEF: small faces need the
    long-range detector), so the landmarks are the full-size ones scaled by 1/2 and offset per tile.
    """
    from dataclasses import replace

    import cv2

    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    tiled = np.vstack([np.hstack([small, small]), np.hstack([small, small])])
    out = []
    for i, (ox, oy) in enumerate(((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))):
        for f in faces:
            lm = f.landmarks * np.float32([0.5, 0.5, 0.5]) + np.float32([ox, oy, 0])
            x0, y0, x1, y1 = f.bbox
            out.append(replace(f, id=i, landmarks=lm, bbox=(x0 / 2 + ox, y0 / 2 + oy, x1 / 2 + ox, y1 / 2 + oy)))
    return tiled, out


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    with _one_core() as threads:
        from ..effects import EffectChain, load_preset, merge_configs
        from ..testdata import zoompan_clip
        from ..tracking import FaceTracker

        n = args.frames or 30
        frames = zoompan_clip(size=(1280, 720), frames=n, face_fraction=0.35)
        with FaceTracker(max_faces=1) as tracker:
            faces, track_ms = [], []
            for f in frames:
                t0 = time.perf_counter()
                faces.append(tracker.track(f))
                track_ms.append((time.perf_counter() - t0) * 1000)
        configs = {k: load_preset(v) if isinstance(v, str) else v for k, v in CASES.items()}
        effects = {name: _median_ms(EffectChain(cfg), frames, faces) for name, cfg in configs.items()}
        full = merge_configs(load_preset("natural"), configs["makeup"], load_preset("old-70"))
        natural_old = merge_configs(load_preset("natural"), load_preset("old-70"))
        chain_t = _timed(EffectChain(full), frames, faces)
        chain_ms, chain_cpu = chain_t["wall"]["median"], chain_t["cpu"]["median"]
        natural_old_ms, natural_old_cpu = _median_ms(EffectChain(natural_old), frames, faces)

        tiled = [_tile4(f, ff) for f, ff in zip(frames[: max(n // 2, 3)], faces, strict=False)]
        tiles, faces4 = [t for t, _ in tiled], [ff for _, ff in tiled]
        faces4_ms, faces4_cpu = _median_ms(EffectChain(full), tiles, faces4)
    return {
        "size": [1280, 720],
        "frames": n,
        "face_width_px": round(float(np.median([f[0].bbox[2] - f[0].bbox[0] for f in faces if f])), 1),
        "threads": 1 if threads["cv2"] == 1 and threads["blas"] in (1, "1") else threads,
        "thread_detail": threads,
        "timing": f"median per frame, best of {ROUNDS} passes; *_ms wall clock, *_cpu_ms this thread's CPU time",
        "tracking_ms": round(statistics.median(track_ms[1:]), 2),
        "chain_ms": chain_ms,
        "chain_wall_ms": chain_ms,
        "chain_cpu_ms": chain_cpu,
        "chain_wall": chain_t["wall"],
        "chain_cpu": chain_t["cpu"],
        "chain_pass_medians_wall_ms": chain_t["pass_medians_wall"],
        "chain": "natural + makeup + old-70 (beauty + makeup + aging)",
        "natural_old70_ms": natural_old_ms,
        "natural_old70_cpu_ms": natural_old_cpu,
        "effects": {k: v[0] for k, v in effects.items()},
        "effects_cpu": {k: v[1] for k, v in effects.items()},
        "faces4": int(np.median([len(f) for f in faces4])),
        "faces4_chain_ms": faces4_ms,
        "faces4_chain_cpu_ms": faces4_cpu,
        "target_chain_wall_ms": TARGET_CHAIN_WALL_MS,
        "target_met": chain_ms <= TARGET_CHAIN_WALL_MS,
    }
