"""``facestage effects`` on video: the one EffectsPipeline with the container's real frame timestamps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata

FPS = 60.0


@pytest.fixture(scope="module")
def clip60(tmp_path_factory) -> Path:
    """A real talking-head clip re-timed to 60 fps (carphone, scaled ×2 so the face is well inside the mesh's range)."""
    frames = [cv2.resize(f, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR) for f in testdata.carphone_frames(24)]
    path = tmp_path_factory.mktemp("fx60") / "talk60.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_cli_video_smooths_with_the_containers_timestamps(clip60, tmp_path):
    from facestage.commands.effects import build_config, process_video
    from facestage.effects import EffectChain
    from facestage.mediaio import open_source

    seen = {}
    out = tmp_path / "out.mp4"
    process_video(open_source(str(clip60)), clip60, out, EffectChain(build_config("natural", None, [])), 1,
                  on_pipeline=lambda flow: seen.setdefault("flow", flow))
    flow = seen["flow"]
    ts = np.array(flow.timestamps)
    assert len(ts) == 24 and ts[0] == 0.0
    # Every step is the clip's real 1/60 s, not the 1/30 s a frame counter would assume.
    np.testing.assert_allclose(np.diff(ts), 1.0 / FPS, atol=1e-4)
    # The One-Euro filters ran on that clock: the face's filter last saw the last frame's timestamp.
    tracker = flow.tracker
    state = tracker.checkpoint()
    assert state["filters"], "the face was tracked and smoothed"
    for f in state["filters"].values():
        assert f["t"] == pytest.approx(ts[-1], abs=1e-6)
    assert state["clock"]["last_t"] == pytest.approx(ts[-1], abs=1e-6)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    cap.release()


def test_cli_video_end_to_end_process(clip60, tmp_path):
    """The real command in its own process writes every frame at the input's frame rate."""
    out = tmp_path / "cli.mp4"
    proc = subprocess.run([sys.executable, "-m", "facestage", "effects", str(clip60), "--preset", "natural",
                           "-o", str(out), "--max-faces", "1"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS, abs=0.1)
    cap.release()
