"""Replicas announce themselves in Redis (``fs:replica:ID`` → {pid, sessions, load}, expiring), so any
replica answers ``GET /healthz`` for all of them and a killed replica drops out within ``TTL_MS``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("facestage.cluster")
PREFIX = "fs:replica:"
BEAT_S = 0.5
TTL_MS = 2000  # four missed beats: gone


class ReplicaRegistry:
    def __init__(self, client: Any, capacity: int, sessions: Callable[[], int],
                 on_beat: Callable[[set[str]], None] | None = None) -> None:
        self.r = client  # sync redis: the beat runs on its own thread, whatever the event loop is doing
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.capacity = max(1, capacity)
        self.sessions = sessions
        self.on_beat = on_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facestage-registry", daemon=True)

    def info(self) -> dict[str, Any]:
        n = self.sessions()
        return {"id": self.id, "pid": os.getpid(), "sessions": n, "load": round(n / self.capacity, 3),
                "capacity": self.capacity, "t": time.time()}

    def beat(self) -> None:
        self.r.set(PREFIX + self.id, json.dumps(self.info()), px=TTL_MS)

    def start(self) -> ReplicaRegistry:
        self.beat()
        self._thread.start()
        return self

    def _run(self) -> None:
        beats = 0
        while not self._stop.wait(BEAT_S):
            try:
                self.beat()
                beats += 1
                if self.on_beat is not None and beats % 4 == 0:  # every ~2 s: tidy after dead replicas
                    self.on_beat({r["id"] for r in self.replicas()})
            except Exception as exc:  # noqa: BLE001 - Redis away: this replica keeps serving its sessions
                log.warning("replica registry: %s", exc)

    def replicas(self) -> list[dict[str, Any]]:
        keys = sorted(self.r.scan_iter(PREFIX + "*", count=1000))
        values = self.r.mget(keys) if keys else []
        return [json.loads(v) for v in values if v is not None]

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):  # going away anyway; the key expires by itself
            self.r.delete(PREFIX + self.id)
