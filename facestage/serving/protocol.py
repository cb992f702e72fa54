"""Protocol v1, sans-I/O: binary media frames with a 16-byte header, and validated JSON control messages.

Nothing here touches a socket, so the same code serves websockets today and a Ray Serve/FastAPI ingress
later. See docs/protocol.md for the wire format with examples.

Binary frame = header + payload; header is big-endian ``>BBHId``:
    version (1) | kind (1) | flags (2) | sequence (uint32) | timestamp (float64, milliseconds)
The timestamp is the sender's clock; the server echoes a camera frame's timestamp on the frame it
produced from it, so a client measures the round trip with its own clock.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

VERSION = 1
HEADER = struct.Struct(">BBHId")
HEADER_SIZE = HEADER.size  # 16

MAX_JSON_BYTES = 256 * 1024  # a control message (an effect config, a profile) is far below this
MAX_FRAME_BYTES = 4 * 1024 * 1024  # one JPEG camera frame; 1080p at q95 is ~1 MB
MAX_WIRE_BYTES = 16 * 1024 * 1024  # beyond this websockets itself closes with 1009 (nothing else can be done)


class Kind(IntEnum):
    JPEG = 1  # camera frame in / processed frame out (image/jpeg)
    WEBP = 2  # rendered frame with alpha (image/webp, RGBA)
    PCM16 = 3  # mono int16 little-endian audio; sample rate in the preceding "audio" message
    WEIGHTS = 4  # float16 little-endian: 52 ARKit weights then yaw, pitch, roll (degrees) -> 55 values
    PNG = 5  # an image from a render request when the client asked for PNG


FLAG_ALPHA = 1  # the image carries an alpha channel
FLAG_KEYFRAME = 2  # reserved


class ProtocolError(ValueError):
    """A message the server cannot use; ``code`` is the machine-readable reason sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    seq: int
    timestamp: float
    payload: bytes
    flags: int = 0


def pack_frame(kind: int, seq: int, timestamp: float, payload: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(VERSION, int(kind), flags & 0xFFFF, seq & 0xFFFFFFFF, float(timestamp)) + payload


def unpack_frame(data: bytes) -> Frame:
    """Parse a binary message; ProtocolError with a useful message for anything else."""
    if len(data) < HEADER_SIZE:
        raise ProtocolError("bad_frame", f"binary message of {len(data)} bytes is shorter than the "
                            f"{HEADER_SIZE}-byte frame header (see docs/protocol.md)")
    version, kind, flags, seq, ts = HEADER.unpack_from(data)
    if version != VERSION:
        raise ProtocolError("bad_frame", f"frame header version {version}, this server speaks {VERSION} "
                            "(did you send raw JPEG without the 16-byte header?)")
    if kind not in Kind._value2member_map_:
        raise ProtocolError("unknown_kind", f"unknown frame kind {kind} (known: "
                            + ", ".join(f"{k.value}={k.name}" for k in Kind) + ")")
    if len(data) - HEADER_SIZE > MAX_FRAME_BYTES:
        raise ProtocolError("too_large", f"frame payload of {len(data) - HEADER_SIZE} bytes exceeds "
                            f"{MAX_FRAME_BYTES} bytes")
    if ts != ts:  # NaN
        raise ProtocolError("bad_frame", "frame timestamp is NaN")
    return Frame(kind, seq, ts, bytes(data[HEADER_SIZE:]), flags)


def is_jpeg(payload: bytes) -> bool:
    return len(payload) > 4 and payload[:3] == b"\xff\xd8\xff"


# ------------------------------------------------------------------------------------------- JSON messages
SESSIONS = ("effects", "avatar", "employee", "render", "watch")

# type -> {field: (allowed python types, required)}; "type" itself is implicit. Unknown fields are errors:
# a typo ("efects") must not be silently ignored.
_ANY_OBJ = (dict,)
_NUM = (int, float)
SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "start": {"session": ((str,), True), "options": (_ANY_OBJ, False), "resume": (_ANY_OBJ, False)},
    "config": {"channel": ((str, type(None)), False),
               "effects": (_ANY_OBJ + (str, type(None)), False), "preset": ((str, type(None)), False),
               "faces": ((bool,), False), "landmarks": ((bool,), False), "quality": (_NUM, False),
               "face_effects": ((dict, type(None)), False),
               "avatar": ((str,), False), "size": (_NUM, False), "alpha": ((bool,), False),
               "background": ((list, str, type(None)), False), "pixels": ((bool,), False),
               "weights": ((str, bool), False), "vmc": ((dict, type(None)), False),
               "expression": ((str,), False), "calibrate": ((bool,), False)},
    "tracking": {"blendshapes": (_ANY_OBJ, False), "pose": (_ANY_OBJ, False), "t": (_NUM, False)},
    "say": {"text": ((str,), True), "lang": ((str, type(None)), False), "voice": ((str, type(None)), False)},
    "greet": {"lang": ((str, type(None)), False)},
    "listen": {"sample_rate": ((int,), True), "lang": ((str, type(None)), False), "mode": ((str,), False)},
    "listen_end": {},
    "render": {"avatar": ((str,), False), "blendshapes": (_ANY_OBJ, False), "yaw": (_NUM, False),
               "pitch": (_NUM, False), "roll": (_NUM, False), "size": (_NUM + (list,), False),
               "background": ((list, str, type(None)), False), "format": ((str,), False),
               "expression": ((str,), False), "framing": ((str,), False), "id": ((str, int), False)},
    "checkpoint": {},
    "ping": {"t": (_NUM, False)},
    "stop": {"played_s": (_NUM, False)},
}


def parse_message(text: str) -> dict[str, Any]:
    """Decode and validate one JSON control message."""
    if len(text) > MAX_JSON_BYTES:
        raise ProtocolError("too_large", f"JSON message of {len(text)} characters exceeds {MAX_JSON_BYTES}")
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_message", f"a control message is a JSON object, got {type(msg).__name__}")
    mtype = msg.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError("bad_message", 'a control message needs a "type" string, e.g. {"type": "start", ...}')
    schema = SCHEMAS.get(mtype)
    if schema is None:
        raise ProtocolError("unknown_type", f"unknown message type {mtype!r}; known: {', '.join(SCHEMAS)}")
    unknown = sorted(set(msg) - set(schema) - {"type"})
    if unknown:
        raise ProtocolError("unknown_field", f"{mtype}: unknown field(s) {', '.join(unknown)}; allowed: "
                            + (", ".join(schema) or "none"))
    for name, (types, required) in schema.items():
        if name not in msg:
            if required:
                raise ProtocolError("missing_field", f"{mtype}: field {name!r} is required")
            continue
        value = msg[name]
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            want = " or ".join(sorted({_TYPE_NAMES.get(t, t.__name__) for t in types}))
            raise ProtocolError("bad_field", f"{mtype}.{name}: expected {want}, got {type(value).__name__}")
    return msg


_TYPE_NAMES = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean", list: "array",
               type(None): "null"}


def dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def error(code: str, message: str, **extra: Any) -> str:
    return dumps({"type": "error", "code": code, "message": message, **extra})
