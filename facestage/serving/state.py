"""Live session state in one checkpointable object, and the latest-frame-wins slot.

Everything a session needs to resume elsewhere (another process, a Ray Serve replica) is in
``SessionState``: options, the effect chain config, rig calibration, dialogue memory, counters. Caches
(trackers, encoders, the GL context) are rebuilt from it lazily.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from .protocol import SESSIONS, ProtocolError

T = TypeVar("T")
STATE_VERSION = 1


@dataclass
class SessionState:
    session: str
    options: dict[str, Any] = field(default_factory=dict)
    effects: dict[str, Any] = field(default_factory=dict)  # the validated effect chain config
    calibration: dict[str, Any] | None = None  # rig neutral: {"blendshapes": {...}, "pose": [y, p, r]}
    brand: str | None = None
    dialogue: dict[str, Any] | None = None  # Employee session memory (turns, last topic)
    tracker: dict[str, Any] | None = None  # face ids, One-Euro filters, per-face neutrals (tracker.checkpoint())
    clock_s: float = 0.0  # the session's animation clock (the avatar rig's idle motion continues from here)
    session_id: str = ""
    frames_in: int = 0
    frames_out: int = 0
    dropped_in: int = 0  # replaced in the latest-frame slot before being processed
    dropped_out: int = 0  # processed but not sent because the client was not reading
    replies: int = 0

    def to_dict(self) -> dict[str, Any]:
        # ``tracker`` is shared, not copied: the session replaces it with a new dict from the tracker and never
        # changes one in place, and it is most of the state (~55 KB of filter arrays: copying it cost 6 ms).
        out = {"version": STATE_VERSION}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v if f.name == "tracker" else copy.deepcopy(v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ProtocolError("bad_state", f"resume: a state object of version {STATE_VERSION} is expected")
        if data.get("session") not in SESSIONS:
            raise ProtocolError("bad_state", f"resume: unknown session {data.get('session')!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known - {"version"})
        if unknown:
            raise ProtocolError("bad_state", f"resume: unknown field(s) {', '.join(unknown)}")
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})


class LatestSlot(Generic[T]):
    """A one-item queue where a new item replaces an unconsumed one: the newest camera frame wins.

    A slow pipeline therefore shows the freshest frame instead of falling further behind, and memory
    is one frame per session whatever the input rate.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._event = asyncio.Event()
        self.replaced = 0
        self.closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; True when it replaced one that was never taken."""
        replaced = self._item is not None
        if replaced:
            self.replaced += 1
        self._item = item
        self._event.set()
        return replaced

    async def get(self) -> T | None:
        """The newest item, waiting for one; None once closed."""
        while self._item is None and not self.closed:
            self._event.clear()
            await self._event.wait()
        item, self._item = self._item, None
        return item

    def close(self) -> None:
        self.closed = True
        self._item = None
        self._event.set()
