"""``facestage bench tracking``: raw MediaPipe face mesh vs the full FaceTracker at 1280x720.

Both run in tracking mode with 478 landmarks (refine) and the same ``max_faces`` on the zoompan
clip of a real photo, interleaved frame by frame in one run (alternating which goes first) so load
from other processes hits both alike; ``ratio`` is the median of the per-frame ratios. The
tracker's time includes everything it adds: landmark decoding, plausibility checks, rigid pose fit,
52 blendshapes, the tongue estimate, One-Euro filters, ids and the periodic long-range detection
for small faces. Reported: medians in ms per frame and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from .stats import summary


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import cv2
    import mediapipe as mp

    from .. import testdata
    from ..tracking import FaceTracker

    n = int(getattr(args, "frames", None) or 150)
    max_faces = int(getattr(args, "max_faces", None) or 4)
    clip = testdata.zoompan_clip(size=(1280, 720), frames=min(n, 60))
    frames = [clip[i % len(clip)] if (i // len(clip)) % 2 == 0 else clip[len(clip) - 1 - i % len(clip)]
              for i in range(n)]  # ping-pong so the motion stays continuous
    raw = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=max_faces, refine_landmarks=True,
                                          min_detection_confidence=0.5, min_tracking_confidence=0.5)
    tracker = FaceTracker(max_faces=max_faces)
    raw_ms: list[float] = []
    trk_ms: list[float] = []
    found = 0
    warmup = 5
    try:
        for i, frame in enumerate(frames):
            # Alternate which of the two runs first: the second one in a pair finds the CPU caches
            # holding the other graph's data, which otherwise biases the ratio.
            order = ("raw", "tracker") if i % 2 == 0 else ("tracker", "raw")
            for which in order:
                t0 = time.perf_counter()
                if which == "raw":
                    res = raw.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))  # what any caller must do first
                    del res
                else:
                    faces = tracker.track(frame, i / 30.0)
                elapsed = (time.perf_counter() - t0) * 1000
                if i >= warmup:
                    (raw_ms if which == "raw" else trk_ms).append(elapsed)
            if i >= warmup:
                found += len(faces)
    finally:
        raw.close()
        tracker.close()
    raw_med = statistics.median(raw_ms)
    trk_med = statistics.median(trk_ms)
    # Each frame's two runs happen back to back, so a load burst from another process mostly hits
    # both: the median of the per-frame ratios is far steadier on a shared machine than the ratio
    # of the two medians (which is reported too).
    ratios = [t / r for t, r in zip(trk_ms, raw_ms, strict=True)]
    paired = statistics.median(ratios)
    return {
        "mediapipe_raw_ms": round(raw_med, 3),
        "tracker_ms": round(trk_med, 3),
        "ratio": round(paired, 3),
        "ratio_of_medians": round(trk_med / raw_med, 3),
        "overhead_ms": round(trk_med - raw_med, 3),
        "frames": len(trk_ms),
        # median with p10/p90 of every per-frame figure (ms; the ratio is unitless)
        "mediapipe_raw": summary(raw_ms, 3),
        "tracker": summary(trk_ms, 3),
        "ratio_per_frame": summary(ratios, 3),
        "timing": "wall clock per frame, raw and tracker interleaved in one run",
        "size": [1280, 720],
        "max_faces": max_faces,
        "faces_per_frame": round(found / max(len(trk_ms), 1), 3),
        "target_ratio": 1.3,
    }
