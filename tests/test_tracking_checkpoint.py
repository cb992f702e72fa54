"""FaceTracker.checkpoint()/restore(): the API a session moved to another replica resumes from."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from facestage import testdata
from facestage.tracking import FaceTracker


@pytest.fixture(scope="module")
def run():
    """A tracker after 30 frames of a real talking-head clip, its checkpoint and its outputs so far."""
    frames = testdata.carphone_frames(limit=34)
    a = FaceTracker(max_faces=1)
    outs = [a.track(f, i / 30)[0] for i, f in enumerate(frames[:30])]
    snap = json.loads(json.dumps(a.checkpoint()))  # JSON-serialisable, and survives the round trip
    yield a, snap, outs, frames
    a.close()


def test_checkpoint_holds_ids_filters_rois_and_clock(run):
    _, snap, outs, _ = run
    assert snap["next_id"] == 1
    assert [f["id"] for f in snap["faces"]] == [0]
    roi = snap["faces"][0]["roi"]
    assert roi == pytest.approx(list(outs[-1].bbox))
    assert snap["filters"]["0"]["t"] == pytest.approx(29 / 30)
    assert snap["clock"] == {"frame_index": 30, "last_t": pytest.approx(29 / 30)}


def test_restored_tracker_keeps_ids_and_continues_smoothly(run):
    a, snap, outs, frames = run
    with FaceTracker(max_faces=1) as b, FaceTracker(max_faces=1) as fresh:
        b.restore(snap)
        for i in range(30, 34):
            fa, fb = a.track(frames[i], i / 30)[0], b.track(frames[i], i / 30)[0]
            ff = fresh.track(frames[i], i / 30)[0]
            assert fb.id == fa.id == 0
            # Same output as the tracker that never stopped (filter state carried over) ...
            assert np.abs(fa.landmarks - fb.landmarks)[:, :2].mean() < 1.0
            if i == 30:
                # ... so no jump from the last frame before the checkpoint: the step is the clip's own motion.
                step = np.abs(fb.landmarks - outs[-1].landmarks)[:, :2].mean()
                typical = np.mean([np.abs(outs[k].landmarks - outs[k - 1].landmarks)[:, :2].mean()
                                   for k in range(20, 30)])
                assert step < 2 * typical + 0.5, (step, typical)
                assert fresh.checkpoint()["filters"]["0"]["t"] == pytest.approx(1.0)  # a fresh one starts over
                del ff


@pytest.mark.parametrize("breakage", [
    lambda s: s["filters"]["0"].__setitem__("x", s["filters"]["0"]["x"][:-3]),   # wrong length
    lambda s: s["faces"][0].__setitem__("centre", [1.0, 2.0, 3.0]),              # wrong shape
    lambda s: s["faces"][0].__setitem__("roi", [0, 0, "x", 1]),                  # not numbers
    lambda s: s["faces"][0].__setitem__("id", 5),                                # id beyond next_id
    lambda s: s.pop("clock"),                                                    # missing field
    lambda s: s.__setitem__("version", 1),                                       # old/unknown version
    lambda s: s["neutrals"].__setitem__("0", [0.0] * 3),                         # wrong calibration size
])
def test_restore_refuses_bad_checkpoints_and_keeps_its_state(run, breakage):
    _, snap, _, frames = run
    bad = copy.deepcopy(snap)
    breakage(bad)
    with FaceTracker(max_faces=1) as b:
        b.track(frames[0], 0.0)
        before = b.checkpoint()
        with pytest.raises(ValueError):
            b.restore(bad)
        assert b.checkpoint() == before


def test_effects_session_moves_its_tracker_to_another_session():
    """The effects session's tracker checkpoint restores into a new session (another replica in the cluster)."""
    import asyncio

    import cv2

    from facestage.serving.base import Outbox
    from facestage.serving.effects_session import EffectsSession
    from facestage.serving.engine import Engine
    from facestage.serving.state import SessionState

    async def send(_: object) -> None:
        return None

    frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in testdata.carphone_frames(limit=12)]
    engine = Engine(None, workers=1)
    try:
        a, b = (EffectsSession(engine, Outbox(send, lambda: 0), SessionState("effects")) for _ in range(2))
        for s in (a, b):
            asyncio.run(s.start({"preset": "natural", "faces": True, "max_faces": 1}))
        assert a.checkpoint()["tracker"] is None
        for i, data in enumerate(frames[:10]):
            a._run(data, i / 30)
        a.capture_tracker()
        # what a replica writes to the shared store and the next one resumes from: plain JSON
        snap = json.loads(json.dumps(a.checkpoint()))
        b.state.tracker = snap["tracker"]  # as a resume loads it; restored on b's first frame
        _, faces_a, _ = a._run(frames[10], 10 / 30)
        _, faces_b, _ = b._run(frames[10], 10 / 30)
        assert [f["id"] for f in faces_a] == [f["id"] for f in faces_b] == [0]
        assert np.abs(np.subtract(faces_a[0]["bbox"], faces_b[0]["bbox"])).max() < 2.0
        c = EffectsSession(engine, Outbox(send, lambda: 0), SessionState("effects"))
        asyncio.run(c.start({"preset": "natural", "faces": True, "max_faces": 1}))
        c.state.tracker = {"version": 2}  # a forged checkpoint: refused on the first frame
        with pytest.raises(ValueError):
            c._run(frames[0], 0.0)
        asyncio.run(c.close())
        for s in (a, b):
            asyncio.run(s.close())
    finally:
        engine.close()
