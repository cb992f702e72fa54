"""Session base class and the Outbox every session sends through.

A session gets JSON control messages (already validated by ``protocol.parse_message`` and the option
schema) and binary frames (already unpacked) from the connection, does its CPU work on the engine's thread
pool, and sends through ``Outbox`` which drops media when the client is not reading (memory stays flat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.exceptions import ConnectionClosed

from ..errors import FacestageError
from .protocol import Frame, Kind, ProtocolError, dumps, is_jpeg
from .state import LatestSlot, SessionState

if TYPE_CHECKING:
    from .engine import Engine
    from .shared import CheckpointStore

log = logging.getLogger("facestage.server")
SEND_BUFFER_LIMIT = 256 * 1024  # bytes queued in the socket before media frames are dropped
STATS_EVERY_S = 1.0
# The tracker's state (~55 KB of JSON, most of a checkpoint) is copied into the session state every few
# frames, on the worker thread that owns the tracker (no lock held across the event loop); the session state
# goes to the checkpoint store when it changed, at most every CHECKPOINT_EVERY_S. So a replica killed
# mid-stream costs its clients at most ~0.3 s of face-filter history and ~0.2 s of anything else, and
# a session writes ~150 KB/s to the store while frames flow (one JSON encode of ~1 ms per write).
TRACKER_CHECKPOINT_EVERY = 10
CHECKPOINT_EVERY_S = 0.2


class Outbox:
    """Sends for a session. Control messages always go out; media is dropped while the socket is backed up."""

    def __init__(self, send: Callable[[str | bytes], Awaitable[None]], buffered: Callable[[], int]) -> None:
        self._send = send
        self._buffered = buffered
        self.dropped = 0
        self._pending: asyncio.Task | None = None

    async def control(self, msg: dict[str, Any]) -> None:
        await self._send(dumps(msg))

    async def always(self, data: bytes) -> None:
        """Media that must not be dropped (a render result, reply audio): waits for the socket instead."""
        await self._send(data)

    async def media(self, data: bytes) -> bool:
        """Send unless the socket is backed up; waits while the socket drains (backpressure on this session)."""
        if self._buffered() > SEND_BUFFER_LIMIT:
            self.dropped += 1
            return False
        await self._send(data)
        return True

    def offer(self, data: bytes | str) -> bool:
        """Send without ever waiting: for fan-out, where one slow watcher must not slow the publisher.
        At most one frame is pending per watcher; anything else is dropped."""
        if (self._pending is not None and not self._pending.done()) or self._buffered() > SEND_BUFFER_LIMIT:
            self.dropped += 1
            return False
        self._pending = asyncio.ensure_future(self._send_quietly(data))
        return True

    async def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send(data)


class Session:
    """Base: message/frame dispatch, a latest-frame worker, stats and the checkpointable state."""

    kind = ""
    scope = "open"  # the credential's principal: channels and uploads are namespaced by it
    brand_access: str | None = None  # the brand whose uploads this session may use

    def __init__(self, engine: Engine, out: Outbox, state: SessionState) -> None:
        self.engine = engine
        self.out = out
        self.state = state
        if not state.session_id:
            state.session_id = uuid.uuid4().hex[:12]
        self.slot: LatestSlot[Frame] = LatestSlot()
        self._worker: asyncio.Task | None = None
        self._proc_ms: list[float] = []
        self._last_stats = time.monotonic()
        self._frames_at_stats = 0
        self._tracker = None
        self._tracker_lock = threading.Lock()
        self._tracked = 0
        self._last_ids: list[int] | None = None
        self._closing = False
        self._saver: asyncio.Task | None = None
        self._saved: str | None = None

    # The tracker comes from the engine's pool and goes back on close. A frame may still be running on a
    # worker thread when the session closes, so both sides take the lock: a tracker is never returned
    # to the pool (and handed to another session) while it is in use.
    def track(self, max_faces: int, img: np.ndarray, t: float) -> list:
        with self._tracker_lock:
            if self._closing:
                raise ProtocolError("closed", "the session is closing")
            if self._tracker is None:
                self._tracker = self.engine.acquire_tracker(max_faces)
                if self.state.tracker is not None:
                    saved, self.state.tracker = self.state.tracker, None
                    self._tracker.restore(saved)  # InputError for a forged state: reported, session goes on
                    self.state.tracker = saved
            faces = self._tracker.track(img, t)
            self._tracked += 1
            ids = [f.id for f in faces]
            # at once when a face came or went (ids are what a resume must keep), else every few frames
            if ids != self._last_ids or self._tracked % TRACKER_CHECKPOINT_EVERY == 0:
                self.state.tracker = self._tracker.checkpoint()  # a new dict each time: safe to read elsewhere
                self._last_ids = ids
            return faces

    def capture_tracker(self) -> None:
        """The tracker's state now (worker thread: waits for a frame in progress), e.g. before closing."""
        with self._tracker_lock:
            if self._tracker is not None:
                self.state.tracker = self._tracker.checkpoint()

    def _release_tracker(self) -> None:
        with self._tracker_lock:
            self._closing = True
            tracker, self._tracker = self._tracker, None
        if tracker is not None:
            self.engine.release_tracker(tracker)

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options and set up; returns extra fields for the "started" reply."""
        return {}

    async def after_start(self) -> None:
        """Called once the client has the "started" reply (a session may send a first frame here)."""

    async def on_message(self, msg: dict[str, Any]) -> None:
        raise ProtocolError("unsupported", f"message type {msg['type']!r} is not used by a {self.kind} session")

    async def on_frame(self, frame: Frame) -> None:
        if frame.kind != Kind.JPEG:
            raise ProtocolError("unsupported", f"a {self.kind} session takes JPEG frames (kind 1), "
                                f"not kind {frame.kind}")
        if not is_jpeg(frame.payload):
            raise ProtocolError("bad_image", "frame payload is not a JPEG image (it must start with FF D8 FF)")
        self.state.frames_in += 1
        self.enqueue(frame)

    def enqueue(self, item: Any) -> None:
        """Hand an input to the worker; an unprocessed older one is dropped (latest wins)."""
        if self.slot.put(item):
            self.state.dropped_in += 1
        if self._worker is None:
            self._worker = asyncio.create_task(self._work_loop(), name=f"{self.kind}-worker")

    async def process(self, frame: Frame) -> None:
        """Handle one camera frame (called by the worker, one at a time)."""

    async def _work_loop(self) -> None:
        while True:
            frame = await self.slot.get()
            if frame is None:
                return
            t0 = time.perf_counter()
            seq = getattr(frame, "seq", None)
            try:
                await self.process(frame)
            except ProtocolError as exc:
                await self.out.control({"type": "error", "code": exc.code, "message": exc.message, "seq": seq})
            except FacestageError as exc:
                await self.out.control({"type": "error", "code": "bad_input", "message": str(exc), "seq": seq})
            except ConnectionClosed:
                return
            except Exception:  # noqa: BLE001 - a bug on one frame must not stop the session
                log.exception("%s session: frame %s failed", self.kind, seq)
                await self.out.control({"type": "error", "code": "internal", "seq": seq,
                                        "message": "internal error (logged on the server)"})
            self._proc_ms.append((time.perf_counter() - t0) * 1000)
            await self._maybe_stats()

    async def _maybe_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < STATS_EVERY_S:
            return
        n = self.state.frames_out - self._frames_at_stats
        ms = sorted(self._proc_ms) or [0.0]
        await self.out.control({"type": "stats", "fps": round(n / (now - self._last_stats), 1),
                                "proc_ms": round(ms[len(ms) // 2], 1), "frames_in": self.state.frames_in,
                                "frames_out": self.state.frames_out, "dropped_in": self.state.dropped_in,
                                "dropped_out": self.out.dropped})
        self._last_stats, self._frames_at_stats, self._proc_ms = now, self.state.frames_out, []

    def channel(self, name: str | None) -> str | None:
        """The channel as other sessions of the same credential see it (brand A cannot watch brand B)."""
        return None if name is None else f"{self.scope}|{name}"

    def checkpoint(self) -> dict[str, Any]:
        self.state.dropped_out = self.out.dropped
        return self.state.to_dict()

    # ------------------------------------------------------------------------------- shared checkpoints
    def keep_checkpoints(self, store: CheckpointStore) -> None:
        """Write this session's checkpoint to ``store`` whenever it changed (at most every
        CHECKPOINT_EVERY_S), so a client whose process died resumes with ``"resume": {"session_id": ID}``."""
        self._saver = asyncio.create_task(self._save_loop(store), name=f"{self.kind}-checkpoints")

    async def save_checkpoint(self, store: CheckpointStore) -> None:
        state = self.checkpoint()
        # what changed, cheaply: everything but the tracker by value (small), the tracker by identity (it is a
        # new dict each time it changes); the clock alone moving is no reason to write
        small = {k: v for k, v in state.items() if k not in ("tracker", "clock_s")}
        mark = f"{id(self.state.tracker)}|{json.dumps(small, sort_keys=True, separators=(',', ':'))}"
        if mark != self._saved:
            await store.put(self.state.session_id, self.scope, state)
            self._saved = mark

    async def _save_loop(self, store: CheckpointStore) -> None:
        while True:
            try:
                await self.save_checkpoint(store)
            except Exception as exc:  # noqa: BLE001 - the store being down must not end a live session
                log.warning("%s session %s: checkpoint not written: %s", self.kind, self.state.session_id, exc)
            await asyncio.sleep(CHECKPOINT_EVERY_S)

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._saver
        self.slot.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if self._tracker is not None:
            await self.engine.run(self._release_tracker)
