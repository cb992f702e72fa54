"""TTSClient: streamed sentence-by-sentence synthesis with phoneme and viseme timelines.

Backends are pluggable: the default runs piper/espeak-ng in a worker process (GPL code never enters our
process, and synthesis never blocks the render thread); ``HTTPSpeechBackend`` calls an OpenAI-style
``/v1/audio/speech`` server for production voices.
"""

from __future__ import annotations

import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from .errors import SpeechError, WorkerDied
from .http_backend import HTTPSpeechBackend, envelope_visemes
from .protocol import ProtocolError, read_message, write_message
from .text import has_speakable
from .types import SpeechChunk, Utterance, join_chunks
from .visemes import phonemes_to_visemes
from .voices import VoiceSpec, check_voice_spec

__all__ = ["HTTPSpeechBackend", "SpeechBackend", "SpeechError", "TTSClient", "WorkerDied", "WorkerPool",
           "WorkerSpeechBackend", "default_pool_size", "envelope_visemes"]


class SpeechBackend(Protocol):
    def stream(self, text: str, voice: str | None, lang: str | None) -> Iterator[dict[str, Any]]:
        """Yield dicts with audio (int16), sample_rate, text, lang, engine, phonemes, transcript, synth_s."""
        ...

    def close(self) -> None: ...


CANCEL_TIMEOUT_S = 10.0  # one clause of synthesis at most; longer means the worker is stuck


