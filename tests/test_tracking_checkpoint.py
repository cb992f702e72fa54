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
