"""sticker: 2D RGBA images on a plane of the tracked 3D head (glasses, hat, ears), with full head pose.

Each sticker has two anchor points in its own pixels that map to two points of the reference face in 3D
(e.g. the lens centres to the eye centres). That fixes the sticker's quad on a plane of the head (facing
forward in face coordinates); the tracked face frame (``anchor3d``: pose solver on the landmarks, pinned
at the nose bridge) projects the quad's four corners with a pinhole camera, and one
``cv2.warpPerspective`` of the sticker's bounding box and an alpha blend put it on the frame — so the
sticker yaws, pitches and foreshortens with the head, not only scales and rolls. The shipped stickers are
drawn by code (``facestage/assets/stickers/*.png`` are written by ``write_stickers``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from ..tracking.pose import reference
from ..tracking.types import Face
from .anchor3d import FaceFrame, face_frame
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


@cache
def face_anchors_3d(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The two reference-face points (face coordinates, metres) a sticker's anchors map to: the eye
    centres for glasses; for hat and ears the same landmark construction as the 2D stickers had, on the
    neutral reference face."""
    ref = reference().points
    right_eye, left_eye = ref[[33, 133, 159, 145]].mean(axis=0), ref[[263, 362, 386, 374]].mean(axis=0)
    if kind == "glasses":
        # On the eyes' plane a little in front of the eyeballs, where a real frame sits.
        front = np.array([0.0, 0.0, min(right_eye[2], left_eye[2]) - 0.012])
        return right_eye * [1, 1, 0] + front, left_eye * [1, 1, 0] + front
    up = ref[10] - ref[152]  # chin -> forehead
    if kind == "hat":  # brim ends just above the temples, a bit wider than the face, above the hairline
        return ref[127] + up * 0.28, ref[356] + up * 0.28
    return ref[103] + up * 0.3, ref[332] + up * 0.3  # ears stand on top of the head


def sticker_corners(ff: FaceFrame, kind: str, size: tuple[int, int], anchors: tuple, scale: float) -> np.ndarray:
    """(4, 2) frame pixels of the sticker's corners (0,0), (w,0), (0,h), (w,h): its quad placed on the
    head plane through the 3D anchors (x along the anchors, y down the face), scaled about their
    midpoint, then projected with the face frame's camera."""
    a0, a1 = (np.asarray(a, np.float64) for a in face_anchors_3d(kind))
    s0, s1 = np.float64(anchors[0]), np.float64(anchors[1])
    mid3, mid2 = (a0 + a1) / 2, (s0 + s1) / 2
    ex = (a1 - a0) / np.linalg.norm(a1 - a0)
    ey = np.cross([0.0, 0.0, 1.0], ex)  # in the face's frontal plane, perpendicular to the anchor line
    ey /= np.linalg.norm(ey)
    k = np.linalg.norm(a1 - a0) / max(np.linalg.norm(s1 - s0), 1e-9) * scale  # metres per sticker pixel
    vs = (s1 - s0) / max(np.linalg.norm(s1 - s0), 1e-9)
    w, h = size
    rel = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) - mid2
    u, v = rel @ vs, rel @ np.array([-vs[1], vs[0]])  # sticker axes with its anchor line as x
    pts = mid3 + (u[:, None] * ex + v[:, None] * ey) * k
    return ff.project(pts * ff.width_ratio)


def paste_quad(frame: np.ndarray, rgba: np.ndarray, corners: np.ndarray, opacity: float) -> None:
    """Warp ``rgba`` so its corners land on ``corners`` (a homography) and alpha-blend it, touching only
    the quad's bounding box."""
    h, w = rgba.shape[:2]
    fh, fw = frame.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return
    src = np.float32([[0, 0], [w, 0], [0, h], [w, h]])
    m = cv2.getPerspectiveTransform(src, np.float32(corners - [x0, y0]))
    warped = cv2.warpPerspective(rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = warped[..., 3].astype(np.float32) * (opacity / 255.0)
    sub = frame[y0:y1, x0:x1]
    frame[y0:y1, x0:x1] = cv2.blendLinear(warped[..., :3], sub, a, 1.0 - a)


def custom_anchors(w: int, h: int) -> tuple:
    """A custom sticker is placed like glasses: its width spans both eyes (anchors at 1/4 and 3/4)."""
    return (w * 0.25, h * 0.5), (w * 0.75, h * 0.5)


@register
class Sticker(Effect):
    name = "sticker"
    description = "2D stickers on the tracked 3D head (glasses, hat, ears), with its full pose and perspective"
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
            ff = face_frame(face.landmarks, frame.shape)
            if ff is None:
                continue
            for kind in ("ears", "hat", "glasses"):
                if params[kind] <= 0:
                    continue
                img, anchors = sticker_image(kind)
                corners = sticker_corners(ff, kind, (img.shape[1], img.shape[0]), anchors, params["scale"])
                paste_quad(frame, img, corners, params[kind])
            if custom is not None:
                h, w = custom.shape[:2]
                anchors = custom_anchors(w, h)
                paste_quad(frame, custom, sticker_corners(ff, "glasses", (w, h), anchors, params["scale"]), 1.0)
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
