"""Redis implementations of the shared-state interfaces: checkpoints, watch channels (pub/sub), per-client
session counters. Async clients are made lazily on first use, on the loop that uses them (a replica runs
its sessions on its own loop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..channels import Channels
from ..connection import ClientCounter
from .checkpoints import CHECKPOINT_TTL_S, StoredCheckpoint, decode, encode

if TYPE_CHECKING:
    from ..base import Outbox

log = logging.getLogger("facestage.cluster")
CKPT = "fs:ckpt:"
CHANNEL = "fs:ch:"
COUNTS = "fs:clients:"
TAG_BYTES = 8  # each published frame starts with the publisher's tag, so a replica skips its own frames
NUMSUB_EVERY_S = 0.5  # how often a publisher asks Redis whether any other replica watches a channel


class RedisCheckpoints:
    bytes = 0  # held by Redis (with its TTL), not in this process

    def __init__(self, url: str, ttl_s: float = CHECKPOINT_TTL_S) -> None:
        self.url, self.ttl_s = url, ttl_s
        self._r: Any = None

    def _client(self) -> Any:
        if self._r is None:
            import redis.asyncio as aioredis

            self._r = aioredis.from_url(self.url)
        return self._r

    async def put(self, session_id: str, scope: str, state: dict[str, Any]) -> None:
        await self._client().set(CKPT + session_id, encode(scope, state), ex=int(self.ttl_s))

    async def get(self, session_id: str) -> StoredCheckpoint | None:
        return decode(await self._client().get(CKPT + session_id))

    async def delete(self, session_id: str) -> None:
        await self._client().delete(CKPT + session_id)


class RedisChannels(Channels):
    """Local fan-out as in one process, plus Redis pub/sub between replicas: a watcher on replica A gets
    what a session on replica B publishes. Frames travel only while another replica subscribes."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.tag = uuid.uuid4().bytes[:TAG_BYTES]
        self._r: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task | None = None
        self._remote: dict[str, tuple[float, bool]] = {}  # channel → (checked at, others subscribe)

    def _client(self) -> Any:
        if self._r is None:
            import redis.asyncio as aioredis

            self._r = aioredis.from_url(self.url)
            self._pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        return self._r

    def watch(self, name: str, out: Outbox) -> None:
        first = name not in self._watchers
        super().watch(name, out)
        if first:
            asyncio.ensure_future(self._subscribe(name))

    def unwatch(self, name: str, out: Outbox) -> None:
        super().unwatch(name, out)
        if name not in self._watchers and self._pubsub is not None:
            asyncio.ensure_future(self._quietly(self._pubsub.unsubscribe(CHANNEL + name)))

    async def _subscribe(self, name: str) -> None:
        self._client()
        await self._pubsub.subscribe(CHANNEL + name)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except Exception as exc:  # noqa: BLE001 - Redis went away: say so, retry, never end sessions
                log.warning("watch channels: Redis read failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if msg is None:
                continue  # idle: the reader stays for the replica's life (one task, one connection)
            data = msg["data"]
            if not isinstance(data, bytes) or data[:TAG_BYTES] == self.tag:
                continue
            name = msg["channel"].decode()[len(CHANNEL):]
            await super().publish(name, data[TAG_BYTES:])

    async def publish(self, name: str | None, data: bytes) -> None:
        await super().publish(name, data)
        if name is None:
            return
        now = time.monotonic()
        checked = self._remote.get(name)
        if checked is None or now - checked[0] > NUMSUB_EVERY_S:
            with contextlib.suppress(Exception):
                (_, n), = await self._client().pubsub_numsub(CHANNEL + name)
                mine = 1 if name in self._watchers else 0
                checked = self._remote[name] = (now, n - mine > 0)
        if checked is not None and checked[1]:
            await self._quietly(self._client().publish(CHANNEL + name, self.tag + data))

    @staticmethod
    async def _quietly(aw: Any) -> None:
        try:
            await aw
        except Exception as exc:  # noqa: BLE001 - a lost frame to watchers elsewhere is not an error
            log.debug("watch channels: %s", exc)


class RedisClientCounter(ClientCounter):
    """Concurrent sessions per client across replicas. Each replica keeps its own count in a hash field
    (``fs:clients:CLIENT`` → replica → n) so a killed replica's sessions can be dropped by its id; the
    local counts (this replica's share) are :class:`ClientCounter`'s."""

    def __init__(self, client: Any, limit: int, replica: str | None = None) -> None:
        super().__init__(limit)
        self.r = client
        self.replica = replica or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def acquire(self, client: str) -> bool:
        total = sum(int(v) for v in self.r.hvals(COUNTS + client))
        if total >= self.limit or not super().acquire(client):
            return False
        self.r.hincrby(COUNTS + client, self.replica, 1)
        self.r.expire(COUNTS + client, 24 * 3600)
        return True

    def release(self, client: str) -> None:
        super().release(client)
        if self.r.hincrby(COUNTS + client, self.replica, -1) <= 0:
            self.r.hdel(COUNTS + client, self.replica)

    def forget_replicas(self, alive: set[str]) -> None:
        """Drop the counts of replicas that are gone (killed: they never released)."""
        for key in self.r.scan_iter(COUNTS + "*"):
            for field in self.r.hkeys(key):
                if field.decode() not in alive:
                    self.r.hdel(key, field)
