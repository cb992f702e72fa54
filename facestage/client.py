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

from .errors import FacestageError
from .serving.protocol import Frame, Kind, pack_frame, unpack_frame

DEFAULT_URL = "ws://127.0.0.1:8765/v1/ws"


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
    """One WebSocket connection; at most one session at a time (``start`` again to switch)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.session: dict[str, Any] | None = None
        self._seq = 0
        self.stats: dict[str, Any] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str = DEFAULT_URL, **kwargs: Any) -> AsyncIterator[Client]:
        async with websockets.connect(url, max_size=16 * 2**20, **kwargs) as ws:
            client = cls(ws)
            client.hello = await client.expect("hello")
            yield client

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
        return self.session

    async def config(self, **changes: Any) -> dict[str, Any]:
        await self.send({"type": "config", **changes})
        return await self.expect("configured")

    async def checkpoint(self) -> dict[str, Any]:
        await self.send({"type": "checkpoint"})
        return (await self.expect("checkpoint"))["state"]

    async def ping(self) -> float:
        t = time.perf_counter()
        await self.send({"type": "ping"})
        await self.expect("pong")
        return (time.perf_counter() - t) * 1000

    async def send_frame(self, image: np.ndarray | bytes, seq: int | None = None) -> int:
        """Send a camera frame (BGR array or JPEG bytes); returns its sequence number."""
        self._seq = seq if seq is not None else self._seq + 1
        await self.ws.send(pack_frame(Kind.JPEG, self._seq, time.time() * 1000, _encode_jpeg(image)))
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
        seq = await self.send_frame(image)
        frame, faces = await self.next_frame(seq, timeout)
        return decode_image(frame), faces

    async def render(self, **params: Any) -> np.ndarray:
        """Render session: one image for an avatar, blendshapes and pose (see docs/protocol.md)."""
        await self.send({"type": "render", **params})
        await self.expect("rendered")
        while True:
            msg = await self.recv()
            if isinstance(msg, Frame):
                return decode_image(msg)

    async def say(self, text: str, timeout: float = 120.0) -> Reply:
        """Employee session: ask and collect the whole answer (text, audio, visemes, frames)."""
        await self.send({"type": "say", "text": text})
        return await self._collect_reply(timeout)

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
