"""Sticky routing by session id: a connection to ``/v1/ws?session=ID`` goes to the replica that rendezvous
hashing (highest random weight) picks for ID among the live replicas, so a reconnecting session finds its
warm caches; when that replica is full or gone the next in its order takes it. Everything else (pages, the
HTTP API, first connections) is routed by Serve's power-of-two-choices on queue length.

Correctness never depends on this: a session resumes from its checkpoint on any replica.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any
from urllib.parse import parse_qs

from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import PendingRequest, RunningReplica

MARKER = b"session="  # cheap test before unpickling a request's ASGI scope


def session_of(pending: PendingRequest | None) -> str | None:
    """The ``session`` query parameter of a proxied HTTP/WebSocket request, if any."""
    if pending is None or not pending.args or not isinstance(pending.args[0], bytes | bytearray):
        return None
    raw = pending.args[0]
    if MARKER not in raw:
        return None
    try:
        scope: Any = getattr(pickle.loads(raw), "asgi_scope", None)  # noqa: S301 - Serve's own proxy wrote it
    except Exception:  # noqa: BLE001 - not a proxied HTTP request: no affinity
        return None
    if not isinstance(scope, dict):
        return None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session")
    return values[0][:64] if values else None


def rendezvous(session: str, replicas: list[RunningReplica]) -> list[RunningReplica]:
    def weight(r: RunningReplica) -> bytes:
        return hashlib.blake2b(f"{session}|{r.replica_id.unique_id}".encode(), digest_size=8).digest()

    return sorted(replicas, key=weight, reverse=True)


class SessionAffinityRouter(PowerOfTwoChoicesRequestRouter):
    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        session = session_of(pending_request)
        if session is None:
            return await super().choose_replicas(candidate_replicas, pending_request)
        return [[r] for r in rendezvous(session, candidate_replicas)]
