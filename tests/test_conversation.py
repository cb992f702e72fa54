"""Duplex voice with a real server: microphone-like PCM16 streamed in real time, server VAD, live partial
text, the answer at the end of speech, barge-in and stop keeping what was actually said, lip sync through
the rig. The questions are spoken by our own TTS (Kokoro for Mandarin, piper for English)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import numpy as np
import pytest

from facestage.avatar.rig import Rig
from facestage.client import Client, Frame
from facestage.serving import ServerThread
from facestage.serving.employee_session import spoken_text
from facestage.speech import TTSClient

RATE = 24000
CHUNK_S = 0.085  # what a ScriptProcessor of 4096 samples at 48 kHz delivers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(db_path=tmp_path_factory.mktemp("conv") / "profiles.sqlite3") as srv:
        srv.app.engine.tts.warmup(("en", "zh"))
        yield srv


@pytest.fixture(scope="module")
def demo(server) -> dict:
    with urllib.request.urlopen(server.url + "/v1/demo", timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def questions(server) -> dict[str, np.ndarray]:
    """Spoken questions at 24 kHz with 0.5 s of silence before and 1 s after (the end-of-speech pause)."""
    out = {}
    texts = {"hours": "What are your opening hours?", "price": "一升全脂牛奶多少钱？",
             "fee": "How much is the delivery fee?"}
    with TTSClient() as tts:
        for name, text in texts.items():
            utt = tts.synthesize_all(text)
            audio = np.interp(np.arange(0, len(utt.audio), utt.sample_rate / RATE), np.arange(len(utt.audio)),
                              utt.audio).astype(np.int16)
            out[name] = np.concatenate([np.zeros(RATE // 2, np.int16), audio, np.zeros(RATE, np.int16)])
    return out


async def _stream(c: Client, audio: np.ndarray, realtime: bool = True) -> None:
    step = int(CHUNK_S * RATE)
    for i, off in enumerate(range(0, len(audio), step)):
        await c.ws.send(_pcm_frame(audio[off : off + step], i))
        if realtime:
            await asyncio.sleep(CHUNK_S)


def _pcm_frame(pcm: np.ndarray, seq: int) -> bytes:
    from facestage.serving import Kind, pack_frame

    return pack_frame(Kind.PCM16, seq, 0, pcm.astype("<i2").tobytes())


async def _messages(c: Client, log: list, until, timeout: float = 90.0) -> None:
    """Collect (arrival time, message) until ``until(msg)`` is true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = await c.recv(max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            seen = [m.get("type") if isinstance(m, dict) else "frame" for _, m in log]
            raise AssertionError(f"timed out; received {seen}") from None
        log.append((time.monotonic(), msg))
        if until(msg):
            return


def _is(kind: str):
    return lambda m: isinstance(m, dict) and m.get("type") == kind


def test_streamed_question_gets_partial_text_then_an_answer(server, demo, questions):
    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("employee", brand=demo["brand"], key=demo["key"], frames=False)
            await c.send({"type": "listen", "sample_rate": RATE, "mode": "stream"})
            assert (await c.expect("listening"))["mode"] == "stream"
            log: list = []
            sender = asyncio.create_task(_stream(c, questions["price"]))
            await _messages(c, log, _is("reply_end"))
            await sender
            await c.send({"type": "listen_end"})
            await c.expect("listen_stopped")
            return [m for _, m in log]

    msgs = asyncio.run(main())
    kinds = [m.get("type") if isinstance(m, dict) else "pcm" for m in msgs]
    assert kinds.index("speech_start") < kinds.index("heard") < kinds.index("reply"), kinds
    partials = [m["text"] for m in msgs if isinstance(m, dict) and m.get("type") == "partial"]
    assert partials, "live text while the customer speaks"
    assert kinds.index("partial") < kinds.index("heard")
    heard = next(m for m in msgs if isinstance(m, dict) and m.get("type") == "heard")
    assert heard["final"] and heard["language"] == "zh" and "牛奶" in heard["text"], heard
    # no voice after the pause: the speculative transcript was the final one (no second Whisper pass)
    assert heard["reused"] is True and heard["asr_ms"] >= 0, heard
    reply = " ".join(m["text"] for m in msgs if isinstance(m, dict) and m.get("type") == "reply")
    assert "2.5元" in reply, reply
    audio = [m for m in msgs if isinstance(m, dict) and m.get("type") == "audio"]
    assert audio and all(m["engine"].startswith("kokoro:") for m in audio)
    assert sum(isinstance(m, Frame) for m in msgs) == len(audio)


def test_barge_in_stops_the_reply_and_keeps_what_was_said(server, demo, questions):
    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("employee", brand=demo["brand"], key=demo["key"], frames=False)
            await c.send({"type": "listen", "sample_rate": RATE, "mode": "stream"})
            await c.expect("listening")
            log: list = []
            await _stream(c, questions["hours"])
            await _messages(c, log, _is("audio"))  # the answer has started
            first_reply = next(m for _, m in log if _is("audio")(m))["reply"]
            await asyncio.sleep(0.5)  # half a second of it is heard ...
            sender = asyncio.create_task(_stream(c, questions["fee"]))  # ... then the customer talks over it
            await _messages(c, log, lambda m: _is("reply_end")(m) and m["reply"] != first_reply)
            await sender
            state = await c.checkpoint()
            return log, first_reply, state

    log, first, state = asyncio.run(main())
    msgs = [m for _, m in log]
    i_start = max(i for i, m in enumerate(msgs) if _is("speech_start")(m))
    stopped = [(i, m) for i, m in enumerate(msgs) if _is("stopped")(m)]
    assert stopped and stopped[0][1]["reason"] == "barge_in" and stopped[0][1]["reply"] == first, stopped
    i_stop = stopped[0][0]
    assert i_stop > i_start
    # the server stopped at once: "stopped" came right after the speech onset (nothing of the old reply between)
    assert all(not (_is("audio")(m) and m["reply"] == first) for m in msgs[i_start:]), "old audio after onset"
    assert log[i_stop][0] - log[i_start][0] < 0.2, "stopped within 200 ms of the detected onset"
    played = stopped[0][1]["played_s"]
    assert 0.3 < played < 3.0, played
    # the new question was answered; the interrupted answer is remembered as far as it was heard
    heard = [m for m in msgs if _is("heard")(m)]
    assert "delivery" in heard[-1]["text"].lower(), heard
    turns = state["dialogue"]["turns"]
    assert turns[0]["content"] == "What are your opening hours?"
    full = "Our farm shops are open every day from 8 am to 8 pm, and until 6 pm on public holidays."
    said = turns[1]["content"]
    assert said.endswith(" …") and len(said) - 2 < len(full) and full.startswith(said[:-2][:10]), said
    assert said[:-2] == stopped[0][1]["spoken"]
    assert "delivery" in turns[2]["content"].lower() and not turns[3]["content"].endswith("…")


def test_stop_with_the_played_position_and_lip_sync_through_the_rig(server, demo, monkeypatch):
    calls = {"n": 0}
    speak = Rig.speak

    def counting_speak(self, visemes, t):  # a spy: the real method runs, we only count
        calls["n"] += 1
        return speak(self, visemes, t)

    monkeypatch.setattr(Rig, "speak", counting_speak)

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("employee", brand=demo["brand"], key=demo["key"], size=96, fps=20)
            await c.send({"type": "say", "text": "Do you have lactose-free milk?"})
            log: list = []
            await _messages(c, log, _is("audio"))
            await c.send({"type": "stop", "played_s": 0.8})
            await _messages(c, log, _is("stopped"))
            state = await c.checkpoint()
            await c.send({"type": "listen", "sample_rate": RATE, "mode": "stream"})
            await c.expect("listening")
            await c.ws.send(b"\x03" + b"\0" * 40)  # a broken frame: an error, the session survives
            err = await c.recv()
            await c.ws.send(_pcm_frame(np.zeros(101, np.int16), 0)[:-1])  # odd PCM length
            err2 = await c.recv()
            await c.send({"type": "listen", "sample_rate": RATE, "mode": "karaoke"})
            err3 = await c.recv()
            return log, state, err, err2, err3

    log, state, err, err2, err3 = asyncio.run(main())
    audio = next(m for _, m in log if _is("audio")(m))
    frames = [m for _, m in log if isinstance(m, Frame) and m.kind != 3]
    # every rendered frame's mouth came from Rig.speak, and the ARKit track matches it frame for frame
    assert calls["n"] >= len(audio["arkit"]) and len(audio["arkit"]) == round(audio["duration_s"] * 20)
    rig = Rig(None)
    from facestage.speech.visemes import viseme_weight_frames

    local = [rig.speak(w, i / 20).blendshapes for i, w in enumerate(
        viseme_weight_frames([(s, e, v) for s, e, v in audio["visemes"]], 20, audio["duration_s"]))]
    # (the timeline travels rounded to 0.1 ms, which can move a boundary by one 2 ms grid step of the
    # co-articulation filter, and the track to 0.001: hence a tolerance, and a correlation over the clip)
    for k in ("jawOpen", "mouthPucker", "mouthFunnel", "mouthStretchLeft", "mouthPressLeft"):
        a = np.array([f.get(k, 0.0) for f in audio["arkit"]])
        b = np.array([f.get(k, 0.0) for f in local])
        assert np.abs(a - b).max() < 0.05 and (a.std() == 0 or np.corrcoef(a, b)[0, 1] > 0.98), k
    assert frames, "lip-synced frames were rendered"
    stopped = next(m for _, m in log if _is("stopped")(m))
    assert stopped["reason"] == "stop" and stopped["played_s"] == 0.8
    sent = [(m["start_s"], m["duration_s"], m["text"]) for _, m in log if _is("audio")(m)]
    assert stopped["spoken"] == spoken_text(sent, 0.8) and stopped["spoken"]
    assert state["dialogue"]["turns"][-1]["content"] == stopped["spoken"] + " …"
    assert all(isinstance(e, dict) and e["type"] == "error" for e in (err, err2, err3)), (err, err2, err3)
    assert "karaoke" in err3["message"]