class _TimeoutReader:
    """File-like reader over a raw pipe fd that gives up after ``timeout`` seconds without data."""

    def __init__(self, fd: int, timeout: float) -> None:
        self.fd, self.timeout = fd, timeout

    def read(self, n: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            raise SpeechError(f"TTS worker sent nothing for {self.timeout:.0f} s")
        return os.read(self.fd, n)


class WorkerSpeechBackend:
    """piper (English, joe voice) and espeak-ng (Mandarin and others) in a child process."""

    def __init__(self, python: str | None = None, timeout: float = 60.0, threads: int | None = None) -> None:
        self.python = python or sys.executable
        self.timeout = timeout
        self.threads = threads
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            # worker stderr, quoted when it dies; closed in _kill
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
            env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            if self.threads:
                env["FACESTAGE_TTS_THREADS"] = str(self.threads)
            self._proc = subprocess.Popen(
                [self.python, "-m", "facestage.speech.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, bufsize=0, env=env,
            )
        return self._proc

    def _died(self, why: str) -> SpeechError:
        tail = ""
        if self._log is not None:
            self._log.seek(0)
            tail = self._log.read()[-600:].decode("utf-8", "replace").strip()
        self._kill()
        return WorkerDied(f"TTS worker {why}" + (f": {tail.splitlines()[-1]}" if tail else ""))

    def _exchange(self, request: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Send one request and yield reply messages until a terminal one; holds the worker meanwhile.

        A worker found dead before it answered anything (killed, crashed between requests) is restarted
        and the request sent once more; one that dies mid-answer raises SpeechError.
        """
        with self._lock:
            for attempt in range(2):
                proc = self._ensure()
                assert proc.stdin is not None and proc.stdout is not None
                reader = _TimeoutReader(proc.stdout.fileno(), self.timeout)
                try:
                    write_message(proc.stdin, request)
                    header, payload = read_message(reader)
                except (BrokenPipeError, OSError, ProtocolError):
                    if attempt == 0:
                        self._kill()
                        continue
                    raise self._died("exited") from None
                except SpeechError as exc:
                    self._kill()
                    raise WorkerDied(str(exc)) from None
                break
            yield from self._replies(reader, header, payload)

    def _replies(self, reader: _TimeoutReader, header: dict[str, Any], payload: bytes
                 ) -> Iterator[tuple[dict[str, Any], bytes]]:
        finished = False
        try:
            while True:
                op = header.get("op")
                if op == "error":
                    finished = True
                    raise SpeechError(str(header.get("message")))
                terminal = op in ("done", "ready", "voices")
                finished = terminal
                yield header, payload
                if terminal:
                    return
                try:
                    header, payload = read_message(reader)
                except ProtocolError:
                    raise self._died("exited") from None
                except SpeechError as exc:
                    self._kill()
                    raise WorkerDied(str(exc)) from None
        finally:
            if not finished and self._proc is not None and self._proc.poll() is None:
                self._cancel(reader)

    def _cancel(self, reader: _TimeoutReader) -> None:
        """The caller stopped early (barge-in): ask the worker to stop at its next clause and read until its
        "done"; kill it only if that fails (a restart reloads the models: seconds for Kokoro)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            write_message(proc.stdin, {"op": "cancel"})
            deadline = time.monotonic() + CANCEL_TIMEOUT_S
            while time.monotonic() < deadline:
                header, _ = read_message(_TimeoutReader(reader.fd, max(deadline - time.monotonic(), 0.01)))
                # chunks still in the pipe are dropped; a plain "done"/"error" ended the stream before the
                # worker saw the cancel, which it then answers with its own done (cancelled: false)
                if header.get("op") == "done" and "cancelled" in header:
                    return
        except (OSError, ProtocolError, SpeechError):
            pass
        self._kill()

    def warmup(self, langs: tuple[str, ...] = ("en", "zh"), voice: Any = None) -> list[str]:
        for header, _ in self._exchange({"op": "warmup", "langs": list(langs), "voice": voice}):
            return list(header.get("engines", []))
        return []

    def voices(self) -> list[str]:
        for header, _ in self._exchange({"op": "voices"}):
            return list(header.get("voices", []))
        return []

    def stream(self, text: str, voice: Any, lang: str | None) -> Iterator[dict[str, Any]]:
        for header, payload in self._exchange({"op": "synth", "text": text, "voice": voice, "lang": lang}):
            if header.get("op") != "chunk":
                continue
            yield {**header, "audio": np.frombuffer(payload, dtype="<i2").astype(np.int16)}

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc is not None:
            for f in (proc.stdin, proc.stdout):
                if f:
                    f.close()
        if self._log is not None and proc is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                write_message(proc.stdin, {"op": "quit"})
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()


def default_pool_size() -> int:
    """One TTS worker per core (a synthesis keeps one core busy), at least 2 so one long reply never
    blocks another employee, at most 8 (each worker holds ~0.5 GB of models)."""
    return int(os.environ.get("FACESTAGE_TTS_WORKERS", 0)) or min(max(os.cpu_count() or 2, 2), 8)


class WorkerPool:
    """Several worker processes for concurrent streams (one server session no longer waits for another's
    sentence). Each stream borrows a free worker and returns it when done; extra callers wait.

    A worker that dies mid-stream is restarted and the same text is synthesised again on it, skipping the
    chunks already delivered (sentence splitting and the models are deterministic), so the reply
    continues; a second death in the same stream raises SpeechError naming the text.
    """

    def __init__(self, size: int, python: str | None = None, timeout: float = 60.0) -> None:
        if not 1 <= size <= 32:
            raise ValueError("worker pool size must be 1..32")
        self.workers = [WorkerSpeechBackend(python, timeout, threads=_threads_per_worker(size))
                        for _ in range(size)]
        self._free: queue.Queue[WorkerSpeechBackend] = queue.Queue()
        for w in self.workers:
            self._free.put(w)
        self.restarts = 0  # streams resumed on a restarted worker (for logs and tests)

    @property
    def pid(self) -> int | None:
        return self.workers[0].pid

    @property
    def pids(self) -> list[int | None]:
        return [w.pid for w in self.workers]

    def warmup(self, langs: tuple[str, ...] = ("en", "zh"), voice: Any = None) -> list[str]:
        """Warm every worker at once (Kokoro takes a few seconds each; in sequence that would add up)."""
        results: list[list[str]] = [[] for _ in self.workers]
        errors: list[BaseException] = []

        def run(i: int, w: WorkerSpeechBackend) -> None:
            try:
                results[i] = w.warmup(langs, voice)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i, w), daemon=True) for i, w in enumerate(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [name for r in results for name in r]

    def stream(self, text: str, voice: Any, lang: str | None) -> Iterator[dict[str, Any]]:
        worker = self._free.get()
        try:
            delivered = 0
            for attempt in range(2):
                try:
                    for k, chunk in enumerate(worker.stream(text, voice, lang)):
                        if k >= delivered:
                            delivered += 1
                            yield chunk
                    return
                except WorkerDied as exc:
                    if attempt == 1:
                        raise SpeechError(f"the TTS worker crashed twice while speaking {text[:60]!r}: {exc}"
                                          ) from exc
                    self.restarts += 1  # worker.stream restarts the process on the next request
        finally:
            self._free.put(worker)

    def close(self) -> None:
        for w in self.workers:
            w.close()


def _threads_per_worker(size: int) -> int:
    # ONNX threads per worker: the cores shared out, so a full pool does not oversubscribe the CPU
    return max(1, (os.cpu_count() or 1) // size)


class TTSClient:
    """Text → streamed :class:`SpeechChunk` s. The worker starts on first use; call :meth:`close`."""

    def __init__(self, voice: VoiceSpec = None, backend: SpeechBackend | None = None, workers: int = 1) -> None:
        """``workers`` > 1 runs that many worker processes so that concurrent ``synthesize`` calls (one per
        server session) proceed in parallel; with 1, calls from several threads take turns; 0 = sized to
        the machine (:func:`default_pool_size`)."""
        self.voice = voice
        workers = workers or default_pool_size()
        if backend is None:
            backend = WorkerSpeechBackend() if workers == 1 else WorkerPool(workers)
        self.backend: SpeechBackend = backend

    def __enter__(self) -> TTSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warmup(self, langs: tuple[str, ...] = ("en", "zh"), voice: VoiceSpec = None) -> None:
        """Load the engines now, so the first question does not pay the model load (Kokoro: a few seconds)."""
        if isinstance(self.backend, WorkerSpeechBackend | WorkerPool):
            self.backend.warmup(langs, check_voice_spec(voice or self.voice))

    def synthesize(self, text: str, voice: VoiceSpec = None, lang: str | None = None) -> Iterator[SpeechChunk]:
        """``voice``: a voice name (for sentences of its language), a mapping language → voice, or None."""
        if not isinstance(text, str) or not has_speakable(text):
            raise InputError("nothing to say: the text has no letters, digits or Chinese characters")
        spec: Any = voice or self.voice
        if isinstance(self.backend, WorkerSpeechBackend | WorkerPool):  # HTTP servers have their own names
            spec = check_voice_spec(spec)
        if lang is not None and lang not in ("en", "zh") and not (isinstance(spec, str) and spec.startswith("espeak:")):
            raise InputError(f"unsupported language {lang!r} (en, zh; others through an espeak:VOICE voice)")
        offset = 0.0
        for raw in self.backend.stream(text, spec, lang):
            phonemes = [(float(s), float(e), str(p)) for s, e, p in raw.get("phonemes", [])]
            visemes = raw.get("visemes") or phonemes_to_visemes(phonemes)
            chunk = SpeechChunk(
                audio=raw["audio"], sample_rate=int(raw["sample_rate"]), offset_s=offset, text=raw["text"],
                lang=raw["lang"], engine=raw["engine"], phonemes=phonemes, visemes=list(visemes),
                transcript=raw.get("transcript", ""), synth_s=float(raw.get("synth_s", 0.0)),
                worker_pid=raw.get("pid"), synth_at=tuple(raw["synth_at"]) if raw.get("synth_at") else None,
            )
            offset += chunk.duration_s
            yield chunk

    def synthesize_all(self, text: str, voice: str | None = None, lang: str | None = None) -> Utterance:
        """The whole text as one clip (for files and offline rendering)."""
        return join_chunks(list(self.synthesize(text, voice, lang)))

    def close(self) -> None:
        self.backend.close()
