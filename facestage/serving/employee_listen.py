"""Duplex listening for the employee session: VAD events → barge-in, live partial text, final transcript.

Transcription (faster-whisper) runs on the I/O pool; VAD (Silero ONNX, ~0.2 ms per 32 ms window) runs
inline as frames arrive, so speech onset is seen within one microphone chunk and a reply is stopped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np

log = logging.getLogger("facestage.serving")
ASR_THREADS = 2  # Whisper threads per transcription: the final one is on the critical path to the answer


class StreamListening:
    """Mixin for EmployeeSession (needs engine, out, _employee, interrupt(), _start_reply())."""

    _stream: dict[str, Any] | None = None

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    async def start_streaming(self, rate: int, lang: str | None) -> None:
        from ..speech.asr import _model
        from ..speech.listen import Listener

        langs = list(self._employee.profile.languages)
        if lang is not None and lang not in langs:  # refused before loading the VAD and Whisper models
            from .protocol import ProtocolError

            raise ProtocolError("bad_field", f"listen.lang: this employee speaks {', '.join(langs)}, not {lang!r}")
        await self.stop_streaming(quiet=True)
        listener = await self.engine.run(Listener, rate, io=True)
        await self.engine.run(_model, ASR_THREADS, io=True)  # load Whisper now, not on the first partial (~2 s)
        self._stream = {"listener": listener, "lang": lang, "langs": langs, "utterance": 0, "hint": None,
                        "prompts": {"zh": zh_prompt(self._employee.profile)},
                        "partial_task": None, "tasks": set(), "t0": time.monotonic()}

    async def stop_streaming(self, quiet: bool = False) -> None:
        st, self._stream = self._stream, None
        if st is None:
            return
        if not quiet:
            for ev in st["listener"].flush():
                await self._on_event(st, ev)
            await self.out.control({"type": "listen_stopped"})
        else:
            for task in list(st["tasks"]):
                task.cancel()

    async def feed_stream(self, payload: bytes) -> None:
        st = self._stream
        if len(payload) % 2:
            from .protocol import ProtocolError

            raise ProtocolError("bad_frame", "PCM16 audio needs an even number of bytes")
        for ev in st["listener"].feed(payload):
            await self._on_event(st, ev)

    async def _on_event(self, st: dict[str, Any], ev: Any) -> None:
        if ev.kind == "start":
            st["utterance"] += 1
            st["hint"] = st["lang"]
            await self.out.control({"type": "speech_start", "utterance": st["utterance"], "t": round(ev.t, 3)})
            await self.interrupt("barge_in")  # the user talks over the employee: it stops at once
        elif ev.kind == "partial":
            busy = st["partial_task"]
            if busy is None or busy.done():  # a 2-core CPU cannot afford a queue of partials: skip instead
                st["partial_task"] = self._spawn(st, self._partial(st, st["utterance"], ev.audio))
        elif ev.kind == "end":
            self._spawn(st, self._final(st, st["utterance"], ev.audio, ev.t))

    def _spawn(self, st: dict[str, Any], coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        st["tasks"].add(task)
        task.add_done_callback(_finished)
        task.add_done_callback(st["tasks"].discard)
        return task

    async def _transcribe(self, st: dict[str, Any], audio: np.ndarray) -> Any:
        from ..speech.asr import WHISPER_RATE, transcribe

        # Language detection costs a second Whisper pass (measured 1.25 s vs 0.65 s for 2 s of speech):
        # detect on the first partial of an utterance and reuse the answer for the rest of it.
        hint = st["hint"]
        heard = await self.engine.run(transcribe, audio, WHISPER_RATE, hint, True, ASR_THREADS,
                                      st["prompts"].get(hint), io=True)
        if heard.language not in st["langs"]:  # a language the brand does not speak: read it as its first
            hint = st["langs"][0]
            heard = await self.engine.run(transcribe, audio, WHISPER_RATE, hint, True, ASR_THREADS,
                                          st["prompts"].get(hint), io=True)
        st["hint"] = st["hint"] or heard.language
        return heard

    async def _partial(self, st: dict[str, Any], utterance: int, audio: np.ndarray) -> None:
        try:
            heard = await self._transcribe(st, audio)
        except Exception as exc:  # noqa: BLE001 - live text is best effort; the final transcript reports errors
            log.warning("partial transcription failed: %s", exc)
            return
        if self._stream is st and st["utterance"] == utterance and heard.text.strip():
            await self.out.control({"type": "partial", "utterance": utterance, "text": heard.text.strip(),
                                    "language": heard.language})

    async def _final(self, st: dict[str, Any], utterance: int, audio: np.ndarray, end_t: float) -> None:
        busy = st["partial_task"]
        if busy is not None and not busy.done():
            # Let the running partial finish first: it detects the language (the final then skips detection
            # and gets the right prompt), and on 2 cores the two would only slow each other down.
            await asyncio.wait([busy], timeout=3.0)
        try:
            heard = await self._transcribe(st, audio)
        except Exception as exc:  # noqa: BLE001 - reported, the session stays up
            with contextlib.suppress(Exception):
                await self.out.control({"type": "error", "code": "asr_failed",
                                        "message": f"could not transcribe the question: {exc}"})
            return
        text = heard.text.strip()
        await self.out.control({"type": "heard", "text": text, "language": heard.language, "final": True,
                                "utterance": utterance, "end_s": round(end_t, 3)})
        if text and st["utterance"] == utterance:  # not overtaken by a newer utterance
            await self._start_reply(text, greet=False)


def _finished(task: asyncio.Task) -> None:
    """A listening task that failed unexpectedly is logged (the session has already told the client)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("listening task failed", exc_info=task.exception())


def zh_prompt(profile: Any) -> str:
    """Whisper's initial prompt for Mandarin: one short sentence in simplified characters.

    Without a prompt Whisper base writes Mandarin in traditional characters most of the time (6 of 6 short
    questions here), which the brand's simplified FAQ does not match ("你們幾點關門" was redirected). This
    prompt made all 6 simplified; a longer one listing the brand's products made them traditional again,
    so the profile is deliberately not used.
    """
    return "以下是普通话的句子。"
