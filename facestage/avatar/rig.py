"""Retargeting tracker output to an avatar, idle life when nobody drives it, and named expressions.

``Rig.from_face`` turns a tracked ``Face`` (52 ARKit scores + head pose) into an ``AvatarState``:
the neutral-face calibration is subtracted and rescaled per channel, per-channel gains applied, the head
rotation split between neck and head, and the gaze read from the eyeLook channels. ``Rig.idle(t)`` is a
pure function of time (seeded): blinks at human rates, small saccades, breathing sway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..speech.visemes import VISEME_TO_ARKIT
from ..tracking.arkit import ARKIT_NAMES
from .eyes import GAZE_DEG

EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.85, "mouthSmileRight": 0.85, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5,
              "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3, "jawOpen": 0.12, "browInnerUp": 0.1},
    "surprised": {"eyeWideLeft": 0.9, "eyeWideRight": 0.9, "browInnerUp": 0.9, "browOuterUpLeft": 0.8,
                  "browOuterUpRight": 0.8, "jawOpen": 0.45, "mouthFunnel": 0.3},
    "sad": {"browInnerUp": 0.8, "mouthFrownLeft": 0.7, "mouthFrownRight": 0.7, "mouthShrugLower": 0.35,
            "eyeLookDownLeft": 0.25, "eyeLookDownRight": 0.25, "eyeSquintLeft": 0.15, "eyeSquintRight": 0.15},
    "angry": {"browDownLeft": 0.9, "browDownRight": 0.9, "eyeSquintLeft": 0.45, "eyeSquintRight": 0.45,
              "noseSneerLeft": 0.5, "noseSneerRight": 0.5, "mouthPressLeft": 0.5, "mouthPressRight": 0.5,
              "jawForward": 0.2},
    "thinking": {"browDownLeft": 0.35, "browOuterUpRight": 0.55, "eyeLookUpLeft": 0.45, "eyeLookUpRight": 0.45,
                 "eyeLookOutLeft": 0.3, "eyeLookInRight": 0.3, "mouthPucker": 0.25, "mouthLeft": 0.35,
                 "mouthPressLeft": 0.2},
}
# Oculus' 15 visemes (the lip-sync vocabulary of speech engines) as ARKit mouth shapes: one table, the one
# the speech timeline (``speech.visemes``) is tuned with, so talk, the server and the CLI agree.
VISEMES: dict[str, dict[str, float]] = VISEME_TO_ARKIT
MOUTH_CHANNELS = frozenset(k for shapes in VISEMES.values() for k in shapes)


def viseme_blendshapes(visemes: dict[str, float]) -> dict[str, float]:
    """Blend viseme weights (e.g. a co-articulated {"aa": 0.7, "oh": 0.3}) into ARKit mouth shapes."""
    out: dict[str, float] = {}
    for name, w in visemes.items():
        shapes = VISEMES.get(name)
        if shapes is None:
            raise ConfigError(f"unknown viseme {name!r}; Oculus visemes: {', '.join(VISEMES)}")
        for k, v in shapes.items():
            out[k] = out.get(k, 0.0) + float(w) * v
    return {k: float(np.clip(v, 0.0, 1.0)) for k, v in out.items()}


BREATH_CHEST_DEG = 0.8  # upper-chest pitch at the top of a breath
WEIGHT_SHIFT_DEG = 0.7  # upper-chest roll of a slow weight shift


# Head pose that goes with an expression (yaw, pitch, roll) in degrees.
EXPRESSION_POSE: dict[str, tuple[float, float, float]] = {
    "thinking": (6.0, 5.0, 6.0), "sad": (0.0, -6.0, 0.0), "surprised": (0.0, 3.0, 0.0), "angry": (0.0, -3.0, 0.0),
}


@dataclass
class AvatarState:
    """Everything a renderer (or a remote three-vrm client) needs for one frame."""

    blendshapes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ARKIT_NAMES, 0.0))
    head_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # yaw, pitch, roll of the head on the neck
    neck_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gaze: tuple[float, float] = (0.0, 0.0)  # degrees: + towards the avatar's left, + up
    t: float = 0.0
    spine_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # upper chest: breathing and weight shifts

    @property
    def total_rotation(self) -> tuple[float, float, float]:
        return tuple(float(a + b) for a, b in zip(self.head_rotation, self.neck_rotation, strict=True))

    def to_json(self) -> dict:
        """Compact animation frame (~1 KB JSON, ~0.2 KB as float16) for clients that render themselves."""
        return {"t": round(self.t, 4), "head": [round(v, 2) for v in self.head_rotation],
                "neck": [round(v, 2) for v in self.neck_rotation], "gaze": [round(v, 2) for v in self.gaze],
                "blendshapes": {k: round(float(v), 3) for k, v in self.blendshapes.items() if v > 1e-3}}


def gaze_to_blendshapes(h_deg: float, v_deg: float) -> dict[str, float]:
    """Gaze angles to the eight eyeLook channels (both eyes look the same way)."""
    h, v = np.clip(h_deg / GAZE_DEG, -1, 1), np.clip(v_deg / GAZE_DEG, -1, 1)
    out = dict.fromkeys(("eyeLookOutLeft", "eyeLookInRight", "eyeLookInLeft", "eyeLookOutRight",
                         "eyeLookUpLeft", "eyeLookUpRight", "eyeLookDownLeft", "eyeLookDownRight"), 0.0)
    if h > 0:
        out["eyeLookOutLeft"] = out["eyeLookInRight"] = float(h)
    else:
        out["eyeLookInLeft"] = out["eyeLookOutRight"] = float(-h)
    if v > 0:
        out["eyeLookUpLeft"] = out["eyeLookUpRight"] = float(v)
    else:
        out["eyeLookDownLeft"] = out["eyeLookDownRight"] = float(-v)
    return out


def blendshapes_to_gaze(bs: dict[str, float]) -> tuple[float, float]:
    g = bs.get
    h = 0.5 * (g("eyeLookOutLeft", 0) + g("eyeLookInRight", 0) - g("eyeLookInLeft", 0) - g("eyeLookOutRight", 0))
    v = 0.5 * (g("eyeLookUpLeft", 0) + g("eyeLookUpRight", 0) - g("eyeLookDownLeft", 0) - g("eyeLookDownRight", 0))
    return float(h * GAZE_DEG), float(v * GAZE_DEG)


class _Events:
    """A seeded, lazily extended schedule of events so ``idle(t)`` is a pure function of t."""

    def __init__(self, rng: np.random.Generator, gap: tuple[float, float]) -> None:
        self.rng, self.gap, self.times = rng, gap, [float(rng.uniform(0.3, gap[1]))]
        self.values: list[tuple[float, float]] = [self._value()]

    def _value(self) -> tuple[float, float]:
        return float(self.rng.normal(0, 4.0)), float(self.rng.normal(0, 2.5))

    def last_before(self, t: float) -> tuple[float, tuple[float, float]] | None:
        while self.times[-1] <= t:
            self.times.append(self.times[-1] + float(self.rng.uniform(*self.gap)))
            self.values.append(self._value())
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return (self.times[i], self.values[i]) if i >= 0 else None


class Rig:
    """Retargets faces to avatar states. One Rig per driven avatar (it keeps calibration and idle state)."""

    def __init__(self, avatar=None, gains: dict[str, float] | None = None, neck_share: float = 0.3,
                 seed: int = 0, blink_interval: tuple[float, float] = (1.8, 5.5)) -> None:
        self.avatar = avatar
        self.gains: dict[str, float] = dict.fromkeys(ARKIT_NAMES, 1.0)
        if gains:
            self.set_gains(gains)
        if not 0.0 <= neck_share <= 1.0:
            raise ConfigError("neck_share must be within 0..1")
        self.neck_share = neck_share
        self.neutral: dict[str, float] = dict.fromkeys(ARKIT_NAMES, 0.0)
        self.neutral_pose = (0.0, 0.0, 0.0)
        self.expression = "neutral"
        self.expression_strength = 1.0
        self._seed = int(seed)
        # One generator per track, so querying times in any order gives the same schedule.
        self._blinks = _Events(np.random.default_rng([seed, 1]), blink_interval)  # 11–33 a minute, like people
        self._saccades = _Events(np.random.default_rng([seed, 2]), (0.6, 2.4))
        self._phase = float(np.random.default_rng([seed, 3]).uniform(0, 2 * math.pi))

    # -- configuration -----------------------------------------------------------------------------
    def set_gains(self, gains: dict[str, float]) -> None:
        for k, v in gains.items():
            if k not in self.gains:
                raise ConfigError(f"unknown blendshape {k!r} in gains")
            if not 0.0 <= float(v) <= 5.0:
                raise ConfigError(f"gain for {k} must be within 0..5, got {v}")
            self.gains[k] = float(v)

    def set_expression(self, name: str, strength: float = 1.0) -> None:
        if name not in EXPRESSIONS:
            raise ConfigError(f"unknown expression {name!r}; choose one of {', '.join(EXPRESSIONS)}")
        self.expression, self.expression_strength = name, float(np.clip(strength, 0, 1))

    def checkpoint(self) -> dict:
        """Plain-data state (calibration, gains, expression, settings) to move a session between processes."""
        return {"gains": dict(self.gains), "neutral": dict(self.neutral), "neutral_pose": list(self.neutral_pose),
                "expression": self.expression, "strength": self.expression_strength,
                "neck_share": self.neck_share, "seed": self._seed}

    @classmethod
    def restore(cls, data: dict, avatar=None) -> Rig:
        rig = cls(avatar, gains=data.get("gains"), neck_share=float(data.get("neck_share", 0.3)),
                  seed=int(data.get("seed", 0)))
        rig.neutral.update({k: float(v) for k, v in data.get("neutral", {}).items() if k in rig.neutral})
        rig.neutral_pose = tuple(float(v) for v in data.get("neutral_pose", (0.0, 0.0, 0.0)))
        rig.set_expression(data.get("expression", "neutral"), float(data.get("strength", 1.0)))
        return rig

    def calibrate(self, face) -> None:
        """Take ``face`` as this person's neutral: its scores become zero and its pose straight ahead."""
        self.neutral = {k: float(face.blendshapes.get(k, 0.0)) for k in ARKIT_NAMES}
        self.neutral_pose = (float(face.pose.yaw), float(face.pose.pitch), float(face.pose.roll))

    # -- driving -----------------------------------------------------------------------------------
    def _split(self, ypr: tuple[float, float, float]) -> tuple[tuple, tuple]:
        neck = tuple(float(v * self.neck_share) for v in ypr)
        head = tuple(float(v - n) for v, n in zip(ypr, neck, strict=True))
        return head, neck

    def _overlay(self, bs: dict[str, float]) -> dict[str, float]:
        expr = EXPRESSIONS[self.expression]
        for k, v in expr.items():
            bs[k] = max(bs.get(k, 0.0), v * self.expression_strength)
        return bs

    def from_face(self, face, t: float = 0.0) -> AvatarState:
        bs = {}
        for k in ARKIT_NAMES:
            n = self.neutral[k]
            raw = float(face.blendshapes.get(k, 0.0))
            v = (raw - n) / max(1.0 - n, 1e-3)  # rescale so the calibrated neutral maps to 0 and 1 stays 1
            bs[k] = float(np.clip(v * self.gains[k], 0.0, 1.0))
        pose = (face.pose.yaw - self.neutral_pose[0], face.pose.pitch - self.neutral_pose[1],
                face.pose.roll - self.neutral_pose[2])
        head, neck = self._split(pose)
        return AvatarState(self._overlay(bs), head, neck, blendshapes_to_gaze(bs), float(t))

    def idle(self, t: float) -> AvatarState:
        """Alive but undriven: blinks, saccades and breathing sway (deterministic in t for a seed)."""
        bs = dict.fromkeys(ARKIT_NAMES, 0.0)
        blink = 0.0
        last = self._blinks.last_before(t)
        if last is not None:
            dt = t - last[0]
            # 80 ms to close, 40 ms closed, 150 ms to open: the asymmetric profile of a real blink.
            if dt < 0.08:
                blink = dt / 0.08
            elif dt < 0.12:
                blink = 1.0
            elif dt < 0.27:
                blink = 1.0 - (dt - 0.12) / 0.15
        bs["eyeBlinkLeft"] = bs["eyeBlinkRight"] = float(blink)
        sac = self._saccades.last_before(t)
        gh, gv = sac[1] if sac else (0.0, 0.0)
        bs.update(gaze_to_blendshapes(gh, gv))
        breath = math.sin(2 * math.pi * 0.23 * t + self._phase)
        sway = (2.0 * math.sin(2 * math.pi * 0.07 * t + 1.3 * self._phase),
                1.2 * breath + 0.6 * math.sin(2 * math.pi * 0.11 * t),
                1.0 * math.sin(2 * math.pi * 0.05 * t + self._phase))
        base = EXPRESSION_POSE.get(self.expression, (0.0, 0.0, 0.0))
        ypr = tuple(b * self.expression_strength + s for b, s in zip(base, sway, strict=True))
        bs["jawOpen"] = 0.02 * (breath + 1)  # lips part slightly on the in-breath
        head, neck = self._split(ypr)
        # The chest lifts on the in-breath and the weight shifts slowly from foot to foot (a slight lean).
        spine = (0.0, BREATH_CHEST_DEG * breath, WEIGHT_SHIFT_DEG * math.sin(2 * math.pi * 0.03 * t + self._phase))
        return AvatarState(self._overlay(bs), head, neck, (gh, gv), float(t), spine)

    def frame(self, t: float, face=None, visemes: dict[str, float] | None = None,
              mouth: dict[str, float] | None = None) -> AvatarState:
        """The one puppet pipeline: every driver's frame is blended here and nowhere else.

        ``face`` (a tracked Face) drives pose, gaze and all 52 shapes after calibration and gains; without
        it the avatar idles (blinks, saccades, breathing, weight shifts). ``visemes`` (co-articulated viseme
        weights) or ``mouth`` (ARKit mouth weights from a speech timeline) then take over the mouth
        channels. The named expression is overlaid last, so a smile survives speech.
        """
        state = self.from_face(face, t) if face is not None else self.idle(t)
        if visemes or mouth:
            shapes = dict(viseme_blendshapes(visemes)) if visemes else {}
            for k, v in (mouth or {}).items():
                shapes[k] = max(shapes.get(k, 0.0), float(v))
            expr = EXPRESSIONS[self.expression]
            for k in MOUTH_CHANNELS | set(shapes):
                if k in state.blendshapes:
                    state.blendshapes[k] = float(np.clip(max(shapes.get(k, 0.0),
                                                             expr.get(k, 0.0) * self.expression_strength), 0, 1))
        return state

    def speak(self, visemes: dict[str, float], t: float) -> AvatarState:
        """Idle life (blinks, gaze, sway, expression) with the mouth driven by visemes — the talk path."""
        return self.frame(t, visemes=visemes)

    def expression_state(self, name: str, strength: float = 1.0) -> AvatarState:
        """A still of one named expression (with its head pose)."""
        if name not in EXPRESSIONS:
            raise ConfigError(f"unknown expression {name!r}; choose one of {', '.join(EXPRESSIONS)}")
        bs = dict.fromkeys(ARKIT_NAMES, 0.0)
        bs.update({k: v * strength for k, v in EXPRESSIONS[name].items()})
        head, neck = self._split(tuple(v * strength for v in EXPRESSION_POSE.get(name, (0.0, 0.0, 0.0))))
        return AvatarState(bs, head, neck, blendshapes_to_gaze(bs))
