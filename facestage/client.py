"""Async Python client for the facestage server (protocol v1, docs/protocol.md).

    import asyncio, cv2
    from facestage.client import Client

    async def main():
        async with Client.connect("ws://127.0.0.1:8765/v1/ws") as c:
            await c.start("effects", preset="natural")
            out, faces = await c.process(cv2.imread("me.jpg"))
            cv2.imwrite("out.jpg", out)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import FacestageError
from .serving.protocol import Frame, Kind, pack_frame, unpack_frame

DEFAULT_URL = "ws://127.0.0.1:8765/v1/ws"
RECONNECT_FOR_S = 30.0  # keep trying this long after a drop (a replica restarting takes seconds)
# Retries stay quick for the first seconds (Serve's proxy may route one or two attempts to the dead replica
# before it learns it is gone; another replica is usually up already), then back off.
RETRY_S = 0.03
FAST_RETRIES_FOR_S = 2.0
CREDENTIALS = ("key", "brand")  # the start options a resume re-sends; the rest comes from the checkpoint


class ServerError(FacestageError):
    """The server answered with an error message (``code`` is machine-readable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Reply:
    """An employee answer collected in full: text, audio (int16), visemes and frames with media times."""

    text: str = ""
    sentences: list[str] = field(default_factory=list)
    sample_rate: int = 0
    audio: list[np.ndarray] = field(default_factory=list)
    visemes: list[list] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate if self.sample_rate else 0.0


def _encode_jpeg(image: np.ndarray | bytes, quality: int = 85) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FacestageError("could not encode the image as JPEG")
    return buf.tobytes()


def decode_image(frame: Frame) -> np.ndarray:
    """BGR (JPEG) or BGRA (WebP/PNG with alpha) array of a media frame."""
    import cv2

    img = cv2.imdecode(np.frombuffer(frame.payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FacestageError(f"frame {frame.seq} is not a decodable image")
    return img


class Client:
    """One WebSocket connection; at most one session at a time (``start`` again to switch).

    With ``reconnect`` (the default) a dropped connection — a restarted server, a killed cluster replica —
    is reopened and the session resumed from the server's stored checkpoint (face ids, calibration, dialogue
    memory), and the call that saw the drop is made again. ``resumes`` lists how long each resume took (s).
    What cannot move is a reply in flight: ``say`` asks again after a resume."""

    def __init__(self, ws: Any, url: str = DEFAULT_URL, reconnect: bool = True,
                 connect_kwargs: dict[str, Any] | None = None) -> None:
        self.ws = ws
        self.url = url
        self.reconnect = reconnect
        self._connect_kwargs = connect_kwargs or {}
        self.hello: dict[str, Any] = {}
        self.session: dict[str, Any] | None = None
        self._seq = 0
        self.stats: dict[str, Any] | None = None
        self._start_msg: dict[str, Any] | None = None
        self.resumes: list[float] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str = DEFAULT_URL, reconnect: bool = True, **kwargs: Any) -> AsyncIterator[Client]:
        ws = await websockets.connect(url, max_size=16 * 2**20, **kwargs)
        client = cls(ws, url, reconnect, kwargs)
        try:
            client.hello = await client.expect("hello")
            yield client
        finally:
            await client.ws.close()

    # ------------------------------------------------------------------------------------ reconnecting
    def _url_for(self, session_id: str | None) -> str:
        """The session id travels in the URL (browsers cannot set WebSocket headers) for sticky routing."""
        if not session_id:
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}session={session_id}"

    async def resume(self) -> None:
        """Reopen the connection and resume the session from the server's last checkpoint of it."""
        t0 = time.perf_counter()
        sid = (self.session or {}).get("session_id")
        delay = RETRY_S
        while True:
            try:
                ws = await websockets.connect(self._url_for(sid), max_size=16 * 2**20, **self._connect_kwargs)
                break
            except (OSError, InvalidHandshake, TimeoutError):
                if time.perf_counter() - t0 > RECONNECT_FOR_S:
                    raise
                await asyncio.sleep(delay)
                if time.perf_counter() - t0 > FAST_RETRIES_FOR_S:
                    delay = min(delay * 2, 1.0)
        old, self.ws = self.ws, ws
        with contextlib.suppress(Exception):
            await old.close()
        self.hello = await self.expect("hello")
        if self._start_msg is not None and sid:
            msg = self._start_msg
            opts = {k: v for k, v in (msg.get("options") or {}).items() if k in CREDENTIALS}
            await self.send({"type": "start", "session": msg["session"], "options": opts,
                             "resume": {"session_id": sid}})
            try:
                self.session = await self.expect("started", timeout=120)
            except ServerError as exc:
                if exc.code != "no_checkpoint":
                    raise
                await self.send(msg)  # the checkpoint expired: the same session afresh
                self.session = await self.expect("started", timeout=120)
        self.resumes.append(time.perf_counter() - t0)

    async def _retrying(self, op: Any) -> Any:
        """Run ``op()``; after a dropped connection, resume and run it again (a few times at most)."""
        for attempt in range(3):
            try:
                return await op()
            except (ConnectionClosed, OSError):
                if not self.reconnect or attempt == 2:
                    raise
                await self.resume()
        raise AssertionError("unreachable")

    # -------------------------------------------------------------------------------------- plumbing
    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 60.0) -> dict[str, Any] | Frame:
        """The next message: a dict (control) or a Frame (media). Stats are recorded on the way."""
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(data, bytes):
            return unpack_frame(data)
        msg = json.loads(data)
        if msg.get("type") == "stats":
            self.stats = msg
        return msg

    async def expect(self, mtype: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for a control message of ``mtype`` (skipping media and stats); raise on an error message."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(deadline - time.monotonic(), 0.01))
            if isinstance(msg, dict):
                if msg.get("type") == mtype:
                    return msg
                if msg.get("type") == "error":
                    raise ServerError(msg.get("code", "error"), msg.get("message", ""))

    # -------------------------------------------------------------------------------------- sessions
    async def start(self, session: str, resume: dict | None = None, **options: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "start", "session": session, "options": options}
        if resume is not None:
            msg["resume"] = resume
        await self.send(msg)
        self.session = await self.expect("started", timeout=120)
        self._start_msg = {k: v for k, v in msg.items() if k != "resume"}
        return self.session

    async def config(self, **changes: Any) -> dict[str, Any]:
        async def op() -> dict[str, Any]:
            await self.send({"type": "config", **changes})
            return await self.expect("configured")

        return await self._retrying(op)

    async def checkpoint(self) -> dict[str, Any]:
        async def op() -> dict[str, Any]:
            await self.send({"type": "checkpoint"})
            return (await self.expect("checkpoint"))["state"]

        return await self._retrying(op)

    async def ping(self) -> float:
        async def op() -> float:
            t = time.perf_counter()
            await self.send({"type": "ping"})
            await self.expect("pong")
            return (time.perf_counter() - t) * 1000

        return await self._retrying(op)

    async def send_frame(self, image: np.ndarray | bytes, seq: int | None = None) -> int:
        """Send a camera frame (BGR array or JPEG bytes); returns its sequence number."""
        self._seq = seq if seq is not None else self._seq + 1
        data = _encode_jpeg(image)
        await self._retrying(lambda: self.ws.send(pack_frame(Kind.JPEG, self._seq, time.time() * 1000, data)))
        return self._seq

    async def next_frame(self, seq: int | None = None, timeout: float = 60.0) -> tuple[Frame, list[dict]]:
        """The next media frame (the one for ``seq`` if given) and the face data sent just before it."""
        faces: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(deadline - time.monotonic(), 0.01))
            if isinstance(msg, Frame):
                if seq is None or msg.seq == seq:
                    return msg, faces
            elif msg.get("type") == "faces" and (seq is None or msg.get("seq") == seq):
                faces = msg["faces"]
            elif msg.get("type") == "error":
                raise ServerError(msg.get("code", "error"), msg.get("message", ""))

    async def process(self, image: np.ndarray | bytes, timeout: float = 60.0) -> tuple[np.ndarray, list[dict]]:
        """Effects/avatar: one frame in, the processed image (decoded) and its faces out."""
        data = _encode_jpeg(image)

        async def op() -> tuple[Frame, list[dict]]:
            seq = await self.send_frame(data)
            return await self.next_frame(seq, timeout)

        frame, faces = await self._retrying(op)
        return decode_image(frame), faces

    async def render(self, **params: Any) -> np.ndarray:
        """Render session: one image for an avatar, blendshapes and pose (see docs/protocol.md)."""
        async def op() -> np.ndarray:
            await self.send({"type": "render", **params})
            await self.expect("rendered")
            while True:
                msg = await self.recv()
                if isinstance(msg, Frame):
                    return decode_image(msg)

        return await self._retrying(op)

    async def say(self, text: str, timeout: float = 120.0) -> Reply:
        """Employee session: ask and collect the whole answer (text, audio, visemes, frames).
        A reply cut by a dropped connection is asked again once the session has resumed."""
        async def op() -> Reply:
            await self.send({"type": "say", "text": text})
            return await self._collect_reply(timeout)

        return await self._retrying(op)

    async def listen(self, pcm: np.ndarray, sample_rate: int, lang: str | None = None,
                     timeout: float = 120.0) -> tuple[str, Reply]:
        """Employee session: ask by voice (mono int16); returns what the server heard and the answer."""
        await self.send({"type": "listen", "sample_rate": int(sample_rate), "lang": lang})
        await self.expect("listening")
        data = np.asarray(pcm, np.int16).astype("<i2").tobytes()
        step = 8192  # ~0.2-0.5 s per frame, like a live microphone would send
        for i, off in enumerate(range(0, len(data), step)):
            await self.ws.send(pack_frame(Kind.PCM16, i, off / 2 / sample_rate * 1000, data[off:off + step]))
        await self.send({"type": "listen_end"})
        heard = await self.expect("heard", timeout)
        return heard["text"], await self._collect_reply(timeout)

    async def _collect_reply(self, timeout: float) -> Reply:
        reply = Reply()
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(deadline - time.monotonic(), 0.01))
            if isinstance(msg, Frame):
                if msg.kind == Kind.PCM16:
                    reply.audio.append(np.frombuffer(msg.payload, "<i2").astype(np.int16))
                elif msg.timestamp >= 0:  # negative = a still outside any reply (sent after "started")
                    reply.frames.append(msg)
                continue
            t = msg.get("type")
            if t == "reply":
                reply.sentences.append(msg["text"])
            elif t == "audio":
                reply.sample_rate = msg["sample_rate"]
                reply.visemes += msg["visemes"]
            elif t == "reply_end":
                reply.text = msg["text"]
                return reply
            elif t == "error":
                raise ServerError(msg.get("code", "error"), msg.get("message", ""))
