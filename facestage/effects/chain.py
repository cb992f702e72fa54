"""EffectChain: a validated JSON-like config of effects, applied per frame with temporal state."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..tracking.types import Face
from .base import REGISTRY, Effect, apply_warps, effect_order, load_builtin
from .context import FrameContexts, union_margins
from .temporal import LandmarkStabilizer

PRESET_DIR = Path(__file__).resolve().parent.parent / "assets" / "presets"


def list_effects() -> dict[str, dict[str, dict]]:
    """{effect: {param: {"type", "min", "max", "default", "description"[, "choices"]}}}."""
    load_builtin()
    names = sorted(REGISTRY, key=lambda n: (effect_order(n), n))
    return {n: {p: spec.spec() for p, spec in REGISTRY[n].params.items()} for n in names}


def effect_descriptions() -> dict[str, str]:
    load_builtin()
    return {n: cls.description for n, cls in REGISTRY.items()}


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> dict:
    """The chain config of a shipped preset; ConfigError for an unknown name."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    data = json.loads(path.read_text())
    normalize_config(data)  # presets are validated like any user config
    return data


def normalize_config(config: Any) -> dict[str, dict[str, Any]]:
    """Validate a chain config and fill defaults. ConfigError names the bad effect/param and the range."""
    load_builtin()
    if not isinstance(config, dict):
        raise ConfigError(f"an effect chain is a JSON object {{effect: {{param: value}}}}, got {type(config).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(config, key=lambda n: (effect_order(n), str(n))):
        params = config[name]
        if name not in REGISTRY:
            raise ConfigError(f"unknown effect {name!r}; available: {', '.join(sorted(REGISTRY))}")
        if params is False:  # switched off
            continue
        if params is None or params is True:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(f"effect {name!r}: parameters must be an object {{param: value}}, got {params!r}")
        decl = REGISTRY[name].params
        norm: dict[str, Any] = {}
        for key, value in params.items():
            if key not in decl:
                raise ConfigError(f"effect {name!r} has no parameter {key!r}; parameters: {', '.join(decl)}")
            norm[key] = decl[key].validate(value, f"{name}.{key}")
        out[name] = {k: norm.get(k, spec.default) for k, spec in decl.items()}
    return out


def merge_configs(*configs: dict | None) -> dict:
    """Later configs override earlier ones param by param (preset, then --config, then --set).

    ``{"effect": false}`` in a later config removes that effect; ``true``/``null`` means defaults.
    """
    out: dict[str, dict] = {}
    for cfg in configs:
        if cfg is None:
            continue
        if not isinstance(cfg, dict):
            raise ConfigError(f"an effect chain is a JSON object {{effect: {{param: value}}}}, got {cfg!r}")
        for name, params in cfg.items():
            if params is False:
                out.pop(name, None)
                continue
            if params is None or params is True:
                params = {}
            if not isinstance(params, dict):
                raise ConfigError(f"effect {name!r}: parameters must be an object {{param: value}}, got {params!r}")
            out.setdefault(name, {}).update(params)
    return out


MAX_FACE_CHAINS = 16  # per-face chains a stream may hold (a group scene: one per person, with room to spare)


def check_face_configs(configs: Any) -> dict[int, dict[str, dict[str, Any]]]:
    """Validated per-face chain configs ``{face id: config}``: at most MAX_FACE_CHAINS faces, tracker ids,
    each config normalised, no frame-wide effect (those act on the whole frame and belong to the chain)."""
    if not isinstance(configs, dict) or len(configs) > MAX_FACE_CHAINS:
        raise ConfigError(f"per-face effects: an object {{face id: chain}} of at most {MAX_FACE_CHAINS} faces")
    norm: dict[int, dict] = {}
    for fid, config in configs.items():
        if not isinstance(fid, int) or isinstance(fid, bool) or fid < 0:
            raise ConfigError(f"per-face effects: face ids are the tracker's ids (integers >= 0), got {fid!r}")
        cfg = normalize_config(config)
        wide = [n for n, prm in cfg.items() if REGISTRY[n]().frame_wide(prm)]
        if wide:
            raise ConfigError(f"per-face effects for face {fid}: {', '.join(wide)} act(s) on the whole frame; "
                              "set it on the chain, not per face")
        norm[fid] = cfg
    return norm


class EffectChain:
    """Effects applied in a fixed order (background, beauty, age, makeup, paint, sticker, props, lut).

    Temporal state lives here: landmark stabilisation keyed by face id, and one ``state`` dict per
    effect that survives ``update`` as long as the effect stays in the chain.

    Faces can have chains of their own (:meth:`set_face_configs`, by tracker face id): such a face gets
    its own face effects in place of the chain's, and the frame-wide effects (background, a whole-frame
    LUT) still come from the chain, once, after every face's effects.
    """

    def __init__(self, config: dict | None = None) -> None:
        self._config: dict[str, dict[str, Any]] = {}
        self._effects: dict[str, Effect] = {}
        self._states: dict[str, dict] = {}
        self._stabilizer = LandmarkStabilizer()
        self._face_chains: dict[int, EffectChain] = {}
        self.update(config or {})

    @classmethod
    def from_config(cls, config: dict) -> EffectChain:
        return cls(config)

    @classmethod
    def from_preset(cls, name: str) -> EffectChain:
        return cls(load_preset(name))

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self._config)

    def update(self, config: dict) -> None:
        """Replace the config (validated first: a bad config leaves the chain untouched)."""
        norm = normalize_config(config)
        for name in list(self._effects):
            if name not in norm:
                del self._effects[name]
                self._states.pop(name, None)
        for name in norm:
            if name not in self._effects:
                self._effects[name] = REGISTRY[name]()
                self._states[name] = {}
        self._config = norm

    def reset(self) -> None:
        """Forget temporal state (e.g. on a scene cut or a new video)."""
        self._stabilizer = LandmarkStabilizer()
        self._states = {name: {} for name in self._effects}
        for chain in self._face_chains.values():
            chain.reset()

    @property
    def face_configs(self) -> dict[int, dict[str, dict[str, Any]]]:
        return {fid: chain.config for fid, chain in self._face_chains.items()}

    def set_face_configs(self, configs: dict[int, dict]) -> None:
        """Give these face ids chains of their own (replacing earlier ones; ``{}`` clears them). Each config
        is validated like a chain's; its frame-wide effects are refused (they act on the whole frame, so they
        belong to the chain). A bad config leaves every chain as it was."""
        norm = check_face_configs(configs)
        chains = {}
        for fid, cfg in norm.items():
            chain = self._face_chains.get(fid) or EffectChain()
            chain.update(cfg)
            chains[fid] = chain
        self._face_chains = chains

    def apply(self, frame_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
        """A new BGR uint8 frame with every active effect applied to every face (faces with chains of
        their own get theirs instead)."""
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise InputError("EffectChain.apply expects a BGR uint8 image of shape (H, W, 3)")
        out = np.ascontiguousarray(frame_bgr, dtype=np.uint8).copy()
        if self._face_chains:
            # each face with its own chain first (face effects only), then the chain's faces and the
            # frame-wide effects over everything, so a whole-frame grade lands on every face alike
            for face in faces:
                own = self._face_chains.get(face.id)
                if own is not None:
                    out = own._apply(out, [face])
            faces = [f for f in faces if f.id not in self._face_chains]
        return self._apply(out, faces)

    def _apply(self, out: np.ndarray, faces: list[Face]) -> np.ndarray:
        # Working copies: stabilised landmarks, and warping effects move them for the effects after them.
        work = [replace(f, landmarks=self._stabilizer(f.id, f.landmarks)) for f in faces]
        self._stabilizer.end_frame({f.id for f in faces})
        active = [(name, effect, self._config[name]) for name, effect in self._effects.items()
                  if effect.is_active(self._config[name])]
        # Every effect's reshaping summed into one field per face: one remap instead of one per effect.
        warpers = [(effect, params) for _, effect, params in active if effect.warps(params)]
        if warpers and work:
            apply_warps(out, work, warpers)
        # One context per face (shared ROI, masks, work image) for every effect that reads one; fused
        # effects (beauty, age) add their deltas to it and the sum is written back once, before the next
        # effect that needs the frame's pixels.
        margins = [effect.roi_margins for _, effect, _ in active if effect.roi_margins is not None]
        ctxs = FrameContexts(out, work, union_margins(margins)) if margins and work else None
        pending: list[tuple[Effect, dict, dict]] = []

        def write_back() -> None:
            if ctxs is None or not pending:
                return
            ctxs.flush()
            for eff, prm, st in pending:
                for ctx in ctxs:
                    eff.finish(out, ctx, prm, st)
                eff.end_frame(work, st)
            pending.clear()

        for name, effect, params in active:
            if effect.needs_faces and not work:
                continue
            state = self._states[name]
            if ctxs is not None and effect.roi_margins is not None:
                ctxs.bind(out)
                if effect.fused:
                    for ctx in ctxs:
                        effect.accumulate(ctx, params, state)
                    pending.append((effect, params, state))
                    continue
                write_back()
                out = effect.render_with(out, ctxs, params, state)
                continue
            write_back()
            out = effect.render(out, work, params, state)
        write_back()
        return out
