"""Session base class, the effects session and the render helpers shared with the HTTP API.

A session gets JSON control messages (already validated by ``protocol.parse_message``) and binary frames
(already unpacked) from the connection, does its CPU work on the engine's thread pool, and sends through
``Outbox`` which drops media when the client is not reading (memory stays flat with a slow client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed

from ..errors import FacestageError
from .engine import Engine
from .protocol import Frame, Kind, ProtocolError, dumps, is_jpeg, pack_frame
from .state import LatestSlot, SessionState

log = logging.getLogger("facestage.server")
SEND_BUFFER_LIMIT = 256 * 1024  # bytes queued in the socket before media frames are dropped
STATS_EVERY_S = 1.0
MAX_FACES = 4  # the most faces an effects session tracks (and its default)


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

    def offer(self, data: bytes) -> bool:
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


def decode_jpeg(payload: bytes) -> np.ndarray:
    import cv2

    if not is_jpeg(payload):
        raise ProtocolError("bad_image", "frame payload is not a JPEG image (it must start with FF D8 FF)")
    img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ProtocolError("bad_image", "frame payload could not be decoded as JPEG (truncated or corrupt)")
    if img.shape[0] > 2160 or img.shape[1] > 3840:
        raise ProtocolError("too_large", f"frame of {img.shape[1]}x{img.shape[0]} exceeds 3840x2160")
    return img


def encode_jpeg(bgr: np.ndarray, quality: int = 80) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_rgba(rgba: np.ndarray, fmt: str = "webp", quality: int = 85) -> tuple[bytes, int]:
    """(bytes, Kind) of an RGBA render: WebP/PNG keep alpha, JPEG drops it (composited on black)."""
    import cv2

    if fmt == "jpeg":
        rgb = rgba[:, :, :3].astype(np.float32) * (rgba[:, :, 3:4].astype(np.float32) / 255.0)
        return encode_jpeg(rgb.astype(np.uint8)[:, :, ::-1], quality), Kind.JPEG
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        return buf.tobytes(), Kind.PNG
    ok, buf = cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    return buf.tobytes(), Kind.WEBP


def parse_color(value: Any, where: str) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            pass
    if (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int | float) and 0 <= v <= 255 for v in value)):
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    raise ProtocolError("bad_field", f"{where}: a colour is \"#rrggbb\", [r, g, b] (0-255) or null, got {value!r}")


def render_params(msg: dict[str, Any]) -> dict[str, Any]:
    """Validate a render request (WebSocket ``render`` message or HTTP POST /v1/render body)."""
    from ..tracking.arkit import ARKIT_NAMES

    allowed = {"avatar", "blendshapes", "yaw", "pitch", "roll", "size", "background", "format", "expression",
               "framing", "id", "type"}
    unknown = sorted(set(msg) - allowed)
    if unknown:
        raise ProtocolError("unknown_field", f"render: unknown field(s) {', '.join(unknown)}; allowed: "
                            + ", ".join(sorted(allowed - {'type'})))
    bs = msg.get("blendshapes") or {}
    if not isinstance(bs, dict):
        raise ProtocolError("bad_field", "render.blendshapes: an object {ARKit name: 0..1}")
    bad = sorted(set(bs) - set(ARKIT_NAMES))
    if bad:
        raise ProtocolError("bad_field", f"render.blendshapes: unknown ARKit name(s) {', '.join(bad[:5])}")
    for k, v in bs.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= float(v) <= 1.0:
            raise ProtocolError("bad_field", f"render.blendshapes.{k}: a number within 0..1, got {v!r}")
    pose = {}
    for k in ("yaw", "pitch", "roll"):
        v = msg.get(k, 0.0)
        if not isinstance(v, int | float) or isinstance(v, bool) or not -90 <= float(v) <= 90:
            raise ProtocolError("bad_field", f"render.{k}: degrees within -90..90, got {v!r}")
        pose[k] = float(v)
    size = msg.get("size", 384)
    if isinstance(size, list):
        if len(size) != 2 or not all(isinstance(v, int) and 16 <= v <= 2048 for v in size):
            raise ProtocolError("bad_field", "render.size: [width, height] within 16..2048")
        size = (int(size[0]), int(size[1]))
    elif not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 2048:
        raise ProtocolError("bad_field", f"render.size: pixels within 16..2048, got {size!r}")
    fmt = msg.get("format", "png")
    if fmt not in ("png", "webp", "jpeg"):
        raise ProtocolError("bad_field", f"render.format: png, webp or jpeg, got {fmt!r}")
    framing = msg.get("framing", "head")
    if framing not in ("head", "bust"):
        raise ProtocolError("bad_field", f"render.framing: head or bust, got {framing!r}")
    avatar = msg.get("avatar", "default")
    if not isinstance(avatar, str) or avatar.startswith("upload:"):
        raise ProtocolError("bad_field", "render.avatar: a built-in or photo avatar name (see GET /v1/avatars)")
    expression = msg.get("expression")
    if expression is not None:
        from ..avatar.rig import EXPRESSIONS

        if expression not in EXPRESSIONS:
            raise ProtocolError("bad_field", f"render.expression: one of {', '.join(EXPRESSIONS)}")
        bs = {**EXPRESSIONS[expression], **bs}
    return {"avatar": avatar, "blendshapes": {k: float(v) for k, v in bs.items()}, **pose, "size": size,
            "background": parse_color(msg.get("background"), "render.background"), "format": fmt,
            "framing": framing}


async def render_image(engine: Engine, params: dict[str, Any]) -> tuple[bytes, int, tuple[int, int]]:
    """One image for a validated render request: (bytes, Kind, (width, height))."""
    avatar = await engine.run(engine.avatar, params["avatar"], io=True)
    rgba = await engine.render.render_async(avatar, params["blendshapes"], yaw=params["yaw"], pitch=params["pitch"],
                                            roll=params["roll"], size=params["size"],
                                            background=params["background"], framing=params["framing"])
    data, kind = await engine.run(encode_rgba, rgba, params["format"])
    return data, kind, (rgba.shape[1], rgba.shape[0])


class Channels:
    """Named fan-out of a session's output to watchers (the OBS output page watches the studio's channel).

    Watchers get media through their own Outbox, so a slow watcher drops frames and never slows the
    publisher or grows memory.
    """

    def __init__(self) -> None:
        self._watchers: dict[str, set[Outbox]] = {}

    def watch(self, name: str, out: Outbox) -> None:
        self._watchers.setdefault(name, set()).add(out)

    def unwatch(self, name: str, out: Outbox) -> None:
        group = self._watchers.get(name)
        if group is not None:
            group.discard(out)
            if not group:
                del self._watchers[name]

    def count(self, name: str) -> int:
        return len(self._watchers.get(name, ()))

    async def publish(self, name: str | None, data: bytes) -> None:
        for out in list(self._watchers.get(name or "", ())):
            out.offer(data)


def check_channel(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ProtocolError("bad_field", "channel: 1-64 letters, digits, _ or -")
    return value


class Session:
    """Base: message/frame dispatch, a latest-frame worker, stats and the checkpointable state."""

    kind = ""

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
        self._closing = False

    # The tracker comes from the engine's pool and goes back on close. A frame may still be running on a
    # worker thread when the session closes, so both sides take the lock: a tracker is never returned
    # to the pool (and handed to another session) while it is in use.
    def track(self, max_faces: int, img: np.ndarray, t: float) -> list:
        with self._tracker_lock:
            if self._closing:
                raise ProtocolError("closed", "the session is closing")
            if self._tracker is None:
                self._tracker = self.engine.acquire_tracker(max_faces)
            return self._tracker.track(img, t)

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
            except Exception as exc:  # noqa: BLE001 - a bug on one frame must not stop the session
                log.exception("%s session: frame %s failed", self.kind, seq)
                await self.out.control({"type": "error", "code": "internal", "seq": seq,
                                        "message": f"internal error: {type(exc).__name__}: {exc}"})
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

    def checkpoint(self) -> dict[str, Any]:
        self.state.dropped_out = self.out.dropped
        return self.state.to_dict()

    async def close(self) -> None:
        self.slot.close()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if self._tracker is not None:
            await self.engine.run(self._release_tracker)


class EffectsSession(Session):
    """Camera JPEG in → tracked, effects applied → JPEG out (+ face data on request). Config changes live."""

    kind = "effects"

    def __init__(self, engine: Engine, out: Outbox, state: SessionState) -> None:
        super().__init__(engine, out, state)
        self._chain = None
        self._pending: dict | None = None

    def _configure(self, msg: dict[str, Any]) -> None:
        from ..effects import load_preset, merge_configs, normalize_config

        opts = self.state.options
        if "channel" in msg:
            opts["channel"] = check_channel(msg["channel"])
        for k in ("faces", "landmarks"):
            if k in msg:
                opts[k] = bool(msg[k])
        if "quality" in msg:
            q = msg["quality"]
            if not 30 <= q <= 100:
                raise ProtocolError("bad_field", f"quality: JPEG quality within 30..100, got {q}")
            opts["quality"] = int(q)
        if "preset" in msg or "effects" in msg:
            cfg: dict = {}
            if msg.get("preset"):
                cfg = load_preset(msg["preset"])
            effects = msg.get("effects")
            if isinstance(effects, str):  # a preset name in place of a config
                cfg = load_preset(effects)
            elif isinstance(effects, dict):
                cfg = merge_configs(cfg, effects)
            self.state.effects = normalize_config(cfg)  # ConfigError names the bad effect/param
            self._pending = self.state.effects

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        allowed = {"effects", "preset", "faces", "landmarks", "quality", "channel", "max_faces"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ProtocolError("unknown_field", f"effects options: unknown field(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(allowed))}")
        self.state.options.setdefault("quality", 80)
        # How many faces to look for: the face mesh runs its detector on every frame while it tracks fewer
        # faces than this, so a one-person stream (the studio) asks for 1 and saves ~25 % of tracking.
        mf = options.pop("max_faces", self.state.options.get("max_faces", MAX_FACES))
        if not isinstance(mf, int) or isinstance(mf, bool) or not 1 <= mf <= MAX_FACES:
            raise ProtocolError("bad_field", f"max_faces: an integer within 1..{MAX_FACES}, got {mf!r}")
        self.state.options["max_faces"] = mf
        self.state.options["channel"] = check_channel(options.pop("channel", self.state.options.get("channel")))
        self._configure(options)
        if not options.get("effects") and not options.get("preset"):
            self._pending = self.state.effects  # resumed state or empty chain
        return {"effects": self.state.effects}

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] != "config":
            await super().on_message(msg)
        allowed = {"type", "effects", "preset", "faces", "landmarks", "quality", "channel"}
        unknown = sorted(set(msg) - allowed)
        if unknown:
            raise ProtocolError("unknown_field", f"config for an effects session: unknown field(s) "
                                f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed - {'type'}))}")
        self._configure(msg)
        await self.out.control({"type": "configured", "effects": self.state.effects})

    def _run(self, payload: bytes, t: float) -> tuple[bytes, list[dict], tuple[int, int]]:
        # Runs on a worker thread; one frame of a session at a time, so the tracker and chain are not shared.
        from ..effects import EffectChain

        img = decode_jpeg(payload)
        max_faces = self.state.options.get("max_faces", MAX_FACES)
        if self._chain is None:
            self._chain = EffectChain.from_config({})
        if self._pending is not None:
            self._chain.update(self._pending)
            self._pending = None
        faces = self.track(max_faces, img, t)
        out = self._chain.apply(img, faces) if self.state.effects else img
        data = encode_jpeg(out, self.state.options.get("quality", 80))
        face_json = ([f.to_json(landmarks=bool(self.state.options.get("landmarks"))) for f in faces]
                     if self.state.options.get("faces") else [])
        return data, face_json, (img.shape[1], img.shape[0])

    async def process(self, frame: Frame) -> None:
        data, faces, (w, h) = await self.engine.run(self._run, frame.payload, frame.timestamp / 1000.0)
        if self.state.options.get("faces"):
            await self.out.control({"type": "faces", "seq": frame.seq, "width": w, "height": h, "faces": faces})
        packed = pack_frame(Kind.JPEG, frame.seq, frame.timestamp, data)
        if await self.out.media(packed):
            self.state.frames_out += 1
        await self.engine.channels.publish(self.state.options.get("channel"), packed)


class RenderSession(Session):
    """``render`` requests in, one image each out (the WebSocket twin of POST /v1/render)."""

    kind = "render"

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        if options:
            raise ProtocolError("unknown_field", f"render options: unknown field(s) {', '.join(sorted(options))}")
        return {}

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] != "render":
            await super().on_message(msg)
        params = render_params(msg)
        data, kind, (w, h) = await render_image(self.engine, params)
        await self.out.control({"type": "rendered", "id": msg.get("id"), "width": w, "height": h,
                                "format": params["format"], "bytes": len(data)})
        self.state.frames_out += 1
        await self.out.always(pack_frame(kind, self.state.frames_out, time.time() * 1000, data))

    async def on_frame(self, frame: Frame) -> None:
        raise ProtocolError("unsupported", "a render session takes render messages, not frames")


class WatchSession(Session):
    """Receives the media another session publishes on a channel (read-only; for OBS browser sources)."""

    kind = "watch"

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - {"channel"})
        if unknown:
            raise ProtocolError("unknown_field", f"watch options: unknown field(s) {', '.join(unknown)}")
        channel = check_channel(options.get("channel", "main"))
        self.state.options["channel"] = channel
        self.engine.channels.watch(channel, self.out)
        return {"channel": channel}

    async def on_frame(self, frame: Frame) -> None:
        raise ProtocolError("unsupported", "a watch session only receives")

    async def close(self) -> None:
        self.engine.channels.unwatch(self.state.options.get("channel") or "", self.out)
        await super().close()
