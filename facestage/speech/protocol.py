"""The pipe protocol between our process and the TTS worker process.

A message is a 4-byte big-endian length, a UTF-8 JSON header of that length and, when the header has
``nbytes``, that many raw bytes (int16 little-endian PCM for audio chunks). Simple enough to debug with
``python -m facestage.speech.worker`` and a hex dump, and no pickle crosses the process boundary.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

_LEN = struct.Struct(">I")
MAX_HEADER = 16 * 1024 * 1024


class ProtocolError(RuntimeError):
    """The other side closed the pipe or sent something that is not a message."""


def write_message(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    if payload:
        header = {**header, "nbytes": len(payload)}
    data = json.dumps(header, ensure_ascii=False).encode("utf-8")
    stream.write(_LEN.pack(len(data)) + data + payload)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        part = stream.read(n)
        if not part:
            raise ProtocolError("pipe closed")
        chunks.append(part)
        n -= len(part)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    if size > MAX_HEADER:
        raise ProtocolError(f"header of {size} bytes is not a message")
    header = json.loads(_read_exact(stream, size).decode("utf-8"))
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    nbytes = int(header.get("nbytes", 0))
    payload = _read_exact(stream, nbytes) if nbytes else b""
    return header, payload
