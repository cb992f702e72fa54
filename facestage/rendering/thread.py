"""RenderThread: the one thread that owns a GL context; any thread or event loop can submit frames.

GL contexts are bound to the thread that created them (used from another thread they silently render
black), so the context is created lazily *on* the render thread and every call is shipped there through a
queue and answered through a future.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..avatar.model import Avatar, weights_vector
from ..errors import ConfigError, InputError

BACKENDS = ("moderngl", "pyrender")
LODS = ("full", "realtime")
NECK_SHARE = 0.3  # share of a bare (yaw, pitch, roll) that the neck takes; the head does the rest


def resolve_pose(state_or_blendshapes: Any, yaw: float, pitch: float, roll: float
                 ) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float]]:
    """(weights, head_rotation, neck_rotation) from an AvatarState, a dict or a (52,) vector."""
    extra = np.array([yaw, pitch, roll], float)
    if hasattr(state_or_blendshapes, "blendshapes") and hasattr(state_or_blendshapes, "head_rotation"):
        st = state_or_blendshapes
        w = weights_vector(st.blendshapes)
        head = np.asarray(st.head_rotation, float) + extra * (1 - NECK_SHARE)
        neck = np.asarray(getattr(st, "neck_rotation", (0.0, 0.0, 0.0)), float) + extra * NECK_SHARE
    else:
        try:
            w = weights_vector(state_or_blendshapes)
        except (ValueError, TypeError) as exc:
            raise InputError(f"bad blendshapes: {exc}") from exc
        head, neck = extra * (1 - NECK_SHARE), extra * NECK_SHARE
    return w, tuple(float(v) for v in head), tuple(float(v) for v in neck)


class RenderThread:
    """Renders avatars to RGBA uint8 arrays on a dedicated thread.

    ``backend``: "moderngl" (default, EGL; ``device_index`` picks the GPU when there are several) or
    "pyrender" (same scene, for comparison). ``msaa``: MSAA samples; 0/1 (the default) anti-alias with an
    FXAA pass instead, which costs far less than 4x MSAA on llvmpipe. Every path is anti-aliased.
    ``device_index`` defaults to ``$FACESTAGE_EGL_DEVICE``, else the first non-software EGL device, else 0.
    ``lod``: "realtime" (default) or "full"; kept for callers: the body-model built-ins (~14 k triangles)
    are drawn at full detail on both, so the two are the same picture today.
    """

    def __init__(self, size: int = 512, backend: str = "moderngl", device_index: int | None = None,
                 msaa: int = 0, lod: str = "realtime") -> None:
        if lod not in LODS:
            raise ConfigError(f"unknown level of detail {lod!r}; choose one of {', '.join(LODS)}")
        self.lod = lod
        if backend not in BACKENDS:
            raise ConfigError(f"unknown renderer {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.size = int(size)
        self.backend = backend
        if device_index is None and os.environ.get("FACESTAGE_EGL_DEVICE", "").strip():
            try:
                device_index = int(os.environ["FACESTAGE_EGL_DEVICE"])
            except ValueError:
                raise ConfigError("FACESTAGE_EGL_DEVICE must be an integer EGL device index") from None
        self.device_index = device_index  # None: the first hardware GPU, else the software device
        self.msaa = msaa
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._renderer = None
        self._closed = False

    # -- thread plumbing -------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("RenderThread is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"facestage-render-{self.backend}",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        while True:
            item = self._queue.get()
            if item is None:
                break
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                fut.set_exception(exc)
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _make_renderer(self):
        if self.backend == "moderngl":
            from .gl_renderer import GLRenderer

            return GLRenderer(device_index=self.device_index, msaa=self.msaa)
        from .pyrender_backend import PyrenderRenderer

        return PyrenderRenderer()

    def _renderer_here(self):
        if self._renderer is None:
            self._renderer = self._make_renderer()
        return self._renderer

    def submit(self, fn: Callable[[Any], Any]) -> Future:
        """Run ``fn(renderer)`` on the render thread; returns a concurrent future."""
        self._ensure_thread()
        fut: Future = Future()
        self._queue.put((lambda: fn(self._renderer_here()), fut))
        return fut

    # -- public API -------------------------------------------------------------------------------
    def _render_job(self, avatar: Avatar, state_or_blendshapes: Any, yaw: float, pitch: float, roll: float,
                    size: int | tuple[int, int] | None, background: Any, framing: str,
                    pose: dict | None = None) -> Callable:
        if not isinstance(avatar, Avatar):
            raise InputError(f"expected an Avatar, got {type(avatar).__name__}")
        w, head, neck = resolve_pose(state_or_blendshapes, yaw, pitch, roll)
        if size is None:
            width = height = self.size
        elif isinstance(size, tuple):
            width, height = (int(v) for v in size)
        else:
            width = height = int(size)
        if not (8 <= width <= 8192 and 8 <= height <= 8192):
            raise ConfigError(f"render size must be 8..8192 pixels, got {width}x{height}")
        spine = tuple(float(v) for v in getattr(state_or_blendshapes, "spine_rotation", (0.0, 0.0, 0.0)))
        return lambda r: r.render(avatar, w, head, neck, width, height, background=background, framing=framing,
                                  spine_rot=spine, pose=pose)

    def render(self, avatar: Avatar, state_or_blendshapes: Any = None, yaw: float = 0.0, pitch: float = 0.0,
               roll: float = 0.0, size: int | tuple[int, int] | None = None, background: Any = None,
               framing: str = "head", timeout: float | None = 60.0, pose: dict | None = None) -> np.ndarray:
        """HxWx4 RGBA uint8, top row first; alpha 0 where there is no avatar and no background.

        ``pose``: extra joint rotations {joint index, joint name or humanoid bone: (yaw, pitch, roll)}."""
        job = self._render_job(avatar, state_or_blendshapes, yaw, pitch, roll, size, background, framing, pose)
        return self.submit(job).result(timeout=timeout)

    async def render_async(self, avatar: Avatar, state_or_blendshapes: Any = None, yaw: float = 0.0,
                           pitch: float = 0.0, roll: float = 0.0, size: int | tuple[int, int] | None = None,
                           background: Any = None, framing: str = "head", pose: dict | None = None) -> np.ndarray:
        job = self._render_job(avatar, state_or_blendshapes, yaw, pitch, roll, size, background, framing, pose)
        return await asyncio.wrap_future(self.submit(job))

    def info(self) -> dict:
        return self.submit(lambda r: {"backend": self.backend, **r.info}).result(timeout=60)

    def forget(self, avatar: Avatar) -> None:
        """Free an avatar's GPU buffers."""
        if self._thread is not None:
            self.submit(lambda r: r.forget(avatar)).result(timeout=60)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def __enter__(self) -> RenderThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
