"""A 1280-wide group photo of six real faces, composed in code (no group photo ships in any package).

Six people on a soft background: the astronaut and Grace Hopper photos (one of them mirrored and smaller),
two frames of the carphone clip (a man talking), a built-in avatar laughing with its eyes closed and one
turned 60 deg to a profile (both rendered by facestage's own renderer). ``group_photo(dx, dy)`` shifts every
person a little for video-like motion; it returns the image and each person's face centre (x, y).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from facestage import testdata

WIDTH, HEIGHT = 1280, 720
LAUGH = {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0,
         "jawOpen": 0.35, "cheekSquintLeft": 0.6, "cheekSquintRight": 0.6}
PROFILE_YAW = 60.0


@functools.lru_cache(maxsize=1)
def _renders() -> tuple[np.ndarray, np.ndarray]:
    """(laughing, profile) BGRA renders of built-in avatars, bust framing."""
    from facestage.avatar import load_avatar
    from facestage.rendering import RenderThread

    r = RenderThread(size=384, msaa=0)
    try:
        laugh = r.render(load_avatar("ava"), LAUGH, size=384, framing="bust")
        profile = r.render(load_avatar("kai"), {}, yaw=PROFILE_YAW, size=384, framing="bust")
    finally:
        r.close()
    return cv2.cvtColor(laugh, cv2.COLOR_RGBA2BGRA), cv2.cvtColor(profile, cv2.COLOR_RGBA2BGRA)


def _people() -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """(BGR or BGRA image, face box in it as fractions x0, y0, x1, y1) for each person."""
    astro, grace = testdata.astronaut(), testdata.grace_hopper()
    talk = testdata.carphone_frames(limit=30)
    laugh, profile = _renders()
    return [
        (astro, (0.33, 0.10, 0.62, 0.45)),
        (grace, (0.30, 0.17, 0.70, 0.55)),
        (talk[0], (0.25, 0.05, 0.75, 0.75)),
        (cv2.flip(grace, 1), (0.30, 0.17, 0.70, 0.55)),
        (laugh, (0.28, 0.05, 0.72, 0.55)),
        (profile, (0.35, 0.05, 0.75, 0.50)),
    ]


def _background() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    bg = np.stack([120 + 40 * np.sin(x / 170), 130 + 30 * np.cos(y / 130), 110 + 25 * np.sin((x + y) / 240)], axis=2)
    return bg.astype(np.uint8)


# Cell layout: 3 columns x 2 rows, each person scaled so the face is about this wide (a group shot's 10-15 %
# of the frame width) and placed at the cell's centre.
FACE_WIDTHS = (120, 110, 100, 95, 115, 110)


def group_photo(dx: float = 0.0, dy: float = 0.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    out = _background()
    centres = []
    for i, ((img, (fx0, fy0, fx1, fy1)), face_w) in enumerate(zip(_people(), FACE_WIDTHS, strict=True)):
        h, w = img.shape[:2]
        s = face_w / ((fx1 - fx0) * w)
        col, row = i % 3, i // 3
        cx, cy = (col + 0.5) * WIDTH / 3 + dx, (row + 0.5) * HEIGHT / 2 + dy
        fcx, fcy = 0.5 * (fx0 + fx1) * w, 0.5 * (fy0 + fy1) * h
        m = np.array([[s, 0, cx - s * fcx], [0, s, cy - s * fcy]], dtype=np.float64)
        cell_w, cell_h = WIDTH // 3 - 16, HEIGHT // 2 - 16  # people do not overlap
        x0, y0 = int(col * WIDTH / 3 + 8), int(row * HEIGHT / 2 + 8)
        m[:, 2] -= (x0, y0)
        warped = cv2.warpAffine(img, m, (cell_w, cell_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
        if img.shape[2] == 4:
            alpha = warped[:, :, 3:4].astype(np.float32) / 255
        else:
            alpha = cv2.warpAffine(np.ones((h, w), np.float32), m, (cell_w, cell_h))[:, :, None]
        region = out[y0:y0 + cell_h, x0:x0 + cell_w].astype(np.float32)
        out[y0:y0 + cell_h, x0:x0 + cell_w] = (alpha * warped[:, :, :3] + (1 - alpha) * region).astype(np.uint8)
        centres.append((cx, cy))
    return out, centres
