"""The avatar session: camera frames or tracking data in; rendered avatar frames, weights and VMC out.

Per input: track (worker thread) → retarget with a Rig → render on the render thread (the one GL
context) → encode (worker thread). ``pixels: false`` skips rendering entirely: XR clients that animate
their own avatar get ARKit weights + head pose only (~0.1 KB binary or ~1 KB JSON per frame).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import ConfigError
from .assets import check_avatar_name
from .base import Session
from .channels import check_channel
from .media import decode_jpeg, encode_rgba, parse_color
from .options import SCHEMAS
from .protocol import Frame, Kind, ProtocolError, pack_frame
from .vmc import VMCSender

AVATAR_OPTIONS = set(SCHEMAS["avatar"])  # declared once, in options.py


class AvatarSession(Session):
    kind = "avatar"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rig = None
        self._avatar = None
        self._vmc: VMCSender | None = None
        self._calibrate_next = False
        self._t0 = time.monotonic() - self.state.clock_s  # a resumed rig's idle motion goes on, no jump

    # ----------------------------------------------------------------------------------- configuration
    async def _configure(self, opts: dict[str, Any]) -> None:
        from ..avatar.rig import EXPRESSIONS, Rig

        unknown = sorted(set(opts) - AVATAR_OPTIONS - {"type"})
        if unknown:
            raise ProtocolError("unknown_field", f"avatar options: unknown field(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(AVATAR_OPTIONS))}")
        o = self.state.options
        if "channel" in opts:
            o["channel"] = check_channel(opts["channel"])
        if "size" in opts:
            size = opts["size"]
            if not isinstance(size, int) or isinstance(size, bool) or not 64 <= size <= 1024:
                raise ProtocolError("bad_field", f"size: pixels within 64..1024, got {size!r}")
            o["size"] = size
        if "background" in opts:
            o["background"] = parse_color(opts["background"], "background")
        for k in ("alpha", "pixels"):
            if k in opts:
                o[k] = bool(opts[k])
        if "weights" in opts:
            w = opts["weights"]
            if w not in (False, "json", "binary"):
                raise ProtocolError("bad_field", 'weights: false, "json" or "binary"')
            o["weights"] = w
        if "expression" in opts:
            if opts["expression"] not in EXPRESSIONS:
                raise ProtocolError("bad_field", f"expression: one of {', '.join(EXPRESSIONS)}")
            o["expression"] = opts["expression"]
        if "vmc" in opts:
            v = opts["vmc"]
            if self._vmc is not None:
                self._vmc.close()
                self._vmc = None
            if v is not None:
                if not isinstance(v, dict) or set(v) - {"host", "port"}:
                    raise ProtocolError("bad_field", 'vmc: {"host": "127.0.0.1", "port": 39539} or null')
                host, port = v.get("host", "127.0.0.1"), v.get("port", 39539)
                if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) \
                        or not 1 <= port <= 65535:
                    raise ProtocolError("bad_field", "vmc: host is a string, port 1..65535")
                # UDP goes to loopback or where the operator allows, to the address checked here
                address = await self.engine.run(self.engine.vmc_policy.check, host, port, io=True)
                self._vmc = VMCSender(address, port)
            o["vmc"] = v
        if opts.get("calibrate"):
            self._calibrate_next = True
        if "avatar" in opts or self._avatar is None:
            name = opts.get("avatar", o.get("avatar", "default"))
            try:
                name = check_avatar_name(name, self.brand_access)  # uploads: only the session's own brand's
            except ConfigError as exc:
                raise ProtocolError("bad_field", str(exc)) from None
            if o.get("pixels", True):
                self._avatar = await self.engine.run(self.engine.avatar, name, self.brand_access, io=True)
            o["avatar"] = name
        if self._rig is None:
            self._rig = Rig(self._avatar)
            cal = self.state.calibration
            if cal:
                self._rig.neutral.update(cal["blendshapes"])
                self._rig.neutral_pose = tuple(cal["pose"])
        self._rig.set_expression(o.get("expression", "neutral"))

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        o = self.state.options
        for k, v in {"size": 384, "alpha": True, "background": None, "pixels": True, "weights": False,
                     "quality": 85}.items():
            o.setdefault(k, v)
        await self._configure({**{k: v for k, v in o.items() if k in ("avatar", "vmc", "channel")}, **options})
        return {"options": {k: v for k, v in o.items()}}

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "config":
            await self._configure({k: v for k, v in msg.items() if k != "type"})
            await self.out.control({"type": "configured", "options": self.state.options})
        elif msg["type"] == "tracking":
            self.state.frames_in += 1
            self.enqueue(self._tracking_state(msg))  # validated now, rendered by the worker: latest wins
        else:
            await super().on_message(msg)

    # ------------------------------------------------------------------------------------------ driving
    def _track(self, payload: bytes, t: float):
        faces = self.track(1, decode_jpeg(payload), t)
        return faces[0] if faces else None

    async def process(self, frame: Frame | tuple) -> None:
        if isinstance(frame, tuple):  # ("tracking", AvatarState, seq, timestamp)
            _, state, seq, timestamp = frame
            await self._emit(state, seq, timestamp, tracked=True)
            return
        face = await self.engine.run(self._track, frame.payload, frame.timestamp / 1000.0)
        t = time.monotonic() - self._t0
        if face is None:
            state = self._rig.idle(t)  # nobody in view: the avatar stays alive instead of freezing
        else:
            if self._calibrate_next:
                self._rig.calibrate(face)
                self.state.calibration = {"blendshapes": dict(self._rig.neutral),
                                          "pose": list(self._rig.neutral_pose)}
                self._calibrate_next = False
            state = self._rig.from_face(face, t)
        await self._emit(state, frame.seq, frame.timestamp, tracked=face is not None)

    def _tracking_state(self, msg: dict[str, Any]) -> tuple:
        from ..avatar.rig import AvatarState
        from ..tracking.arkit import ARKIT_NAMES

        bs = msg.get("blendshapes") or {}
        bad = sorted(set(bs) - set(ARKIT_NAMES))
        if bad:
            raise ProtocolError("bad_field", f"tracking.blendshapes: unknown ARKit name(s) {', '.join(bad[:5])}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bs.values()):
            raise ProtocolError("bad_field", "tracking.blendshapes: values must be numbers 0..1")
        pose = msg.get("pose") or {}
        if set(pose) - {"yaw", "pitch", "roll"} or not all(isinstance(v, int | float) for v in pose.values()):
            raise ProtocolError("bad_field", 'tracking.pose: {"yaw": deg, "pitch": deg, "roll": deg}')
        weights = dict.fromkeys(ARKIT_NAMES, 0.0)
        weights.update({k: float(np.clip(v, 0, 1)) for k, v in bs.items()})
        ypr = tuple(float(np.clip(pose.get(k, 0.0), -90, 90)) for k in ("yaw", "pitch", "roll"))
        head, neck = self._rig._split(ypr)
        state = AvatarState(weights, head, neck, (0.0, 0.0), float(msg.get("t", 0.0)))
        return ("tracking", state, self.state.frames_in, float(msg.get("t", 0.0)) * 1000.0)

    async def _emit(self, state, seq: int, timestamp: float, tracked: bool) -> None:
        from ..tracking.arkit import ARKIT_NAMES

        o = self.state.options
        ypr = state.total_rotation
        if self._vmc is not None:
            self._vmc.send(state.blendshapes, *ypr)
        if o.get("weights") == "json":
            await self.out.control({"type": "weights", "seq": seq, "t": timestamp, "tracked": tracked,
                                    **state.to_json(), "pose": {"yaw": ypr[0], "pitch": ypr[1], "roll": ypr[2]}})
        elif o.get("weights") == "binary":
            vec = np.array([state.blendshapes.get(k, 0.0) for k in ARKIT_NAMES] + list(ypr), "<f2")
            packed = pack_frame(Kind.WEIGHTS, seq, timestamp, vec.tobytes())
            await self.out.media(packed)
            if not o.get("pixels", True):  # watchers (the OBS page) draw the avatar themselves
                await self.engine.channels.publish(self.channel(o.get("channel")), packed)
        if o.get("pixels", True) and self._avatar is not None:
            bg = None if o.get("alpha", True) else (o.get("background") or (0, 0, 0))
            if o.get("background") is not None:
                bg = o["background"]
            rgba = await self.engine.render.render_async(self._avatar, state, size=o["size"], background=bg)
            data, kind = await self.engine.run(encode_rgba, rgba, "webp" if bg is None else "jpeg",
                                               o.get("quality", 85))
            packed = pack_frame(kind, seq, timestamp, data, 1 if kind == Kind.WEBP else 0)
            if await self.out.media(packed):
                self.state.frames_out += 1
            await self.engine.channels.publish(self.channel(o.get("channel")), packed)
        else:
            self.state.frames_out += 1

    def checkpoint(self) -> dict[str, Any]:
        self.state.clock_s = round(time.monotonic() - self._t0, 3)
        return super().checkpoint()

    async def close(self) -> None:
        await super().close()
        if self._vmc is not None:
            self._vmc.close()
