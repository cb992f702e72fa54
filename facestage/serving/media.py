"""Image codecs and the render request shared by the render session and POST /v1/render (no I/O, no engine import)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .protocol import Kind, ProtocolError, is_jpeg

if TYPE_CHECKING:
    from .engine import Engine

MAX_INPUT_PIXELS = (3840, 2160)


def decode_jpeg(payload: bytes) -> np.ndarray:
    import cv2

    if not is_jpeg(payload):
        raise ProtocolError("bad_image", "frame payload is not a JPEG image (it must start with FF D8 FF)")
    img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ProtocolError("bad_image", "frame payload could not be decoded as JPEG (truncated or corrupt)")
    max_w, max_h = MAX_INPUT_PIXELS
    if img.shape[0] > max_h or img.shape[1] > max_w:
        raise ProtocolError("too_large", f"frame of {img.shape[1]}x{img.shape[0]} exceeds {max_w}x{max_h}")
    return img


def encode_jpeg(bgr: np.ndarray, quality: int = 80) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_rgba(rgba: np.ndarray, fmt: str = "webp", quality: int = 85) -> tuple[bytes, int]:
    """(bytes, Kind) of an RGBA render: WebP/PNG keep alpha, JPEG drops it (composited on black)."""
    import cv2

    if fmt == "jpeg":
        rgb = rgba[:, :, :3].astype(np.float32) * (rgba[:, :, 3:4].astype(np.float32) / 255.0)
        return encode_jpeg(rgb.astype(np.uint8)[:, :, ::-1], quality), Kind.JPEG
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        return buf.tobytes(), Kind.PNG
    ok, buf = cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    return buf.tobytes(), Kind.WEBP


def parse_color(value: Any, where: str) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            pass
    if (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int | float) and 0 <= v <= 255 for v in value)):
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    raise ProtocolError("bad_field", f"{where}: a colour is \"#rrggbb\", [r, g, b] (0-255) or null, got {value!r}")


def render_params(msg: dict[str, Any]) -> dict[str, Any]:
    """Validate a render request (WebSocket ``render`` message or HTTP POST /v1/render body)."""
    from ..tracking.arkit import ARKIT_NAMES

    allowed = {"avatar", "blendshapes", "yaw", "pitch", "roll", "size", "background", "format", "expression",
               "framing", "id", "type"}
    unknown = sorted(set(msg) - allowed)
    if unknown:
        raise ProtocolError("unknown_field", f"render: unknown field(s) {', '.join(unknown)}; allowed: "
                            + ", ".join(sorted(allowed - {'type'})))
    bs = msg.get("blendshapes") or {}
    if not isinstance(bs, dict):
        raise ProtocolError("bad_field", "render.blendshapes: an object {ARKit name: 0..1}")
    bad = sorted(set(bs) - set(ARKIT_NAMES))
    if bad:
        raise ProtocolError("bad_field", f"render.blendshapes: unknown ARKit name(s) {', '.join(bad[:5])}")
    for k, v in bs.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= float(v) <= 1.0:
            raise ProtocolError("bad_field", f"render.blendshapes.{k}: a number within 0..1, got {v!r}")
    pose = {}
    for k in ("yaw", "pitch", "roll"):
        v = msg.get(k, 0.0)
        if not isinstance(v, int | float) or isinstance(v, bool) or not -90 <= float(v) <= 90:
            raise ProtocolError("bad_field", f"render.{k}: degrees within -90..90, got {v!r}")
        pose[k] = float(v)
    size = msg.get("size", 384)
    if isinstance(size, list):
        if len(size) != 2 or not all(isinstance(v, int) and 16 <= v <= 2048 for v in size):
            raise ProtocolError("bad_field", "render.size: [width, height] within 16..2048")
        size = (int(size[0]), int(size[1]))
    elif not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 2048:
        raise ProtocolError("bad_field", f"render.size: pixels within 16..2048, got {size!r}")
    fmt = msg.get("format", "png")
    if fmt not in ("png", "webp", "jpeg"):
        raise ProtocolError("bad_field", f"render.format: png, webp or jpeg, got {fmt!r}")
    framing = msg.get("framing", "head")
    if framing not in ("head", "bust"):
        raise ProtocolError("bad_field", f"render.framing: head or bust, got {framing!r}")
    from .assets import check_avatar_name

    try:
        avatar = check_avatar_name(msg.get("avatar", "default"), None, "render.avatar")
    except ConfigError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    expression = msg.get("expression")
    if expression is not None:
        from ..avatar.rig import EXPRESSIONS

        if expression not in EXPRESSIONS:
            raise ProtocolError("bad_field", f"render.expression: one of {', '.join(EXPRESSIONS)}")
        bs = {**EXPRESSIONS[expression], **bs}
    return {"avatar": avatar, "blendshapes": {k: float(v) for k, v in bs.items()}, **pose, "size": size,
            "background": parse_color(msg.get("background"), "render.background"), "format": fmt,
            "framing": framing}


async def render_image(engine: Engine, params: dict[str, Any]) -> tuple[bytes, int, tuple[int, int]]:
    """One image for a validated render request: (bytes, Kind, (width, height))."""
    avatar = await engine.run(engine.avatar, params["avatar"], io=True)
    rgba = await engine.render.render_async(avatar, params["blendshapes"], yaw=params["yaw"], pitch=params["pitch"],
                                            roll=params["roll"], size=params["size"],
                                            background=params["background"], framing=params["framing"])
    data, kind = await engine.run(encode_rgba, rgba, params["format"])
    return data, kind, (rgba.shape[1], rgba.shape[0])
