"""One option schema per session, declared like effect ``Param``s and used by ``start`` *and* ``resume``.

A resumed state arrives from the client (it was handed out by ``checkpoint``), so it is input like any
other: its options are merged under the new ones and the result is validated by the same declarations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .protocol import ProtocolError

_CHANNEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")  # an asset or avatar *name*, never a path


@dataclass(frozen=True)
class Option:
    """``type``: int, float, bool, choice, channel, name (asset name), color, object, str (short text)."""

    type: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def validate(self, value: Any, where: str) -> Any:
        if value is None and self.nullable:
            return None
        t = self.type
        if t in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ProtocolError("bad_field", f"{where}: a number within {self.min:g}..{self.max:g}")
            if t == "int" and int(value) != value:
                raise ProtocolError("bad_field", f"{where}: a whole number within {self.min:g}..{self.max:g}")
            if not self.min <= value <= self.max:  # type: ignore[operator]
                raise ProtocolError("bad_field", f"{where}: within {self.min:g}..{self.max:g}, got {value!r}")
            return int(value) if t == "int" else float(value)
        if t == "bool":
            if not isinstance(value, bool):
                raise ProtocolError("bad_field", f"{where}: true or false")
            return value
        if t == "choice":
            if not any(value is c or (type(value) is type(c) and value == c) for c in self.choices):
                raise ProtocolError("bad_field", f"{where}: one of {', '.join(map(repr, self.choices))}")
            return value
        if t == "channel":
            if not isinstance(value, str) or not _CHANNEL.match(value):
                raise ProtocolError("bad_field", f"{where}: 1-64 letters, digits, _ or -")
            return value
        if t == "name":
            if not isinstance(value, str) or not _NAME.match(value):
                raise ProtocolError("bad_field", f"{where}: a name (letters, digits, _ . : -), not a path")
            return value
        if t == "str":
            if not isinstance(value, str) or len(value) > (self.max or 200):
                raise ProtocolError("bad_field", f"{where}: a string of at most {int(self.max or 200)} characters")
            return value
        if t == "color":
            from .media import parse_color

            return parse_color(value, where)
        if t == "object":
            if not isinstance(value, dict):
                raise ProtocolError("bad_field", f"{where}: an object")
            return value
        raise AssertionError(f"unknown option type {t}")


Schema = dict[str, Option]
AUTH = {"brand": Option("name", None, "brand id (with key)", nullable=True),
        "key": Option("str", None, "operator key or the brand's API key", max=200, nullable=True)}

SCHEMAS: dict[str, Schema] = {
    "effects": {
        "effects": Option("object", None, "effect chain config (or use preset)", nullable=True),
        "preset": Option("name", None, "a shipped preset name", nullable=True),
        "faces": Option("bool", False, "send face data with each frame"),
        "landmarks": Option("bool", False, "include landmarks in the face data"),
        "quality": Option("int", 80, "JPEG quality", 30, 100),
        "channel": Option("channel", None, "publish output on this channel", nullable=True),
        "max_faces": Option("int", 4, "faces to track", 1, 4),
        "face_effects": Option("object", None, '{"FACE_ID": chain or preset}: faces with effects of their own',
                               nullable=True),
    },
    "avatar": {
        "channel": Option("channel", None, "publish output on this channel", nullable=True),
        "avatar": Option("name", "default", "built-in, photo:NAME or upload:NAME (brand sessions)"),
        "size": Option("int", 384, "output pixels", 64, 1024),
        "alpha": Option("bool", True, "transparent background (WebP)"),
        "background": Option("color", None, "background colour", nullable=True),
        "pixels": Option("bool", True, "render frames (false: weights only)"),
        "weights": Option("choice", False, "send ARKit weights", choices=(False, "json", "binary")),
        "vmc": Option("object", None, '{"host", "port"}: VMC output (loopback or allow-listed)', nullable=True),
        "expression": Option("name", None, "expression preset", nullable=True),
        "calibrate": Option("bool", False, "take the next face as neutral"),
        "quality": Option("int", 85, "WebP/JPEG quality", 30, 100),
    },
    "employee": {
        "size": Option("int", 256, "output pixels", 64, 1024),
        "fps": Option("float", 25, "frames per second of reply video", 5, 60),
        "frames": Option("bool", True, "render frames"),
        "alpha": Option("bool", False, "transparent background"),
        "lang": Option("choice", None, "language", choices=("en", "zh"), nullable=True),
    },
    "render": {},
    "watch": {"channel": Option("channel", "main", "the channel to watch")},
}


def validate_options(kind: str, options: Any, resumed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resumed options under new ones, every field checked by the session's schema. Auth fields pass
    through (the connection checks them); they are never stored in the state."""
    if not isinstance(options, dict):
        raise ProtocolError("bad_field", "start.options: an object")
    schema = SCHEMAS[kind]
    allowed = {**schema, **AUTH}
    merged = {**(resumed or {}), **options}
    unknown = sorted(set(merged) - set(allowed))
    if unknown:
        raise ProtocolError("unknown_field", f"{kind} options: unknown field(s) {', '.join(unknown)[:200]}; "
                            f"allowed: {', '.join(sorted(allowed))}")
    return {k: allowed[k].validate(v, f"{kind}.options.{k}") for k, v in merged.items()}
