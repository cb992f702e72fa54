"""sticker: 2D RGBA images anchored to landmarks (glasses, hat, ears), scaled and rotated with the head.

Each sticker has two anchor points in its own pixels that map to two points on the face (e.g. the lens
centres to the eye centres). The similarity transform between the pairs gives scale and roll; one
``cv2.warpAffine`` of the sticker's bounding box and an alpha blend put it on the frame. The shipped
stickers are drawn by code (``facestage/assets/stickers/*.png`` are written by ``write_stickers``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from ..tracking.types import Face
from .base import Effect, P, Param, read_param_image, register

STICKER_DIR = Path(__file__).resolve().parent.parent / "assets" / "stickers"


def _draw_glasses() -> tuple[np.ndarray, tuple]:
    img = np.zeros((120, 400, 4), np.uint8)
    for cx in (105, 295):
        cv2.ellipse(img, (cx, 60), (78, 50), 0, 0, 360, (40, 30, 20, 110), -1, cv2.LINE_AA)  # tinted lens
        cv2.ellipse(img, (cx, 60), (78, 50), 0, 0, 360, (25, 25, 30, 255), 9, cv2.LINE_AA)  # frame
        cv2.ellipse(img, (cx - 30, 42), (18, 8), -25, 0, 360, (255, 255, 255, 120), -1, cv2.LINE_AA)  # glint
    cv2.ellipse(img, (200, 52), (24, 14), 0, 180, 360, (25, 25, 30, 255), 8, cv2.LINE_AA)  # bridge
    for x0, x1 in ((27, 2), (373, 398)):
        cv2.line(img, (x0, 48), (x1, 40), (25, 25, 30, 255), 9, cv2.LINE_AA)  # temples
    return img, ((105, 60), (295, 60))


def _draw_hat() -> tuple[np.ndarray, tuple]:
    img = np.zeros((300, 360, 4), np.uint8)
    cv2.rectangle(img, (80, 20), (280, 240), (40, 30, 30, 255), -1, cv2.LINE_AA)  # crown
    cv2.rectangle(img, (80, 190), (280, 228), (40, 40, 170, 255), -1, cv2.LINE_AA)  # band
    cv2.ellipse(img, (180, 250), (175, 30), 0, 0, 360, (35, 25, 25, 255), -1, cv2.LINE_AA)  # brim
    cv2.ellipse(img, (180, 244), (150, 14), 0, 180, 360, (60, 50, 50, 255), 3, cv2.LINE_AA)
    return img, ((60, 262), (300, 262))


def _draw_ears() -> tuple[np.ndarray, tuple]:
    img = np.zeros((220, 400, 4), np.uint8)
    for cx, tilt in ((95, -12), (305, 12)):
        outer = cv2.ellipse2Poly((cx, 110), (48, 105), tilt, 0, 360, 6)
        inner = cv2.ellipse2Poly((cx, 122), (24, 78), tilt, 0, 360, 6)
        cv2.fillPoly(img, [outer], (215, 215, 225, 255), cv2.LINE_AA)
        cv2.fillPoly(img, [inner], (170, 150, 245, 255), cv2.LINE_AA)
        cv2.polylines(img, [outer], True, (120, 120, 130, 255), 3, cv2.LINE_AA)
    return img, ((95, 205), (305, 205))


ARTWORK = {"glasses": _draw_glasses, "hat": _draw_hat, "ears": _draw_ears}


def _face_anchors(lm: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The two face points a sticker's anchors map to (frame pixels)."""
    right_eye = lm[[33, 133, 159, 145], :2].mean(axis=0)
    left_eye = lm[[263, 362, 386, 374], :2].mean(axis=0)
    if kind == "glasses":
        return right_eye, left_eye
    up = lm[10, :2] - lm[152, :2]  # chin -> forehead, face height
    if kind == "hat":
        # Brim ends just above the temples, a bit wider than the face, above the hairline.
        return lm[127, :2] + up * 0.28, lm[356, :2] + up * 0.28
    # Ears stand on top of the head.
    return lm[103, :2] + up * 0.3, lm[332, :2] + up * 0.3


