"""The effects session: camera JPEG in, tracked and beautified JPEG out (+ face data on request)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .assets import NamedAssets
from .base import Outbox, Session
from .channels import check_channel
from .media import decode_jpeg, encode_jpeg
from .protocol import Frame, Kind, ProtocolError, pack_frame
from .state import SessionState

if TYPE_CHECKING:
    from .engine import Engine

MAX_FACES = 4  # the most faces an effects session tracks (and its default)


class EffectsSession(Session):
    """Camera JPEG in → tracked, effects applied → JPEG out (+ face data on request). Config changes live."""

    kind = "effects"

    def __init__(self, engine: Engine, out: Outbox, state: SessionState) -> None:
        super().__init__(engine, out, state)
        self._flow = None  # the EffectsPipeline, made on the first frame (on a worker thread)
        self._pending: dict | None = None
        self._pending_faces: dict[int, dict] | None = None

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
            effects = normalize_config(cfg)  # ConfigError names the bad effect/param
            resolved = self._assets().resolve_config(effects)  # names only; refused before anything is stored
            self.state.effects, self._pending = effects, resolved
        if "face_effects" in msg:
            self._configure_faces(msg["face_effects"])

    def _configure_faces(self, spec: Any) -> None:
        """``{"face id": chain config or preset name, ...}``: those faces get effects of their own (a group
        scene: each person their look); ``null`` or ``{}`` clears them. Checked whole before anything changes."""
        from ..effects import load_preset
        from ..effects.chain import check_face_configs

        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ProtocolError("bad_field", 'face_effects: an object {"FACE_ID": chain or preset name}')
        configs: dict[int, dict] = {}
        for key, value in spec.items():
            if not (isinstance(key, str) and key.isdigit() and len(key) <= 6):
                raise ProtocolError("bad_field", f"face_effects: keys are face ids as in the faces data, got {key!r}")
            configs[int(key)] = load_preset(value) if isinstance(value, str) else value
        configs = check_face_configs(configs)  # the checks the live chain makes (count, ids, frame-wide)
        resolved = {fid: self._assets().resolve_config(cfg) for fid, cfg in configs.items()}
        self.state.options["face_effects"] = {str(fid): cfg for fid, cfg in configs.items()}
        self._pending_faces = resolved

    def _assets(self) -> NamedAssets:
        return NamedAssets(self.engine.upload_dir, self.brand_access)

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        allowed = {"effects", "preset", "faces", "landmarks", "quality", "channel", "max_faces", "face_effects"}
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
            self._pending = self._assets().resolve_config(self.state.effects)  # empty chain
        return {"effects": self.state.effects}

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] != "config":
            await super().on_message(msg)
        allowed = {"type", "effects", "preset", "faces", "landmarks", "quality", "channel", "face_effects"}
        unknown = sorted(set(msg) - allowed)
        if unknown:
            raise ProtocolError("unknown_field", f"config for an effects session: unknown field(s) "
                                f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed - {'type'}))}")
        self._configure(msg)
        await self.out.control({"type": "configured", "effects": self.state.effects})

    def _pipeline(self):
        from ..effects import EffectChain
        from ..effects_pipeline import EffectsPipeline

        if self._flow is None:
            max_faces = self.state.options.get("max_faces", MAX_FACES)
            self._flow = EffectsPipeline(
                lambda img, t: self.track(max_faces, img, t), EffectChain.from_config({}), decode=decode_jpeg,
                # read per frame: a config message may change the quality mid-stream
                encode=lambda img: encode_jpeg(img, self.state.options.get("quality", 80)))
        return self._flow

    def _run(self, payload: bytes, t: float) -> tuple[bytes, list[dict], tuple[int, int]]:
        # Runs on a worker thread; one frame of a session at a time, so the tracker and chain are not shared.
        flow = self._pipeline()
        if self._pending is not None:
            flow.chain.update(self._pending)
            self._pending = None
        if self._pending_faces is not None:
            flow.chain.set_face_configs(self._pending_faces)
            self._pending_faces = None
        res = flow.process(payload, t, effects=bool(self.state.effects))
        face_json = ([f.to_json(landmarks=bool(self.state.options.get("landmarks"))) for f in res.faces]
                     if self.state.options.get("faces") else [])
        return res.data or b"", face_json, res.size

    async def process(self, frame: Frame) -> None:
        data, faces, (w, h) = await self.engine.run(self._run, frame.payload, frame.timestamp / 1000.0)
        if self.state.options.get("faces"):
            await self.out.control({"type": "faces", "seq": frame.seq, "width": w, "height": h, "faces": faces})
        packed = pack_frame(Kind.JPEG, frame.seq, frame.timestamp, data)
        if await self.out.media(packed):
            self.state.frames_out += 1
        await self.engine.channels.publish(self.channel(self.state.options.get("channel")), packed)
