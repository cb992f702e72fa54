"""Reading and writing images, videos and cameras: the I/O edge in front of the pure cores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpeg", ".y4m", ".gif"}


@dataclass
class MediaSource:
    """Frames from an image, a video file or a camera, with timestamps in seconds."""

    kind: str  # "image" | "video" | "camera"
    name: str
    fps: float
    frame_count: int | None  # None for cameras
    _cap: object | None = None
    _image: np.ndarray | None = None

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self._image is not None:
            yield 0, 0.0, self._image
            return
        import cv2

        cap = self._cap
        i = 0
        try:
            while True:
                ok, frame = cap.read()  # type: ignore[union-attr]
                if not ok or frame is None:
                    break
                # The container's own presentation time of this frame (variable-rate video, 12 or 60 fps):
                # smoothing filters need real dt. Cameras and streams without timestamps fall back to i/fps.
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self.kind == "video" else 0.0  # type: ignore[union-attr]
                yield i, (t if t > 0 or i == 0 else i / self.fps), frame
                i += 1
        finally:
            cap.release()  # type: ignore[union-attr]

    @property
    def is_still(self) -> bool:
        return self.kind == "image"


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as BGR uint8, with a clear error for missing or non-image files."""
    import cv2

    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a directory, not an image")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"{p} is not a readable image")
    return img


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR uint8 or raise InputError."""
    import cv2

    if not data:
        raise InputError("empty image data")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError("image data could not be decoded (expected JPEG or PNG)")
    return img


def open_source(spec: str) -> MediaSource:
    """Open ``spec``: a camera index ("0"), an image path or a video path."""
    import cv2

    if spec.isdigit():
        index = int(spec)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise InputError(f"camera {index} is not available (no such device or it is busy)")
        ok, _ = cap.read()
        if not ok:
            cap.release()
            raise InputError(f"camera {index} opened but delivers no frames")
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        return MediaSource("camera", f"camera {index}", fps, None, _cap=cap)
    p = Path(spec)
    if not p.exists():
        raise InputError(f"no such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a directory, not an image or video")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return MediaSource("image", p.name, 0.0, 1, _image=read_image(p))
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        # Maybe an image with an unusual suffix.
        try:
            return MediaSource("image", p.name, 0.0, 1, _image=read_image(p))
        except InputError:
            raise InputError(f"{p} is neither a readable image nor a readable video") from None
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise InputError(f"{p} contains no video frames")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return MediaSource("video", p.name, fps, count or None, _cap=cap)


class VideoWriter:
    """Writes BGR frames to a video file (H.264 via PyAV when available, else OpenCV mp4v)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        codec = "libx264" if self.path.suffix.lower() in {".mp4", ".mkv", ".mov"} else "mpeg4"
        from fractions import Fraction

        self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        w, h = size
        self._stream.width, self._stream.height = w - w % 2, h - h % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": "20", "preset": "veryfast"}
        self._size = (self._stream.width, self._stream.height)

    def write(self, frame_bgr: np.ndarray) -> None:
        import av

        w, h = self._size
        frame_bgr = np.ascontiguousarray(frame_bgr[:h, :w])
        vf = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
