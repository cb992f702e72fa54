"""Effect base class, parameter declarations and the registry of effects by name.

An effect declares its parameters once (type, range, default, one-line description); the same
declaration validates JSON chains, parses ``--set effect.param=value`` strings and feeds ``--list``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np

from ..errors import ConfigError
from ..tracking.types import Face
from .context import FaceContext, FrameContexts, Margins
from .regions import face_roi
from .warp import WarpField

PARAM_TYPES = ("float", "int", "bool", "color", "choice", "path")


def parse_color(value: Any, where: str) -> str:
    """'#rrggbb', 'rrggbb' or [r, g, b] (0..255) -> normalised '#rrggbb'."""
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        if not all(0 <= v <= 255 for v in value):
            raise ConfigError(f"{where}: colour components must be 0..255, got {list(value)}")
        return "#" + "".join(f"{int(round(v)):02x}" for v in value)
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) == 6:
            try:
                int(text, 16)
            except ValueError:
                pass
            else:
                return "#" + text.lower()
    raise ConfigError(f"{where}: expected a colour like '#c8283c' or [200, 40, 60], got {value!r}")


class FileResolver(Protocol):
    """Turns a path parameter's value into a file, or refuses it with a ConfigError naming the parameter."""

    def path(self, param: str, value: str) -> Path: ...


class TrustedFiles:
    """Any local file: for the library and the CLI, where the user names files on their own disk. The server
    never uses this; it resolves names with ``facestage.serving.assets.NamedAssets`` before the chain runs."""

    def path(self, param: str, value: str) -> Path:
        return Path(value)


TRUSTED_FILES = TrustedFiles()


def read_param_image(param: str, path: str, flags: int, resolver: FileResolver = TRUSTED_FILES) -> np.ndarray:
    """The image a path parameter names (``flags``: ``cv2.IMREAD_COLOR`` or ``IMREAD_UNCHANGED`` for
    alpha), or a ConfigError naming the parameter. One message whether the file is missing, a folder or
    not an image."""
    p = resolver.path(param, path)
    img = cv2.imread(str(p), flags) if p.is_file() else None
    if img is None:
        raise ConfigError(f"{param}: cannot read {path!r} as an image")
    return img


