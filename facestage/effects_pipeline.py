"""The one effects flow: decode → track → chain → encode, with each frame's timestamp carried through.

The server's effects session, ``facestage effects`` (CLI) and the benches all run frames through
:class:`EffectsPipeline`. The core is pure: the decode and encode edges are injected callables (JPEG bytes
for the server, already-decoded frames for the CLI), the tracker is anything with ``track(img, t)``, and
the chain anything with ``apply(img, faces)`` (``facestage.effects.EffectChain``). One pipeline serves one
stream at a time: the tracker's ids and One-Euro filters follow that stream's clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .errors import InputError
from .tracking.types import Face

# How many recent frame timestamps a pipeline keeps for inspection (stats, tests): a few seconds of video.
TIMESTAMP_HISTORY = 256


class Tracker(Protocol):
    def track(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> list[Face]: ...


class Chain(Protocol):
    def apply(self, frame_bgr: np.ndarray, faces: list[Face]) -> np.ndarray: ...


@dataclass(slots=True)
class FrameResult:
    """One processed frame: output image (and encoded bytes when an encoder is set), faces, timings (ms)."""

    seq: int
    timestamp_s: float
    image: np.ndarray
    faces: list[Face]
    data: bytes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


class EffectsPipeline:
    """decode → track → chain → encode for one stream.

    ``track``: a tracker object (``.track(img, t)``) or the callable itself (the server passes its
    session's pool-safe ``track``). ``chain``: ``None`` or an empty chain leaves frames untouched.
    ``decode``: turns an input (e.g. JPEG bytes) into a BGR uint8 image; ``None`` means inputs already are.
    ``encode``: turns the output image into bytes (``FrameResult.data``); ``None`` skips encoding.
    """

    def __init__(self, track: Tracker | Callable[[np.ndarray, float], list[Face]], chain: Chain | None = None,
                 decode: Callable[[Any], np.ndarray] | None = None,
                 encode: Callable[[np.ndarray], bytes] | None = None) -> None:
        # The tracker object when one was given (checkpoints, tests read its state); None for a callable.
        self.tracker = track if hasattr(track, "track") else None
        self._track = track.track if hasattr(track, "track") else track  # type: ignore[union-attr]
        self.chain = chain
        self.decode = decode
        self.encode = encode
        self.timestamps: deque[float] = deque(maxlen=TIMESTAMP_HISTORY)
        self.frames = 0

    def process(self, item: Any, timestamp_s: float, seq: int | None = None, effects: bool = True) -> FrameResult:
        """Run one frame taken at ``timestamp_s`` (seconds on the stream's own clock).

        ``effects=False`` tracks without applying the chain (e.g. a session with no effects configured)."""
        t = float(timestamp_s)
        if not np.isfinite(t):
            raise InputError(f"frame timestamp must be a finite number of seconds, got {timestamp_s!r}")
        t0 = time.perf_counter()
        img = self.decode(item) if self.decode is not None else item
        t1 = time.perf_counter()
        faces = self._track(img, t)
        t2 = time.perf_counter()
        out = self.chain.apply(img, faces) if (self.chain is not None and effects) else img
        t3 = time.perf_counter()
        data = self.encode(out) if self.encode is not None else None
        t4 = time.perf_counter()
        self.timestamps.append(t)
        seq = self.frames if seq is None else seq
        self.frames += 1
        timings = {"decode": (t1 - t0) * 1000, "track": (t2 - t1) * 1000, "effects": (t3 - t2) * 1000,
                   "encode": (t4 - t3) * 1000}
        return FrameResult(seq=seq, timestamp_s=t, image=out, faces=faces, data=data, timings_ms=timings)

    def run(self, frames: Iterable[tuple[Any, float]]) -> Iterator[FrameResult]:
        """Process ``(input, timestamp_s)`` pairs in order (a video file, a clip in memory)."""
        for i, (item, t) in enumerate(frames):
            yield self.process(item, t, seq=i)


def jpeg_codec(quality: int = 80) -> tuple[Callable[[bytes], np.ndarray], Callable[[np.ndarray], bytes]]:
    """The server's edges: (decode JPEG bytes with size checks, encode JPEG at ``quality``)."""
    from .serving.media import decode_jpeg, encode_jpeg

    return decode_jpeg, lambda img: encode_jpeg(img, quality)
