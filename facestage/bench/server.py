"""``facestage bench server``: how many concurrent 640x480 effect streams at 30 fps the real server sustains,
and the latency it adds (send → processed frame back, loopback, p50/p95 at the highest sustained load).

The server is the real one: ``facestage serve`` started in its own process on 127.0.0.1 port 0 (as in
production; the clients' Python then cannot steal the server's GIL), driven by N real WebSocket clients.
Each stream sends pre-encoded 640x480 camera JPEGs (a real photo, zoom and pan) on a 30 fps clock with at
most two frames in flight and ``max_faces`` 1 (what the studio page does), with the "natural" preset.
``p50_ms``/``p95_ms`` are the full round trip (decode, track, effects, encode, queues, loopback) of every
frame that came back; ``processing_p50_ms`` is the server's own per-frame work from its stats, so the
difference is transport and queueing. Per stream: frames sent, received, held back by the client (two in
flight already) and the drops the server reported in its stats (``dropped_in``: stale frames replaced by a
newer one, latest wins; ``dropped_out``: a backed-up socket). ``server_cores`` is the CPU the server process
got, so a level lost to other load on a shared machine is told apart from one the server could not carry.
A level is sustained when every stream gets ≥ 95 % of its frames back. Levels rise 1, 2, 3 … until one
fails twice in a row (at most 8; one burst of other load on a shared machine must not end the run), ~6 s
per level. Then one overload level: sustained + 2 streams whose clients send every frame (no in-flight cap),
to show the server dropping stale frames per stream instead of queueing them. ``cpu_ms_per_frame`` is the
same ``EffectsPipeline`` the server runs, on one thread, for context.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FPS = 30.0
WARMUP_S = 1.5
MEASURE_S = 4.0
MAX_STREAMS = 8
PRESET = "natural"
MAX_FACES = 1  # what the studio page asks for: one streamer in front of the camera


def _frames() -> list[bytes]:
    import cv2

    from .. import testdata

    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
            for f in testdata.zoompan_clip(size=(640, 480), frames=30)]


async def _stream(url: str, frames: list[bytes], t_start: float, t_end: float, lat: list[float],
                  proc: list[float], max_inflight: int = 2) -> dict:
    """One client: send on the 30 fps clock, read frames and stats back; returns this stream's counts."""
    import websockets

    from ..serving.protocol import Kind, pack_frame

    counts = {"sent": 0, "received": 0, "held_back": 0, "dropped_in": 0, "dropped_out": 0, "server_fps": None}
    async with websockets.connect(url, max_size=2**24) as ws:
        await ws.recv()
        options = {"preset": PRESET, "max_faces": MAX_FACES}
        await ws.send(json.dumps({"type": "start", "session": "effects", "options": options}))
        inflight = 0
        stats0: dict | None = None

        async def reader() -> None:
            nonlocal inflight, stats0
            async for msg in ws:
                if isinstance(msg, bytes):
                    inflight = max(0, inflight - 1)
                    now = time.time() * 1000
                    ts = float(np.frombuffer(msg[8:16], ">f8")[0])
                    if t_start * 1000 <= ts:
                        counts["received"] += 1
                        lat.append(now - ts)
                elif '"stats"' in msg:
                    st = json.loads(msg)
                    if time.time() <= t_start or stats0 is None:
                        stats0 = st  # drops during warm-up are not counted
                    else:
                        proc.append(st["proc_ms"])  # the server's own time on a frame (median/s)
                        counts["server_fps"] = st["fps"]
                    for k in ("dropped_in", "dropped_out"):
                        counts[k] = st[k] - stats0[k]

        task = asyncio.create_task(reader())
        i = 0
        next_t = time.time()
        while next_t < t_end:
            await asyncio.sleep(max(0.0, next_t - time.time()))
            measured = time.time() >= t_start
            if inflight < max_inflight:
                await ws.send(pack_frame(Kind.JPEG, i, time.time() * 1000, frames[i % len(frames)]))
                inflight += 1
                counts["sent"] += measured
            else:
                counts["held_back"] += measured
            i += 1
            next_t += 1 / FPS
        await asyncio.sleep(1.2)  # the last replies and one more stats message
        task.cancel()
    return counts


