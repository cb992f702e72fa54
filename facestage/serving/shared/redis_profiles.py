"""Brand profile rows in Redis: every replica of a cluster reads and writes the same brands and keys.

One hash per brand (``data``, ``secrets``, ``key_salt``, ``key_hash``) and a set of ids. Secrets arrive
already sealed by ``ProfileStore`` (Fernet), so Redis never holds a provider key in clear.
"""

from __future__ import annotations

from typing import Any

PREFIX = "fs:profile:"
IDS = "fs:profiles"


class RedisRows:
    def __init__(self, client: Any) -> None:
        self.r = client  # a sync redis.Redis (ProfileStore calls run on the engine's I/O threads)

    def insert(self, pid: str, data: str, blob: bytes | None) -> bool:
        if not self.r.hsetnx(PREFIX + pid, "data", data):  # atomic: two replicas creating one id, one wins
            return False
        if blob is not None:
            self.r.hset(PREFIX + pid, "secrets", blob)
        self.r.sadd(IDS, pid)
        return True

    def row(self, pid: str) -> tuple[str, bytes | None] | None:
        data, blob = self.r.hmget(PREFIX + pid, ["data", "secrets"])
        return None if data is None else (data.decode(), blob)

    def exists(self, pid: str) -> bool:
        return bool(self.r.hexists(PREFIX + pid, "data"))

    def replace(self, pid: str, data: str, blob: bytes | None) -> None:
        pipe = self.r.pipeline()
        pipe.hset(PREFIX + pid, "data", data)
        if blob is None:
            pipe.hdel(PREFIX + pid, "secrets")
        else:
            pipe.hset(PREFIX + pid, "secrets", blob)
        pipe.execute()

    def delete(self, pid: str) -> bool:
        self.r.srem(IDS, pid)
        return bool(self.r.delete(PREFIX + pid))

    def ids(self) -> list[str]:
        return sorted(x.decode() for x in self.r.smembers(IDS))

    def set_key(self, pid: str, salt: bytes | None, digest: bytes | None) -> None:
        if salt is None or digest is None:
            self.r.hdel(PREFIX + pid, "key_salt", "key_hash")
        else:
            self.r.hset(PREFIX + pid, mapping={"key_salt": salt, "key_hash": digest})

    def key(self, pid: str) -> tuple[bytes, bytes] | None:
        salt, digest = self.r.hmget(PREFIX + pid, ["key_salt", "key_hash"])
        return None if salt is None or digest is None else (salt, digest)

    def close(self) -> None:
        self.r.close()
