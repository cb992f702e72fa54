"""The connection state machine, sans-I/O: events in (text, bytes, a session's start result, the clock),
actions out (send this, start that session, hand this to the session, close).

Every decision the server makes about a WebSocket connection lives here — hello, start/resume and their
option checks, who may start what, per-client session counts, frame and byte rates, idle time, dispatch,
and the error each failure becomes — so each is unit-tested without a socket. ``app._Client`` only runs
the actions (``tests/test_protocol_core.py``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, FacestageError
from .auth import Access, Unauthorized
from .options import validate_options
from .protocol import SESSIONS, Frame, ProtocolError, parse_message, unpack_frame
from .security import Limits, SessionCounter
from .state import SessionState

log = logging.getLogger("facestage.server")
RECEIVING_SESSIONS = ("watch", "employee")


# ------------------------------------------------------------------------------------------------ actions
@dataclass(frozen=True)
class Send:
    msg: dict[str, Any]
    droppable: bool = False  # may be dropped when the client is not reading (never blocks the reader)


@dataclass(frozen=True)
class StartSession:
    kind: str
    options: dict[str, Any]
    state: SessionState
    access: Access


@dataclass(frozen=True)
class ToSession:
    msg: dict[str, Any]


@dataclass(frozen=True)
class FrameToSession:
    frame: Frame


@dataclass(frozen=True)
class Checkpoint:
    pass


@dataclass(frozen=True)
class CloseSession:
    pass


@dataclass(frozen=True)
class LoadCheckpoint:
    """Fetch the stored checkpoint of ``session_id`` and hand it to ``ConnectionCore.resume_loaded``."""

    session_id: str
    msg: dict[str, Any]


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


Action = Send | StartSession | ToSession | FrameToSession | Checkpoint | CloseSession | LoadCheckpoint | Close


def error(code: str, message: str, **extra: Any) -> Send:
    return Send({"type": "error", "code": code, "message": message, **extra})


def error_for(exc: BaseException) -> Send:
    """The message a failure becomes. Unknown exceptions say nothing about the server (logged instead)."""
    if isinstance(exc, ProtocolError):
        return error(exc.code, exc.message)
    if isinstance(exc, Unauthorized):
        return error("unauthorized" if exc.status == 401 else "forbidden", exc.message)
    if isinstance(exc, FacestageError):
        return error("bad_config" if isinstance(exc, ConfigError) else "bad_input", str(exc))
    log.error("unexpected %s in a session", type(exc).__name__, exc_info=exc)
    return error("internal", "internal error (logged on the server)")


# ------------------------------------------------------------------------------------------------ limits
class TokenBucket:
    """``rate`` per second with a burst of one second; ``take`` says whether ``n`` fit."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate, self.clock = float(rate), clock
        self.tokens, self.at = float(rate), clock()

    def take(self, n: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class ClientCounter:
    """Concurrent sessions per client (a key's principal, or the address for key-less sessions)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def acquire(self, client: str) -> bool:
        if self.counts.get(client, 0) >= self.limit:
            return False
        self.counts[client] = self.counts.get(client, 0) + 1
        return True

    def release(self, client: str) -> None:
        n = self.counts.get(client, 0) - 1
        if n > 0:
            self.counts[client] = n
        else:
            self.counts.pop(client, None)


def check_calibration(cal: Any) -> dict[str, Any] | None:
    from ..tracking.arkit import ARKIT_NAMES

    if cal is None:
        return None
    ok = (isinstance(cal, dict) and set(cal) == {"blendshapes", "pose"} and isinstance(cal["blendshapes"], dict)
          and set(cal["blendshapes"]) <= set(ARKIT_NAMES)
          and all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
                  for v in cal["blendshapes"].values())
          and isinstance(cal["pose"], list) and len(cal["pose"]) == 3
          and all(isinstance(v, int | float) and not isinstance(v, bool) and -90 <= v <= 90 for v in cal["pose"]))
    if not ok:
        raise ProtocolError("bad_state", 'resume: calibration is {"blendshapes": {ARKit: 0..1}, "pose": [y, p, r]}')
    return cal


# ------------------------------------------------------------------------------------------------ the core
@dataclass
class ConnectionCore:
    """One WebSocket connection. ``identify(key, brand)`` → Access (raises Unauthorized for a wrong key)."""

    identify: Callable[[str | None, str | None], Access]
    counter: SessionCounter
    limits: Limits = field(default_factory=Limits)
    open_media: bool = False
    remote: str = ""
    clock: Callable[[], float] = time.monotonic
    kind: str | None = None  # the running session, once started
    client: str | None = None  # who the running session counts against
    pending: bool = False  # a start is in flight
    info: dict[str, Any] = field(default_factory=dict)  # extra hello fields (a cluster replica names itself)

    def __post_init__(self) -> None:
        self.frames = TokenBucket(self.limits.fps, self.clock)
        self.bytes = TokenBucket(self.limits.bytes_per_s, self.clock)
        self.last_input = self.clock()
        self._last_rate_error = -1e9
        self.dropped_frames = 0  # refused by the rate limits (added to the session's dropped_in)

    # ------------------------------------------------------------------------------------ events in
    def hello(self, server_time: float) -> list[Action]:
        return [Send({"type": "hello", "protocol": 1, "sessions": list(SESSIONS), "server_time": server_time,
                      **self.info})]

    def receive(self, data: str | bytes, server_time: float = 0.0) -> list[Action]:
        self.last_input = self.clock()
        try:
            if isinstance(data, bytes):
                return self._frame(data)
            if not self.bytes.take(len(data)):  # control messages count against the byte rate too
                return self._rate_error(None)
            return self._message(parse_message(data), server_time)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one error message
            return [error_for(exc)]

    def resume_loaded(self, msg: dict[str, Any], stored: Any) -> list[Action]:
        """The answer to ``LoadCheckpoint``: start from the stored state (a ``StoredCheckpoint`` or None).
        Only the credential that wrote a checkpoint may resume it; the state is validated like any resume."""
        try:
            if stored is None:
                raise ProtocolError("no_checkpoint", "resume: no stored checkpoint for this session id (it expired "
                                    "or never existed); start afresh")
            return self._start({**msg, "resume": stored.state}, scope=stored.scope)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one error message
            return [error_for(exc)]

    def started(self, kind: str, session_id: str, extra: dict[str, Any]) -> list[Action]:
        self.pending = False
        self.kind = kind
        return [Send({"type": "started", "session": kind, "session_id": session_id, **extra})]

    def start_failed(self, exc: BaseException) -> list[Action]:
        self.pending = False
        self._release()
        return [error_for(exc)]

    def session_closed(self) -> None:
        self.kind = None
        self._release()

    def idle_left(self) -> float:
        """Seconds until an idle close. Sessions that only receive (watch: the OBS page; employee: a person
        reading the answer) are not idle while they receive: dead peers are found by WebSocket pings."""
        if self.kind in RECEIVING_SESSIONS:
            return self.limits.idle_timeout_s
        return self.limits.idle_timeout_s - (self.clock() - self.last_input)

    def tick(self) -> list[Action]:
        if self.kind in RECEIVING_SESSIONS:
            self.last_input = self.clock()  # the idle clock restarts if the session ends
        if self.idle_left() <= 0:
            return [error("idle", f"no input for {self.limits.idle_timeout_s:g} s: closing"),
                    Close(1000, "idle timeout")]
        return []

    # ------------------------------------------------------------------------------------ internals
    def _release(self) -> None:
        if self.client is not None:
            self.counter.release(self.client)
            self.client = None

    def _frame(self, data: bytes) -> list[Action]:
        frame = unpack_frame(data)
        if self.kind is None:
            raise ProtocolError("no_session", 'send {"type": "start", "session": ...} before frames')
        if not self.frames.take() or not self.bytes.take(len(data)):
            self.dropped_frames += 1
            return self._rate_error(frame.seq)
        return [FrameToSession(frame)]

    def _rate_error(self, seq: int | None) -> list[Action]:
        now = self.clock()
        if now - self._last_rate_error < 1.0:
            return []  # dropped quietly: one error per second is enough to explain it
        self._last_rate_error = now
        # droppable: a client that floods without reading must not block the server's reader
        return [Send({"type": "error", "code": "rate_limited", "seq": seq,
                      "message": f"over {self.limits.fps:g} frames or {self.limits.bytes_per_s} bytes per second: "
                      "input is dropped"}, droppable=True)]

    def _message(self, msg: dict[str, Any], server_time: float) -> list[Action]:
        t = msg["type"]
        if t == "ping":
            return [Send({"type": "pong", "t": msg.get("t"), "server_time": server_time})]
        if t == "start":
            return self._start(msg)
        if self.kind is None:
            raise ProtocolError("no_session", f'"{t}" needs a session: send {{"type": "start", "session": ...}} first')
        if t == "checkpoint":
            return [Checkpoint()]
        return [ToSession(msg)]

    def _start(self, msg: dict[str, Any], scope: str | None = None) -> list[Action]:
        kind = msg["session"]
        if kind not in SESSIONS:
            raise ProtocolError("unknown_session", f"unknown session {kind!r:.40}; choose one of "
                                + ", ".join(SESSIONS))
        if self.pending:
            raise ProtocolError("busy", "a session is still starting; wait for \"started\"")
        resume = msg.get("resume")
        if isinstance(resume, dict) and set(resume) == {"session_id"} and scope is None:
            sid = resume["session_id"]
            if not isinstance(sid, str) or not re.fullmatch(r"[0-9a-f]{6,32}", sid):
                raise ProtocolError("bad_state", "resume.session_id: the session_id of a \"started\" reply")
            return [LoadCheckpoint(sid, msg)]  # the server's stored checkpoint of that session
        state = SessionState.from_dict(resume) if resume else SessionState(kind)
        if state.session != kind:
            raise ProtocolError("bad_state", f"resume: the state is of a {state.session} session, not {kind}")
        state.calibration = check_calibration(state.calibration)
        if state.dialogue is not None and not isinstance(state.dialogue, dict):
            raise ProtocolError("bad_state", "resume: dialogue is an object")
        if state.tracker is not None and not isinstance(state.tracker, dict):  # contents: tracker.restore
            raise ProtocolError("bad_state", "resume: tracker is an object")
        if not isinstance(state.clock_s, int | float) or isinstance(state.clock_s, bool) or state.clock_s < 0:
            raise ProtocolError("bad_state", "resume: clock_s is seconds >= 0")
        options = dict(msg.get("options") or {})
        if kind == "effects" and state.effects and "effects" not in options and "preset" not in options:
            options["effects"] = state.effects  # a resumed chain is validated like a new one
        state.effects = {}
        # one schema for start and resume: resumed options are input too
        opts = validate_options(kind, options, state.options)
        key, brand = opts.pop("key", None), opts.pop("brand", None)
        if kind == "employee":
            brand = brand or state.brand
            if not isinstance(brand, str) or not isinstance(key, str):
                raise ProtocolError("unauthorized", "employee sessions need options.brand and options.key (the "
                                    "brand's API key)")
        access = self.identify(key, brand)
        if scope is not None and (access.principal or "open") != scope:
            raise Unauthorized(403, "resume: this checkpoint belongs to another credential")
        if kind == "employee":
            if access.brand != brand:  # operator keys act on brands over HTTP; a session speaks as the brand
                raise Unauthorized(403, f"the key is not valid for brand {brand!r}")
            opts.update(brand=brand, key=key)
        elif not self.open_media and not (access.operator or access.brand):
            raise Unauthorized(401, f"{kind} sessions on this server need options.key (and options.brand for a "
                               "brand key)")
        state.options = {}
        client: str | None = access.principal or f"addr:{self.remote}"
        actions: list[Action] = []
        if self.kind is not None:  # one session per connection: starting another replaces it
            actions.append(CloseSession())
            self.session_closed()
        if access.operator:
            client = None  # the operator is bounded by the server's connection limit only
        elif not self.counter.acquire(client):
            raise ProtocolError("too_many_sessions", f"at most {self.counter.limit} concurrent sessions per key or "
                                "address; close one first")
        self.client = client
        self.pending = True
        return [*actions, StartSession(kind, opts, state, access)]
