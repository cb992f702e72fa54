"""The TTS worker pool under real employee sessions: concurrent replies synthesise in parallel, and a worker
killed mid-reply is replaced without losing the reply. Real server on 127.0.0.1, real Kokoro/piper workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request

import pytest

from facestage.client import Client, Frame
from facestage.serving import ServerThread
from facestage.speech import SpeechError, TTSClient, WorkerPool


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(db_path=tmp_path_factory.mktemp("pool") / "profiles.sqlite3") as srv:
        srv.app.engine.tts.warmup(("en", "zh"))  # every worker loads its voices now, not during the test
        yield srv


def _demo(server) -> dict:
    with urllib.request.urlopen(server.url + "/v1/demo", timeout=60) as r:
        return json.loads(r.read())


async def _ask(server, demo: dict, question: str, on_audio=None) -> dict:
    """Ask one question in its own employee session; the reply's control messages and audio byte count."""
    async with Client.connect(server.ws_url) as c:
        await c.start("employee", brand=demo["brand"], key=demo["key"], frames=False)
        await c.send({"type": "say", "text": question})
        out: dict = {"audio": [], "pcm_bytes": 0, "errors": [], "end": None}
        while out["end"] is None:
            msg = await c.recv(120)
            if isinstance(msg, Frame):
                out["pcm_bytes"] += len(msg.payload)
            elif msg.get("type") == "audio":
                out["audio"].append(msg)
                if on_audio is not None:
                    on_audio(msg)
            elif msg.get("type") == "error":
                out["errors"].append(msg)
                break
            elif msg.get("type") == "reply_end":
                out["end"] = msg
        return out


def test_two_employees_talking_at_once_synthesise_in_parallel(server):
    demo = _demo(server)
    assert len(server.app.engine.tts.backend.workers) >= 2, "the pool is sized to the machine, at least 2"

    async def main():
        return await asyncio.gather(_ask(server, demo, "你们门店的营业时间是几点？"),
                                    _ask(server, demo, "配送费是多少钱？"))

    a, b = asyncio.run(main())
    for r in (a, b):
        assert not r["errors"] and r["end"] and len(r["audio"]) >= 2, r
        assert {m["engine"] for m in r["audio"]} == {"kokoro:zf_xiaobei"}
    # Each reply was made by one worker, and not the same one: neither queued behind the other.
    workers_a, workers_b = {m["worker"] for m in a["audio"]}, {m["worker"] for m in b["audio"]}
    assert len(workers_a) == len(workers_b) == 1 and workers_a != workers_b
    # Their synthesis intervals (wall clock, reported by the workers) overlap.
    span_a = (a["audio"][0]["synth_at"][0], a["audio"][-1]["synth_at"][1])
    span_b = (b["audio"][0]["synth_at"][0], b["audio"][-1]["synth_at"][1])
    overlap = min(span_a[1], span_b[1]) - max(span_a[0], span_b[0])
    assert overlap > 0, (span_a, span_b)
    # ... and each one's first chunk was made before the other's last: interleaved, not queued
    assert b["audio"][0]["synth_at"][1] < a["audio"][-1]["synth_at"][1], (span_a, span_b)
    assert a["audio"][0]["synth_at"][1] < b["audio"][-1]["synth_at"][1], (span_a, span_b)


def test_a_worker_killed_mid_reply_is_replaced_and_the_reply_continues(server):
    demo = _demo(server)
    pool = server.app.engine.tts.backend
    restarts = pool.restarts
    killed: list[int] = []

    def kill_first(msg: dict) -> None:
        if not killed:
            killed.append(msg["worker"])
            os.kill(msg["worker"], signal.SIGKILL)

    # the pasteurisation answer: four clauses, so three are still to come when the first one's worker dies
    r = asyncio.run(_ask(server, demo, "你们的牛奶是巴氏杀菌的吗？", on_audio=kill_first))
    assert not r["errors"], r["errors"]
    texts = [m["text"] for m in r["audio"]]
    assert texts == ["是的，", "我们采用72度15秒的低温巴氏杀菌，", "既保留新鲜口感又确保安全；",
                     "我们不卖生奶。"], texts
    assert pool.restarts == restarts + 1
    assert killed[0] not in {m["worker"] for m in r["audio"][1:]}, "the rest came from a new process"
    assert r["end"]["chunks"] == 4 and r["pcm_bytes"] > 0


def test_a_worker_that_cannot_start_fails_with_a_clear_message():
    with TTSClient(backend=WorkerPool(1, python="/bin/false")) as tts, \
            pytest.raises(SpeechError, match="crashed twice while speaking 'Hello.'"):
        list(tts.synthesize("Hello."))
