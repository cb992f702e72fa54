"""EffectsPipeline: one flow (decode → track → chain → encode) with the edges injected and timestamps carried."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects import EffectChain, load_preset
from facestage.effects_pipeline import EffectsPipeline, jpeg_codec
from facestage.errors import InputError
from facestage.serving.protocol import ProtocolError
from facestage.tracking import FaceTracker


@pytest.fixture(scope="module")
def flow():
    decode, encode = jpeg_codec(90)
    with FaceTracker(max_faces=1) as tracker:
        yield EffectsPipeline(tracker, EffectChain.from_config(load_preset("natural")), decode, encode)


def test_jpeg_in_jpeg_out_with_faces_timings_and_the_stream_clock(flow):
    frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in testdata.zoompan_clip(size=(640, 480), frames=6)]
    results = list(flow.run((data, 0.5 + i / 12) for i, data in enumerate(frames)))  # a 12 fps stream
    assert [r.seq for r in results] == list(range(6))
    np.testing.assert_allclose(np.diff(list(flow.timestamps)[-6:]), 1 / 12)
    last = results[-1]
    assert last.size == (640, 480) and len(last.faces) == 1 and last.faces[0].id == 0
    out = cv2.imdecode(np.frombuffer(last.data, np.uint8), cv2.IMREAD_COLOR)
    src = cv2.imdecode(np.frombuffer(frames[-1], np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == src.shape and np.abs(out.astype(int) - src).mean() > 0.2  # the chain changed the face
    assert set(last.timings_ms) == {"decode", "track", "effects", "encode"}
    assert all(v >= 0 for v in last.timings_ms.values()) and last.timings_ms["track"] > 0
    assert flow.tracker.checkpoint()["clock"]["last_t"] == pytest.approx(0.5 + 5 / 12)


def test_effects_off_passes_the_decoded_frame_through(flow):
    data = cv2.imencode(".jpg", testdata.grace_hopper())[1].tobytes()
    res = flow.process(data, 10.0, effects=False)
    assert np.array_equal(res.image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_bad_inputs_get_clear_errors(flow):
    with pytest.raises(ProtocolError, match="not a JPEG"):
        flow.process(b"GIF89a....", 11.0)
    with pytest.raises(InputError, match="timestamp"):
        flow.process(cv2.imencode(".jpg", testdata.grace_hopper())[1].tobytes(), float("nan"))
