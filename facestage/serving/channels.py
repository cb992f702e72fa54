"""Named fan-out of a session's output to watchers, scoped per credential (brand A cannot watch brand B)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .protocol import ProtocolError

if TYPE_CHECKING:
    from .base import Outbox


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
