"""Robustness of a real server process: connection churn, a client that stops reading, kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request

import cv2
import pytest
import websockets

from facestage import testdata
from facestage.serving import Kind, pack_frame
from facestage.serving.process import ServerProcess

WS = "/v1/ws"


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("proc") / "p.sqlite3")
    yield srv
    srv.stop()


def test_thousand_connect_disconnect_cycles_leak_nothing(proc):
    img = cv2.imencode(".jpg", testdata.astronaut())[1].tobytes()

    async def cycles(n: int) -> None:
        for i in range(n):
            async with websockets.connect(f"ws://127.0.0.1:{proc.port}{WS}") as ws:
                await ws.recv()  # hello
                if i % 2:  # half of them open a session too, then vanish without a goodbye
                    await ws.send(json.dumps({"type": "start", "session": "effects", "options": {}}))
                    await ws.recv()
                if i % 50 == 1:  # and some process a frame: a face tracker is created and must be freed
                    await ws.send(pack_frame(Kind.JPEG, 1, 0.0, img))
                    while not isinstance(await ws.recv(), bytes):
                        pass

    asyncio.run(cycles(100))  # warm-up: lazy imports, thread pools
    before = proc.health()
    t0 = time.perf_counter()
    asyncio.run(cycles(1000))
    elapsed = time.perf_counter() - t0
    time.sleep(0.5)
    after = proc.health()
    print(f"1000 cycles in {elapsed:.1f} s; rss {before['rss_kb']} -> {after['rss_kb']} kB; "
          f"threads {before['threads']} -> {after['threads']}")
    assert after["threads"] == before["threads"]
    assert after["sessions"] == 0 and after["connections"] == 0
    # what the server keeps on purpose: each vanished session's checkpoint, for a resume (bounded in count,
    # bytes and time); everything else must be freed
    kept = after["checkpoint_kb"] - before["checkpoint_kb"]
    assert 0 < kept < 64 * 1024
    assert after["rss_kb"] - before["rss_kb"] - kept < 8 * 1024


def test_a_client_that_stops_reading_does_not_grow_server_memory(proc):
    img = cv2.imencode(".jpg", testdata.zoompan_clip(size=(640, 480), frames=1)[0])[1].tobytes()

    async def flood(frames: int) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{proc.port}{WS}", max_queue=1) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "start", "session": "effects", "options": {"quality": 100}}))
            await ws.recv()
            await ws.send(pack_frame(Kind.JPEG, 0, time.time() * 1000, img))
            while not isinstance(await ws.recv(), bytes):  # the session's tracker is loaded now
                pass
            # From here on we never read: replies pile up in the kernel buffers, then the server drops them.
            for i in range(1, frames):
                await ws.send(pack_frame(Kind.JPEG, i, time.time() * 1000, img))
                await asyncio.sleep(0.005)
                if i == 200:
                    rss.append(proc.health()["rss_kb"])
            health = proc.health()
            rss.append(health["rss_kb"])
            assert health["frames_dropped"] > 100  # stale input and unsendable output were dropped, not queued

    rss: list[int] = []
    asyncio.run(flood(600))
    print(f"server rss while the client does not read: {rss[0]} -> {rss[1]} kB")
    assert rss[1] - rss[0] < 16 * 1024
    health = proc.health()  # still serving others
    assert health["ok"] and health["connections"] == 0


def test_kill_9_then_restart_keeps_every_profile(tmp_path):
    db = tmp_path / "p.sqlite3"
    srv = ServerProcess(db)
    keys = {}
    try:
        for i in range(4):
            body = json.dumps({"id": f"shop-{i}", "name": f"N{i}", "role": "r", "company": f"C{i}",
                               "persona": "p"}).encode()
            req = urllib.request.Request(srv.url + "/v1/brands", body, {"Content-Type": "application/json"})
            keys[f"shop-{i}"] = json.loads(urllib.request.urlopen(req, timeout=30).read())["key"]
        req = urllib.request.Request(srv.url + "/v1/brands/shop-2", json.dumps({"name": "Changed"}).encode(),
                                     {"Authorization": f"Bearer {keys['shop-2']}"}, method="PUT")
        urllib.request.urlopen(req, timeout=30).read()
    finally:
        srv.stop(signal.SIGKILL)  # no chance to flush or close anything
    again = ServerProcess(db)
    try:
        for brand, key in keys.items():
            req = urllib.request.Request(f"{again.url}/v1/brands/{brand}", headers={"Authorization": f"Bearer {key}"})
            profile = json.loads(urllib.request.urlopen(req, timeout=30).read())["profile"]
            assert profile["name"] == ("Changed" if brand == "shop-2" else f"N{brand[-1]}")
        req = urllib.request.Request(f"{again.url}/v1/brands/shop-1",
                                     headers={"Authorization": f"Bearer {keys['shop-0']}"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=30)
        assert exc.value.code == 403  # a wrong key is refused after the restart too
        demo = json.loads(urllib.request.urlopen(again.url + "/v1/demo", timeout=30).read())
        assert demo["brand"] == "demo" and demo["key"].startswith("fs_")
    finally:
        again.stop()


def test_serve_command_reports_bad_ports_clearly(tmp_path):
    import socket
    import subprocess
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        for port, words in ((99999, "--port must be 0..65535"), (taken.getsockname()[1], "address already in use")):
            r = subprocess.run([sys.executable, "-m", "facestage", "serve", "--port", str(port), "--db",
                                str(tmp_path / "p.sqlite3")], capture_output=True, text=True, timeout=60)
            assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    finally:
        taken.close()
