"""Per-process resources shared by all sessions, created lazily: worker threads, the render thread (the
one GL context), the TTS worker, the profile store and caches of avatars and employees.

Sessions are cheap and hold only their own state; everything heavy lives here once per process (the
Ray Serve replica model: one Engine per replica).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError

DEFAULT_AVATAR = "ava"  # what a profile's "default" avatar means
UPLOAD_PREFIX = "upload:"


class Engine:
    def __init__(self, db_path: str | Path | None = None, workers: int | None = None,
                 render_size: int = 384) -> None:
        from ..dialogue import ProfileStore

        self.store = ProfileStore(db_path)
        self.data_dir = Path(self.store.path).parent if self.store.path != ":memory:" else Path.cwd()
        self.upload_dir = self.data_dir / "uploads"
        # CPU work (JPEG codec, tracking, effects) runs here; OpenCV and MediaPipe release the GIL.
        # The server parallelises across sessions, so OpenCV's own per-call thread pool only oversubscribes
        # the cores: measured on 2 cores, the natural preset costs 8.3 ms of CPU per 640x480 frame with
        # OpenCV's pool and 5.4 ms without (tracking 8.5 → 7.1 ms), at the same single-stream latency.
        import cv2

        cv2.setNumThreads(1)
        # One worker more than cores: a worker waiting for the GIL (~40 % of a frame's wall time is Python)
        # leaves its core idle otherwise. Measured with 3 streams on 2 shared cores, 2 → 3 workers: 26-27 →
        # 28.5-29 fps per stream, p50 49-53 → 35-36 ms (interleaved runs, same load).
        self.workers = (workers or int(os.environ.get("FACESTAGE_WORKERS", 0))
                        or max(2, os.cpu_count() or 2) + 1)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="facestage-cpu")
        # Employees wait on TTS/LLM I/O, not the CPU: a separate pool so a long reply cannot starve frames.
        self.io_executor = ThreadPoolExecutor(4, thread_name_prefix="facestage-io")
        # Start every worker now: a fixed thread count from the first second makes leaks visible.
        for pool, n in ((self.executor, self.workers), (self.io_executor, 4)):
            barrier = threading.Barrier(n + 1)
            for _ in range(n):
                pool.submit(barrier.wait, 10)
            barrier.wait(10)
        self.render_size = render_size
        self._render = None
        self._tts = None
        self._lock = threading.Lock()
        from .assets import ByteBoundedCache

        # bounded by bytes, not count: one uploaded model can be as large as many built-ins
        self._avatars = ByteBoundedCache(int(os.environ.get("FACESTAGE_AVATAR_CACHE_MB", "256")) * 2**20)
        self._employees: dict[str, Any] = {}
        self._trackers: dict[int, list[Any]] = {}
        self._closed = False
        from .channels import Channels

        self.channels = Channels()
        from ..dialogue.outbound import OutboundPolicy

        self.outbound = OutboundPolicy()  # the App installs the operator's policy
        self.vmc_policy = OutboundPolicy(("loopback",))  # VMC: loopback unless the operator adds hosts

    # --------------------------------------------------------------------------------------- lazy parts
    @property
    def render(self):
        with self._lock:
            if self._render is None:
                from ..rendering import RenderThread

                # No MSAA by default: 4x costs ~3x the frame time on llvmpipe; a GPU host can set it.
                msaa = int(os.environ.get("FACESTAGE_MSAA", "0"))
                self._render = RenderThread(size=self.render_size, msaa=msaa)
            return self._render

    @property
    def tts(self):
        with self._lock:
            if self._tts is None:
                from ..speech import TTSClient

                self._tts = TTSClient(workers=0)  # a pool sized to the machine: employees do not queue
            return self._tts

    def avatar(self, name: str | None, brand: str | None = None):
        """An avatar by *name*, cached (building a built-in or photo avatar takes a while the first time).
        Names only: a path (``photo:/x.jpg``, ``a.glb``) is refused, whether it came from a client or from a
        brand's profile."""
        from ..avatar import load_avatar
        from .assets import check_avatar_name

        name = check_avatar_name(name or "default", brand)
        if name == "default":
            name = DEFAULT_AVATAR
        key = f"{brand}|{name}" if name.startswith(UPLOAD_PREFIX) else name
        with self._lock:
            cached = self._avatars.get(key)
            if cached is not None:
                return cached
        if name.startswith(UPLOAD_PREFIX):
            if not brand:
                raise InputError("uploaded avatars belong to a brand")
            path = self.upload_dir / brand / name[len(UPLOAD_PREFIX):]
            if not path.is_file():
                raise InputError("the brand's uploaded avatar is missing; upload it again")
            spec: str | Path = f"photo:{path}" if path.suffix.lower() in (".jpg", ".jpeg", ".png") else path
        else:
            spec = name
        from .assets import nbytes

        avatar = load_avatar(spec)
        with self._lock:
            self._avatars.put(key, avatar, nbytes(avatar))
        return avatar

    def employee(self, brand: str):
        """The brand's Employee, rebuilt when its profile changed (retrieval indexes the FAQ)."""
        from ..dialogue import Employee
        from ..dialogue.llm import OpenAIChatBackend

        profile = self.store.get(brand)
        with self._lock:
            cached = self._employees.get(brand)
            if cached is not None and cached.profile.to_dict() == profile.to_dict():
                return cached
        # The backend is built here so it carries the operator's outbound policy (checked and pinned on
        # every connection), never the permissive library default.
        backend = OpenAIChatBackend.from_settings(profile.llm, self.outbound) if profile.llm else None
        emp = Employee(profile, backend=backend)
        with self._lock:
            old = self._employees.get(brand)
            if old is not None:  # keep conversation memory across profile edits
                for sid in list(old._sessions):
                    emp.restore_session(sid, old.session_state(sid))
            self._employees[brand] = emp
        return emp

    # Face trackers are pooled: building one (MediaPipe graphs) costs ~100 ms and a few MB that the
    # allocator does not give back, so 1,000 sessions must not mean 1,000 trackers.
    MAX_IDLE_TRACKERS = 4

    def acquire_tracker(self, max_faces: int):
        with self._lock:
            pool = self._trackers.setdefault(max_faces, [])
            if pool:
                return pool.pop()
        from ..tracking import FaceTracker

        return FaceTracker(max_faces=max_faces)

    def release_tracker(self, tracker) -> None:
        tracker.reset()  # forget the previous user's ids, filters and calibration
        with self._lock:
            pool = self._trackers.setdefault(tracker.max_faces, [])
            if len(pool) < self.MAX_IDLE_TRACKERS and not self._closed:
                pool.append(tracker)
                return
        tracker.close()

    def forget_employee(self, brand: str) -> None:
        with self._lock:
            self._employees.pop(brand, None)

    async def run(self, fn, *args: Any, io: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.io_executor if io else self.executor, fn, *args)

    def save_upload(self, brand: str, filename: str, data: bytes) -> str:
        """Store an uploaded GLB/VRM or photo for a brand; returns the avatar name for its profile."""
        suffix = Path(filename).suffix.lower()
        if suffix not in (".glb", ".vrm", ".jpg", ".jpeg", ".png"):
            raise ConfigError(f"upload a .glb/.vrm model or a .jpg/.png photo, not {suffix or 'no extension'}")
        if suffix in (".glb", ".vrm") and data[:4] != b"glTF":
            raise InputError("this file is not a binary glTF (.glb files start with 'glTF')")
        if suffix in (".jpg", ".jpeg") and data[:3] != b"\xff\xd8\xff":
            raise InputError("this file is not a JPEG image")
        if suffix == ".png" and data[:8] != b"\x89PNG\r\n\x1a\n":
            raise InputError("this file is not a PNG image")
        folder = self.upload_dir / brand
        folder.mkdir(parents=True, exist_ok=True)
        name = ("model" if suffix in (".glb", ".vrm") else "photo") + suffix
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        avatar_name = UPLOAD_PREFIX + name
        with self._lock:
            self._avatars.pop(f"{brand}|{avatar_name}")
        try:
            self.avatar(avatar_name, brand)  # validate now: a broken upload is refused, not found later
        except Exception as exc:
            (folder / name).unlink(missing_ok=True)
            detail = str(exc).replace(str(folder), "the upload").replace(str(self.data_dir), "the server")
            raise InputError(f"cannot make an avatar from this {suffix} file: {detail}") from None
        return avatar_name

    def delete_uploads(self, brand: str) -> None:
        import shutil

        folder = self.upload_dir / brand
        if folder.is_dir() and folder.parent == self.upload_dir:
            shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            for key in [k for k in self._avatars if k.startswith(f"{brand}|")]:
                self._avatars.pop(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [t for pool in self._trackers.values() for t in pool]
            self._trackers.clear()
        for t in idle:
            t.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.io_executor.shutdown(wait=True, cancel_futures=True)
        if self._render is not None:
            self._render.close()
        if self._tts is not None:
            self._tts.close()
        self.store.close()
