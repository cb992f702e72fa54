"""``facestage bench avatar``: per-frame cost at 512x512 of rig solve + deform + render + JPEG for each
built-in and the photo avatar on moderngl, and the same scene on pyrender in the same run."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .stats import summary

SIZE = 512


def _animated_face(i: int):
    """A tracker-shaped Face whose expression changes every frame (so every frame re-deforms)."""
    from ..tracking import ARKIT_NAMES, Face, HeadPose

    bs = dict.fromkeys(ARKIT_NAMES, 0.0)
    bs["jawOpen"] = 0.5 + 0.5 * np.sin(i * 0.4)
    bs["mouthSmileLeft"] = bs["mouthSmileRight"] = 0.3 + 0.3 * np.sin(i * 0.13)
    bs["eyeBlinkLeft"] = bs["eyeBlinkRight"] = float(i % 12 == 0)
    bs["browInnerUp"] = 0.4 + 0.4 * np.sin(i * 0.21)
    pose = HeadPose(yaw=12 * np.sin(i * 0.1), pitch=6 * np.sin(i * 0.07), roll=3 * np.sin(i * 0.05))
    return Face(id=0, landmarks=np.zeros((478, 3), np.float32), confidence=1.0, bbox=(0, 0, 1, 1), pose=pose,
                blendshapes=bs)


def _time_frames(rt, avatar, frames: int, jpeg: bool = True) -> dict[str, dict]:
    """Summaries (median, p10, p90 …) in ms of ``whole`` (the whole frame, wall), ``render`` (the render call
    alone, wall) and ``cpu`` (process CPU time of the whole frame: all threads, llvmpipe's included, so it
    is less sensitive to other load than wall time)."""
    import cv2

    from ..avatar.rig import Rig

    rig = Rig(avatar)
    faces = [_animated_face(i) for i in range(frames + 3)]
    whole, render, cpu = [], [], []
    bgr = None
    for i, face in enumerate(faces):
        c0 = time.process_time()
        t0 = time.perf_counter()
        state = rig.frame(i / 30, face=face)
        t1 = time.perf_counter()
        rgba = rt.render(avatar, state, size=SIZE)
        t2 = time.perf_counter()
        if jpeg:
            # cvtColor into a reused contiguous BGR buffer: a strided rgba[:, :, 2::-1] view costs the
            # encoder ~3x more (measured 3.5 ms vs 1.0 ms at 512²).
            bgr = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR, dst=bgr)
            cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
        t3 = time.perf_counter()
        c3 = time.process_time()
        if i >= 3:  # warm-up: buffer creation, shader compile
            whole.append((t3 - t0) * 1000)
            cpu.append((c3 - c0) * 1000)
            render.append((t2 - t1) * 1000)
    return {"whole": summary(whole), "render": summary(render), "cpu": summary(cpu)}


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..avatar import load_avatar
    from ..avatar.builtin import BUILTIN_SPECS
    from ..rendering import RenderThread

    frames = int(getattr(args, "frames", None) or 30)
    names = [*BUILTIN_SPECS, "photo:astronaut"]
    avatars = {n: load_avatar(n) for n in names}
    lod = getattr(args, "lod", None) or os.environ.get("FACESTAGE_BENCH_LOD") or "realtime"
    out: dict = {"timing": "per frame: frame_wall wall clock of solve+deform+render+JPEG, cpu_ms process "
                           "CPU time (llvmpipe threads included), render_ms the render call alone",
                 "size": SIZE, "frames": frames, "msaa": 0, "lod": lod, "frame_wall": {}, "cpu_ms": {},
                 "lp_num_threads": os.environ.get("LP_NUM_THREADS")}
    rt = RenderThread(size=SIZE, msaa=0, lod=lod)
    try:
        out["gl_renderer"] = rt.info().get("renderer")
        for n, av in avatars.items():
            t = _time_frames(rt, av, frames)
            out["frame_wall"][n] = t["whole"]
            out["cpu_ms"][n] = t["cpu"]["median"]
        out["render_ms"] = _time_frames(rt, avatars["ava"], frames, jpeg=False)["render"]["median"]
    finally:
        rt.close()
    try:
        pr = RenderThread(size=SIZE, backend="pyrender")
        try:
            out["pyrender_ms"] = _time_frames(pr, avatars["ava"], max(5, frames // 3), jpeg=False)["render"]["median"]
        finally:
            pr.close()
        out["pyrender_ratio"] = round(out["render_ms"] / out["pyrender_ms"], 3)
    except Exception as exc:  # noqa: BLE001 - report, don't hide, a broken pyrender
        out["pyrender_ms"] = None
        out["pyrender_ratio"] = None
        out["pyrender_error"] = f"{type(exc).__name__}: {exc}"
    out["triangles"] = {n: av.triangle_count for n, av in avatars.items()}
    out["antialiasing"] = "fxaa"  # msaa=0 → the FXAA pass: every measured frame is anti-aliased
    return out
