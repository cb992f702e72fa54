"""Faces with effects of their own: in a group scene each tracked face id keeps its look from frame to frame,
frame-wide effects stay on the chain, and bad per-face configs are refused whole (chain and over the server)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from group_scene import group_photo

from facestage.effects import EffectChain
from facestage.effects.regions import LIPS_OUTER
from facestage.errors import ConfigError
from facestage.tracking import FaceTracker

RED_LIPS = {"makeup": {"lipstick": 1.0, "lipstick_color": "#e0102a"}}
BLUE_LIPS = {"makeup": {"lipstick": 1.0, "lipstick_color": "#1030e0"}}


def _lip_shift(out: np.ndarray, src: np.ndarray, face) -> np.ndarray:
    """Mean BGR change over the face's lip landmarks' bounding box."""
    pts = face.landmarks[list(LIPS_OUTER), :2].astype(int)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0) + 1
    return (out[y0:y1, x0:x1].astype(float) - src[y0:y1, x0:x1]).reshape(-1, 3).mean(0)


def test_group_faces_keep_their_own_effects_over_frames():
    frames = [group_photo(3 * np.sin(i / 3), 2 * np.cos(i / 4))[0] for i in range(8)]
    chain = EffectChain(RED_LIPS)
    with FaceTracker(max_faces=8) as tracker:
        first = tracker.track(frames[0], 0.0)
        assert len(first) >= 5
        blue = sorted(f.id for f in first)[:2]  # two people get their own look
        chain.set_face_configs({fid: BLUE_LIPS for fid in blue})
        for i, frame in enumerate(frames[1:], start=1):
            faces = tracker.track(frame, i / 30)
            out = chain.apply(frame, faces)
            for face in faces:
                b, _, r = _lip_shift(out, frame, face)
                if face.id in blue:
                    assert b > r + 5, (face.id, b, r)  # blue lipstick on these faces
                else:
                    assert r > b + 5, (face.id, b, r)  # the chain's red on everyone else


def test_frame_wide_effects_stay_on_the_chain_and_bad_configs_change_nothing():
    chain = EffectChain(RED_LIPS)
    chain.set_face_configs({3: BLUE_LIPS})
    with pytest.raises(ConfigError, match="whole frame"):
        chain.set_face_configs({1: {"lut": {"lut": "warm"}}})
    with pytest.raises(ConfigError):
        chain.set_face_configs({1: {"makeup": {"lipstick": 7}}})
    with pytest.raises(ConfigError):
        chain.set_face_configs({"x": BLUE_LIPS})
    assert list(chain.face_configs) == [3]  # refused whole: the earlier per-face chain is still there
    chain.set_face_configs({1: {"lut": {"lut": "warm", "region": "skin"}}})  # skin grading is per face
    assert list(chain.face_configs) == [1]


def test_face_effects_over_the_server(tmp_path):
    from facestage.client import Client, ServerError
    from facestage.serving import ServerThread

    img = group_photo()[0]

    async def main(url: str) -> None:
        async with Client.connect(url) as c:
            await c.start("effects", effects=RED_LIPS, faces=True, max_faces=4)
            out0, faces = await c.process(img)
            assert len(faces) >= 2
            fid = faces[0]["id"]
            await c.config(face_effects={str(fid): BLUE_LIPS})
            out1, faces1 = await c.process(img)
            assert fid in [f["id"] for f in faces1]
            x0, y0, x1, y1 = (int(v) for v in next(f for f in faces1 if f["id"] == fid)["bbox"])
            lower = slice(y0 + (y1 - y0) * 2 // 3, y1), slice(x0, x1)  # the mouth's part of the face box
            d = out1[lower].astype(float).reshape(-1, 3).mean(0) - out0[lower].astype(float).reshape(-1, 3).mean(0)
            assert d[0] > 1 and d[2] < -1, d  # that face's lips went from red to blue
            kept = (await c.checkpoint())["options"]["face_effects"]  # travels with the session's checkpoint
            assert list(kept) == [str(fid)] and kept[str(fid)]["makeup"]["lipstick_color"] == "#1030e0"
            for bad, code in (({"1": {"background": {"mode": "blur"}}}, "bad_config"),
                              ({"one": BLUE_LIPS}, "bad_field"), ([1, 2], "bad_field")):
                with pytest.raises(ServerError) as err:
                    await c.config(face_effects=bad)
                assert err.value.code == code, (bad, err.value)
            out2, _ = await c.process(img)  # the refused configs changed nothing
            assert np.abs(out2.astype(int) - out1).mean() < 1.0

    with ServerThread(db_path=tmp_path / "p.sqlite3") as srv:
        asyncio.run(main(srv.ws_url))
