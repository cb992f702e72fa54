"""Resume by session id on the single-process server (the same path a cluster replica runs, with the
in-process checkpoint store): a dropped client comes back with its face ids, its avatar clock and
calibration; checkpoints are re-validated and bound to the credential that wrote them."""

from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.client import Client, ServerError
from facestage.serving import ServerThread
from facestage.serving.security import SecurityConfig
from facestage.tracking.tracker import ID_GRACE_FRAMES

OPERATOR = "fso_test-operator-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # not trusting local requests: sessions are keyed, so credentials decide who may resume what
    sec = SecurityConfig(operator_key=OPERATOR, trust_local=False, open_media=True)
    with ServerThread(db_path=tmp_path_factory.mktemp("resume") / "p.sqlite3", security=sec) as srv:
        yield srv


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(testdata.astronaut(), (256, 256))


def test_a_dropped_effects_session_resumes_with_its_face_ids(server, face):
    async def main() -> None:
        async with Client.connect(server.ws_url) as c:
            started = await c.start("effects", preset="natural", faces=True, max_faces=1)
            # lost for longer than the tracker's id grace and found again: id 1, not 0
            gone = [np.zeros_like(face)] * (ID_GRACE_FRAMES + 2)
            for img in [face] * 3 + gone + [face] * 4:
                _, faces = await c.process(img)
            ids = [f["id"] for f in faces]
            assert ids and ids[0] != 0
            await c.ws.close()  # the network drops: the server closes the session and keeps its checkpoint
            _, faces = await c.process(face)  # the client reconnects, resumes, sends the frame again
            assert c.resumes and c.session["session_id"] == started["session_id"]
            assert [f["id"] for f in faces] == ids
            assert c.session["effects"] == started["effects"]  # the chain came back from the checkpoint

    asyncio.run(main())


def test_an_avatar_resume_keeps_calibration_and_clock(server, face):
    async def main() -> None:
        async with Client.connect(server.ws_url) as c:
            await c.start("avatar", size=64)
            await c.process(face)
            await c.config(calibrate=True)
            await c.process(face)
            await asyncio.sleep(0.5)
            before = await c.checkpoint()
            assert before["calibration"] and before["clock_s"] > 0.4
            await c.ws.close()
            after = await c.checkpoint()
            assert c.resumes
            assert after["calibration"] == before["calibration"]
            assert after["clock_s"] >= before["clock_s"]  # the idle motion goes on, it does not restart

    asyncio.run(main())


def test_stored_checkpoints_belong_to_their_credential_and_are_validated(server, face):
    async def main() -> None:
        async with Client.connect(server.ws_url) as c:
            started = await c.start("effects", key=OPERATOR)
            await c.process(face)
        async with Client.connect(server.ws_url, reconnect=False) as c:
            with pytest.raises(ServerError, match="another credential"):  # an open session cannot take it
                await c.start("effects", resume={"session_id": started["session_id"]})
            with pytest.raises(ServerError, match="no_checkpoint"):
                await c.start("effects", resume={"session_id": "0123456789ab"})
            with pytest.raises(ServerError, match="bad_state"):
                await c.start("effects", resume={"session_id": "../etc"})
            resumed = await c.start("effects", key=OPERATOR, resume={"session_id": started["session_id"]})
            assert resumed["session_id"] == started["session_id"]
            # a forged tracker state is refused by the tracker, on the frame, and the session goes on
            state = await c.checkpoint()
            state["tracker"] = {"version": 1, "next_id": "x"}
            await c.start("effects", key=OPERATOR, resume=state)
            await c.send_frame(face)
            msg = await c.recv()
            while not (isinstance(msg, dict) and msg.get("type") == "error"):
                msg = await c.recv()
            assert msg["code"] == "bad_input" and "FaceTracker" in msg["message"]
            _, faces = await c.process(face)
            assert isinstance(faces, list)
            with pytest.raises(ServerError, match="bad_state"):
                await c.start("effects", resume={**state, "clock_s": -1})

    asyncio.run(main())


def test_watch_subscription_comes_back_with_the_session(server, face):
    async def main() -> None:
        async with Client.connect(server.ws_url) as w, Client.connect(server.ws_url) as p:
            await w.start("watch", channel="studio")
            await p.start("effects", channel="studio", max_faces=1)
            await w.ws.close()
            await w.ping()  # reconnects and resumes the watch session on its channel
            assert w.resumes and w.session["channel"] == "studio"
            await p.process(face)
            frame = await w.next_frame(timeout=10)
            assert frame[0].payload[:3] == b"\xff\xd8\xff"

    asyncio.run(main())


def test_checkpoint_json_is_plain(server):
    async def main() -> None:
        async with Client.connect(server.ws_url) as c:
            await c.start("render")
            state = await c.checkpoint()
            assert json.loads(json.dumps(state)) == state and {"tracker", "clock_s"} <= set(state)

    asyncio.run(main())