def _cpu_s(pid: int | None) -> float:
    """CPU seconds a process has used so far (user + system); 0 when unknown."""
    if pid is None:
        return 0.0
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _level(url: str, n: int, frames: list[bytes], measure_s: float, pid: int | None = None,
                 max_inflight: int = 2) -> dict:
    t0 = time.time()
    cpu0 = _cpu_s(pid)
    t_start, t_end = t0 + WARMUP_S, t0 + WARMUP_S + measure_s
    lat: list[float] = []
    proc: list[float] = []
    streams = await asyncio.gather(*[_stream(url, frames, t_start, t_end, lat, proc, max_inflight)
                                     for _ in range(n)])
    fps = [c["received"] / measure_s for c in streams]
    # Cores the server actually got: on a shared machine a level can fail because other processes took the
    # CPU, which this makes visible (a CPU-bound server on 2 idle cores shows ~2).
    cores = (_cpu_s(pid) - cpu0) / (time.time() - t0)
    arr = np.array(lat) if lat else np.array([float("nan")])
    return {"streams": n, "min_fps": round(min(fps), 1), "p50_ms": round(float(np.percentile(arr, 50)), 1),
            "p95_ms": round(float(np.percentile(arr, 95)), 1),
            "processing_p50_ms": round(float(np.median(proc)), 1) if proc else None,
            "server_cores": round(cores, 2) if pid is not None else None,
            "per_stream": streams,
            "sustained": min(fps) >= 0.95 * FPS}


def _pipeline_cost(frames: list[bytes]) -> dict:
    """Median single-thread cost of one frame in the server's own EffectsPipeline (per-stage wall ms)."""
    import cv2

    from ..effects import EffectChain, load_preset
    from ..effects_pipeline import EffectsPipeline, jpeg_codec
    from ..tracking import FaceTracker

    cv2.setNumThreads(1)  # as in the server (serving/engine.py): parallel across streams, not within a call
    decode, encode = jpeg_codec(80)
    with FaceTracker(max_faces=MAX_FACES) as tracker:
        flow = EffectsPipeline(tracker, EffectChain.from_config(load_preset(PRESET)), decode, encode)
        parts: dict[str, list[float]] = {"decode": [], "track": [], "effects": [], "encode": []}
        for i, data in enumerate(frames * 2):
            res = flow.process(data, i / FPS)
            for k in parts:
                parts[k].append(res.timings_ms[k])
    cost = {k: round(float(np.median(v)), 2) for k, v in parts.items()}
    cost["total"] = round(sum(cost.values()), 2)
    return cost


def run(args: argparse.Namespace) -> dict:
    from ..serving.process import ServerProcess

    measure_s = (args.frames / FPS) if getattr(args, "frames", None) else MEASURE_S
    frames = _frames()
    levels: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "p.sqlite3") as srv:
        asyncio.run(_level(srv.ws_url, 1, frames, 1.0))  # load models once, outside the measurement
        n = 1
        retried = False
        while n <= MAX_STREAMS:
            level = asyncio.run(_level(srv.ws_url, n, frames, measure_s, srv.pid))
            level["attempt"] = 2 if retried else 1
            levels.append(level)
            if level["sustained"]:
                n, retried = n + 1, False
            elif not retried:
                retried = True  # once more: one burst of another process's load can sink a level
            else:
                break
        sustained = max([lv["streams"] for lv in levels if lv["sustained"]], default=0)
        # Beyond capacity, clients that send every camera frame (no in-flight cap): the server must drop
        # stale frames per stream (latest wins) and keep the latency of what it returns bounded.
        overload = asyncio.run(_level(srv.ws_url, sustained + 2, frames, measure_s, srv.pid,
                                      max_inflight=10**6))
    ok = [lv for lv in levels if lv["sustained"]]
    best = ok[-1] if ok else levels[0]
    import os

    cost = _pipeline_cost(frames)
    return {"streams_sustained": best["streams"] if ok else 0, "p50_ms": best["p50_ms"], "p95_ms": best["p95_ms"],
            "dropped_per_stream": [c["dropped_in"] + c["dropped_out"] for c in best["per_stream"]],
            "overload": overload,
            "processing_p50_ms": best["processing_p50_ms"],
            "cpu_ms_per_frame": cost, "cores": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2), "preset": PRESET, "max_faces": MAX_FACES,
            "size": "640x480", "fps": FPS,
            "levels": levels,
            "target": {"streams": 4, "p95_ms": 40},
            "target_met": bool(ok) and best["streams"] >= 4 and best["p95_ms"] <= 40,
            "server": "facestage serve in its own process on 127.0.0.1:0, real WebSocket clients"}
