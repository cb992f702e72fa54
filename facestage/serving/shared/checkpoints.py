"""Session checkpoints by session id: the last state a live session wrote, for a client that reconnects
(to this process or, in a cluster, to any replica) and resumes with ``"resume": {"session_id": ID}``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

# A dropped client has this long to come back; long enough for a laptop waking up, short enough that
# abandoned sessions do not pile up in Redis.
CHECKPOINT_TTL_S = 15 * 60
MAX_CHECKPOINTS = 10_000  # in-process bound (one entry per recent session id)
# ... and on their size: a tracked session's checkpoint is ~20-60 KB (the tracker's filters), so 10,000 of
# them could hold half a gigabyte; the oldest go first beyond this
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredCheckpoint:
    scope: str  # the credential's principal that wrote it: only the same credential may resume it
    state: dict[str, Any]


class CheckpointStore(Protocol):
    bytes: int  # checkpoint bytes this process holds in memory (0 when they live in Redis)

    async def put(self, session_id: str, scope: str, state: dict[str, Any]) -> None: ...

    async def get(self, session_id: str) -> StoredCheckpoint | None: ...

    async def delete(self, session_id: str) -> None: ...


def encode(scope: str, state: dict[str, Any]) -> bytes:
    return json.dumps({"scope": scope, "state": state}, separators=(",", ":")).encode()


def decode(data: bytes | str | None) -> StoredCheckpoint | None:
    if data is None:
        return None
    try:
        d = json.loads(data)
        return StoredCheckpoint(str(d["scope"]), dict(d["state"]))
    except (ValueError, KeyError, TypeError):
        return None  # a corrupt entry is the same as none: the client starts afresh


class MemoryCheckpoints:
    """In-process checkpoints (single-process server): a reconnect after a network drop resumes here.
    Entries are stored encoded, so a later change to a live state cannot alter what was checkpointed."""

    def __init__(self, ttl_s: float = CHECKPOINT_TTL_S, limit: int = MAX_CHECKPOINTS,
                 clock: Any = time.monotonic, limit_bytes: int = MAX_CHECKPOINT_BYTES) -> None:
        self.ttl_s, self.limit, self.limit_bytes, self.clock = ttl_s, limit, limit_bytes, clock
        self._items: dict[str, tuple[float, bytes]] = {}
        self.bytes = 0  # encoded size of what is held (GET /healthz reports it)

    async def put(self, session_id: str, scope: str, state: dict[str, Any]) -> None:
        old = self._items.pop(session_id, None)  # re-insert: dict order is age order
        if old is not None:
            self.bytes -= len(old[1])
        data = encode(scope, state)
        self._items[session_id] = (self.clock() + self.ttl_s, data)
        self.bytes += len(data)
        while len(self._items) > self.limit or (self.bytes > self.limit_bytes and len(self._items) > 1):
            self.bytes -= len(self._items.pop(next(iter(self._items)))[1])

    async def get(self, session_id: str) -> StoredCheckpoint | None:
        item = self._items.get(session_id)
        if item is None:
            return None
        if item[0] < self.clock():
            await self.delete(session_id)
            return None
        return decode(item[1])

    async def delete(self, session_id: str) -> None:
        item = self._items.pop(session_id, None)
        if item is not None:
            self.bytes -= len(item[1])
