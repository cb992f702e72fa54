"""The watch session: receives what another session publishes on a channel (OBS browser sources)."""

from __future__ import annotations

from typing import Any

from .base import Session
from .channels import check_channel
from .protocol import Frame, ProtocolError


class WatchSession(Session):
    """Receives the media another session publishes on a channel (read-only; for OBS browser sources)."""

    kind = "watch"

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - {"channel"})
        if unknown:
            raise ProtocolError("unknown_field", f"watch options: unknown field(s) {', '.join(unknown)}")
        channel = check_channel(options.get("channel", "main"))
        self.state.options["channel"] = channel
        self.engine.channels.watch(self.channel(channel) or "", self.out)
        return {"channel": channel}

    async def on_frame(self, frame: Frame) -> None:
        raise ProtocolError("unsupported", "a watch session only receives")

    async def close(self) -> None:
        self.engine.channels.unwatch(self.channel(self.state.options.get("channel")) or "", self.out)
        await super().close()
