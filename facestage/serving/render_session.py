"""The render session: ``render`` requests in, one image each out (the WebSocket twin of POST /v1/render)."""

from __future__ import annotations

import time
from typing import Any

from .base import Session
from .media import render_image, render_params
from .protocol import Frame, ProtocolError, pack_frame


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