def color_bgr(hex_color: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (b, g, r) ints for OpenCV."""
    v = hex_color.lstrip("#")
    return int(v[4:6], 16), int(v[2:4], 16), int(v[0:2], 16)


@dataclass(frozen=True)
class Param:
    """One declared parameter of an effect."""

    type: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def spec(self) -> dict:
        out = {"type": self.type, "min": self.min, "max": self.max, "default": self.default,
               "description": self.description}
        if self.choices:
            out["choices"] = list(self.choices)
        return out

    def validate(self, value: Any, where: str) -> Any:
        """Check a JSON value and return it normalised; ConfigError with the allowed range otherwise."""
        t = self.type
        if t in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"{where}: expected a number in [{self.min:g}, {self.max:g}], got {value!r}")
            if t == "int" and float(value) != int(value):
                raise ConfigError(f"{where}: expected a whole number, got {value!r}")
            if not (self.min <= value <= self.max):  # type: ignore[operator]
                raise ConfigError(f"{where}: {value!r} is out of range [{self.min:g}, {self.max:g}]")
            return int(value) if t == "int" else float(value)
        if t == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            return value
        if t == "color":
            return parse_color(value, where)
        if t == "choice":
            if value not in self.choices:
                raise ConfigError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
            return value
        if t == "path":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: expected a file path string, got {value!r}")
            return value
        raise AssertionError(f"unknown param type {t}")

    def parse(self, text: str, where: str) -> Any:
        """Parse a command-line string (``--set beauty.smooth=0.5``) and validate it."""
        t = self.type
        if t in ("float", "int"):
            try:
                value: Any = float(text) if t == "float" else int(float(text))
            except ValueError:
                raise ConfigError(f"{where}: {text!r} is not a number") from None
            if t == "int" and float(text) != int(float(text)):
                raise ConfigError(f"{where}: expected a whole number, got {text!r}")
            return self.validate(value, where)
        if t == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true or false, got {text!r}")
        return self.validate(text, where)


def P(default: float, lo: float, hi: float, description: str) -> Param:  # noqa: N802 - short declaration helper
    """A float parameter."""
    return Param("float", float(default), description, float(lo), float(hi))


class Effect:
    """One effect. Subclasses declare ``name``, ``description``, ``params`` and implement ``render``
    (and, for reshaping effects, ``warps`` + ``add_warp``).

    ``apply(frame, faces, params, state) -> frame`` runs the effect alone: its warp (if any), then
    ``render``. ``render`` gets the frame (BGR uint8, may be modified in place and returned), the faces
    (landmarks stabilised by the chain and already moved by the warps), the validated params, and a
    ``state`` dict that persists across frames for this effect in this chain.

    Warps are separate so a chain can sum the displacement fields of every effect (beauty's slim and
    eyes, age's sagging) and remap each face once.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    #: False for effects that act on the frame without faces (background).
    needs_faces: ClassVar[bool] = True
    #: Effects that read the shared per-face context (``context.FaceContext``): the ROI margins
    #: (sides, top, bottom) they need; the chain's context ROI holds every active effect's.
    roi_margins: ClassVar[Margins | None] = None
    #: True when ``accumulate`` only adds to the context's fused pass (no frame writes): the chain then
    #: runs it with the other fused effects, writes the sum back once, then calls ``finish``.
    fused: ClassVar[bool] = False

    def is_active(self, params: dict) -> bool:
        """False when the params make this effect a no-op (so the chain can skip it)."""
        return True

    def frame_wide(self, params: dict) -> bool:
        """True when these params act on the whole frame, not on faces (a per-face chain leaves it out)."""
        return not self.needs_faces

    def warps(self, params: dict) -> bool:
        """True when these params reshape the face (then ``add_warp`` is called per face)."""
        return False

    def add_warp(self, field: WarpField, face: Face, params: dict) -> None:
        """Add this effect's displacements for ``face`` to ``field`` (frame coordinates)."""

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        """Context users get their own contexts here (the effect alone); others override this."""
        if self.roi_margins is None:
            raise NotImplementedError
        return self.render_with(frame, FrameContexts(frame, faces, self.roi_margins), params, state)

    def render_with(self, frame: np.ndarray, ctxs: FrameContexts, params: dict, state: dict) -> np.ndarray:
        """Render on shared per-face contexts. Default (fused effects): accumulate, write back, finish."""
        for ctx in ctxs:
            self.accumulate(ctx, params, state)
        ctxs.flush()
        for ctx in ctxs:
            self.finish(frame, ctx, params, state)
        self.end_frame(ctxs.faces, state)
        return frame

    def accumulate(self, ctx: FaceContext, params: dict, state: dict) -> None:
        """Fused effects: add this effect's work-resolution deltas to ``ctx`` (the frame is not touched)."""

    def finish(self, frame: np.ndarray, ctx: FaceContext, params: dict, state: dict) -> None:
        """Fused effects: full-resolution steps that need the written-back pixels (teeth, sharpening)."""

    def end_frame(self, faces: list[Face], state: dict) -> None:
        """After every face of the frame (e.g. drop cached state of faces that left)."""

    def apply(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        if faces and self.warps(params):
            apply_warps(frame, faces, [(self, params)])
        return self.render(frame, faces, params, state)


def apply_warps(frame: np.ndarray, faces: list[Face], items: list[tuple[Effect, dict]]) -> None:
    """One summed warp field per face from every (effect, params), one remap, landmarks moved along."""
    for face in faces:
        # Room for the warps' radius plus the border taper.
        roi = face_roi(face.landmarks, frame.shape, margin=0.3, top=0.1, bottom=0.3)
        if roi is None:
            continue
        field = WarpField(roi)
        for effect, params in items:
            effect.add_warp(field, face, params)
        if field.used:
            field.apply_to(frame[roi.slice()])
            face.landmarks = field.move_points(face.landmarks)


REGISTRY: dict[str, type[Effect]] = {}
# Canonical order: warps and skin work before colour overlays, so makeup lands on the final shape.
BUILTIN_MODULES = ("background", "beauty", "age", "makeup", "paint", "sticker", "props", "lut")


def register(cls: type[Effect]) -> type[Effect]:
    if not cls.name or cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"effect name {cls.name!r} is empty or taken")
    REGISTRY[cls.name] = cls
    return cls


def load_builtin() -> dict[str, type[Effect]]:
    for mod in BUILTIN_MODULES:
        importlib.import_module(f"facestage.effects.{mod}")
    return REGISTRY


def effect_order(name: str) -> int:
    return BUILTIN_MODULES.index(name) if name in BUILTIN_MODULES else len(BUILTIN_MODULES)