@cache
def sticker_image(kind: str) -> tuple[np.ndarray, tuple]:
    """(BGRA image, anchors): the shipped PNG if present, else drawn by code."""
    if kind not in ARTWORK:
        raise ConfigError(f"unknown sticker {kind!r}; available: {', '.join(ARTWORK)}")
    img, anchors = ARTWORK[kind]()
    path = STICKER_DIR / f"{kind}.png"
    if path.is_file():
        loaded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if loaded is not None and loaded.shape == img.shape:
            img = loaded
    return img, anchors


def write_stickers(directory: Path = STICKER_DIR) -> list[Path]:
    """Write the shipped sticker PNGs (RGBA, compressed)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, draw in ARTWORK.items():
        path = directory / f"{kind}.png"
        cv2.imwrite(str(path), draw()[0], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        out.append(path)
    return out


def similarity(src: tuple, dst: tuple[np.ndarray, np.ndarray], scale: float) -> np.ndarray:
    """2x3 similarity transform mapping the two ``src`` points onto ``dst`` (scaled about their midpoint)."""
    s0, s1 = np.float64(src[0]), np.float64(src[1])
    d0, d1 = np.float64(dst[0]), np.float64(dst[1])
    mid = (d0 + d1) / 2
    d0, d1 = mid + (d0 - mid) * scale, mid + (d1 - mid) * scale
    vs, vd = s1 - s0, d1 - d0
    k = np.linalg.norm(vd) / max(np.linalg.norm(vs), 1e-9)
    ang = np.arctan2(vd[1], vd[0]) - np.arctan2(vs[1], vs[0])
    c, s = k * np.cos(ang), k * np.sin(ang)
    rot = np.array([[c, -s], [s, c]])
    t = d0 - rot @ s0
    return np.hstack([rot, t[:, None]])


def paste(frame: np.ndarray, rgba: np.ndarray, m: np.ndarray, opacity: float) -> None:
    """Warp ``rgba`` by ``m`` and alpha-blend it, touching only the sticker's bounding box."""
    h, w = rgba.shape[:2]
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ m.T
    fh, fw = frame.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return
    mm = m.copy()
    mm[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(rgba, mm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = warped[..., 3].astype(np.float32) * (opacity / 255.0)
    sub = frame[y0:y1, x0:x1]
    frame[y0:y1, x0:x1] = cv2.blendLinear(warped[..., :3], sub, a, 1.0 - a)


@register
class Sticker(Effect):
    name = "sticker"
    description = "2D stickers anchored to landmarks (glasses, hat, ears), following head scale and roll"
    params = {
        "glasses": P(0.0, 0, 1, "sunglasses on the eyes (opacity; 0 = off)"),
        "hat": P(0.0, 0, 1, "top hat above the forehead (opacity; 0 = off)"),
        "ears": P(0.0, 0, 1, "bunny ears on the head (opacity; 0 = off)"),
        "scale": P(1.0, 0.5, 2.0, "size relative to the face"),
        "image": Param("path", "", "custom RGBA PNG placed like glasses (its width spans both eyes)"),
    }

    def is_active(self, params: dict) -> bool:
        return any(params[k] > 0 for k in ARTWORK) or bool(params["image"])

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        custom = self._custom(params["image"], state) if params["image"] else None
        for face in faces:
            lm = face.landmarks
            for kind in ("ears", "hat", "glasses"):
                if params[kind] <= 0:
                    continue
                img, anchors = sticker_image(kind)
                m = similarity(anchors, _face_anchors(lm, kind), params["scale"])
                paste(frame, img, m, params[kind])
            if custom is not None:
                h, w = custom.shape[:2]
                anchors = ((w * 0.25, h * 0.5), (w * 0.75, h * 0.5))
                paste(frame, custom, similarity(anchors, _face_anchors(lm, "glasses"), params["scale"]), 1.0)
        return frame

    @staticmethod
    def _custom(path: str, state: dict) -> np.ndarray:
        if state.get("custom_path") != path:
            img = read_param_image("sticker.image", path, cv2.IMREAD_UNCHANGED)
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
            elif img.shape[2] == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
            state["custom"], state["custom_path"] = img, path
        return state["custom"]
