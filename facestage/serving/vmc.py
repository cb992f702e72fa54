"""VMC protocol output: OSC 1.0 messages over UDP, written by hand (the encoding is tiny).

VSeeFace, Unity (EVMC4U) and many XR tools read ``/VMC/Ext/Blend/Val name value`` for each blendshape,
then ``/VMC/Ext/Blend/Apply``, and ``/VMC/Ext/Bone/Pos name px py pz qx qy qz qw`` for bones. We send
ARKit names (VSeeFace's "perfect sync") and the head bone, one OSC bundle per frame.
"""

from __future__ import annotations

import math
import socket
import struct

from ..errors import ConfigError


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)  # OSC strings end in 1-4 NULs, padded to 4 bytes


def osc_message(address: str, *args: str | float | int) -> bytes:
    tags, payload = ",", b""
    for a in args:
        if isinstance(a, str):
            tags += "s"
            payload += _pad(a.encode("utf-8"))
        elif isinstance(a, int) and not isinstance(a, bool):
            tags += "i"
            payload += struct.pack(">i", a)
        else:
            tags += "f"
            payload += struct.pack(">f", float(a))
    return _pad(address.encode("ascii")) + _pad(tags.encode("ascii")) + payload


def osc_bundle(messages: list[bytes]) -> bytes:
    out = _pad(b"#bundle") + struct.pack(">Q", 1)  # timetag 1 = "immediately"
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def parse_osc_message(data: bytes) -> tuple[str, list]:
    """Decode one OSC message (used by tests and by anyone debugging a VMC stream)."""
    def read_str(i: int) -> tuple[str, int]:
        end = data.index(b"\0", i)
        return data[i:end].decode(), (end // 4 + 1) * 4

    address, i = read_str(0)
    tags, i = read_str(i)
    args: list = []
    for t in tags[1:]:
        if t == "s":
            s, i = read_str(i)
            args.append(s)
        elif t == "i":
            args.append(struct.unpack_from(">i", data, i)[0])
            i += 4
        elif t == "f":
            args.append(struct.unpack_from(">f", data, i)[0])
            i += 4
    return address, args


def split_bundle(data: bytes) -> list[bytes]:
    if not data.startswith(b"#bundle\0"):
        return [data]
    i, out = 16, []
    while i < len(data):
        (n,) = struct.unpack_from(">i", data, i)
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def euler_to_quaternion(yaw: float, pitch: float, roll: float) -> tuple[float, float, float, float]:
    """Degrees (yaw about up, pitch about right, roll about forward) to a Unity-style (x, y, z, w)."""
    y, p, r = (math.radians(v) / 2 for v in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    # Y (yaw) * X (pitch) * Z (roll), Unity's order; Unity is left-handed so pitch up is -X.
    x = cy * -sp * cr + sy * cp * sr
    yy = sy * cp * cr - cy * -sp * sr
    z = cy * cp * sr - sy * -sp * cr
    w = cy * cp * cr + sy * -sp * sr
    return x, yy, z, w


class VMCSender:
    """Sends one bundle per frame to ``host:port`` (VMC default 39539). UDP: never blocks, never queues."""

    def __init__(self, host: str = "127.0.0.1", port: int = 39539) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError("vmc.host must be a host name or address")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"vmc.port must be 1..65535, got {port!r}")
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = 0

    def frame_bundle(self, blendshapes: dict[str, float], yaw: float, pitch: float, roll: float) -> bytes:
        msgs = [osc_message("/VMC/Ext/OK", 1)]
        msgs.append(osc_message("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, *euler_to_quaternion(yaw, pitch, roll)))
        msgs += [osc_message("/VMC/Ext/Blend/Val", k, float(v)) for k, v in blendshapes.items()]
        msgs.append(osc_message("/VMC/Ext/Blend/Apply"))
        return osc_bundle(msgs)

    def send(self, blendshapes: dict[str, float], yaw: float, pitch: float, roll: float) -> None:
        try:
            self.sock.sendto(self.frame_bundle(blendshapes, yaw, pitch, roll), self.address)
            self.sent += 1
        except (BlockingIOError, OSError):
            pass  # a lost UDP frame is fine: the next one carries the full state

    def close(self) -> None:
        self.sock.close()
