"""Duplex listening for the employee session: VAD events → barge-in, live partial text, final transcript.

Transcription (faster-whisper) runs on the I/O pool, one run at a time; VAD (Silero ONNX, ~0.2 ms per 32 ms
window) runs inline as frames arrive, so speech onset is seen within one microphone chunk and a reply is
stopped at once. The final transcript is speculative: a run starts at the first pause (PAUSE_S of silence) and
overlaps the end-of-speech hangover; when no voice follows, the end of speech reuses it (no second pass), and
so does a partial run that already held all the speech.
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
                        "runs": [], "last": None, "tasks": set(), "t0": time.monotonic()}

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
            st["hint"] = st["lang"] or (st["langs"][0] if len(st["langs"]) == 1 else None)
            st["runs"] = []
            await self.out.control({"type": "speech_start", "utterance": st["utterance"], "t": round(ev.t, 3)})
            await self.interrupt("barge_in")  # the user talks over the employee: it stops at once
        elif ev.kind == "partial":
            if not any(not r["task"].done() for r in st["runs"]):  # 2 cores cannot afford a queue: skip instead
                self._asr(st, ev, live=True)
        elif ev.kind == "pause":
            # Speculative final: transcribe what was said while the hangover runs. A run already covering all
            # the voiced audio (the last partial, or an earlier pause with no voice since) makes this needless.
            if not self._covering(st, ev.voiced, st["utterance"]):
                self._asr(st, ev, live=True)
        elif ev.kind == "end":
            self._spawn(st, self._final(st, st["utterance"], ev, time.monotonic()))

    def _covering(self, st: dict[str, Any], voiced: int, utterance: int) -> dict[str, Any] | None:
        """The newest transcription run of the utterance whose audio holds every voiced sample."""
        return next((r for r in reversed(st["runs"])
                     if r["utterance"] == utterance and r["covers"] >= voiced), None)

    def _asr(self, st: dict[str, Any], ev: Any, live: bool, utterance: int | None = None) -> dict[str, Any]:
        """Start a transcription of ev.audio after the runs before it (one Whisper at a time on 2 cores)."""
        utterance = st["utterance"] if utterance is None else utterance
        run = {"utterance": utterance, "covers": len(ev.audio), "task": None}
        run["task"] = st["last"] = self._spawn(st, self._run(st, utterance, ev.audio, st["last"], live))
        st["runs"] = [*st["runs"][-2:], run]
        return run

    def _spawn(self, st: dict[str, Any], coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        st["tasks"].add(task)
        task.add_done_callback(_finished)
        task.add_done_callback(st["tasks"].discard)
        return task

    async def _transcribe(self, st: dict[str, Any], audio: np.ndarray) -> Any:
        from ..speech.asr import WHISPER_RATE, transcribe_utterance

        # One Whisper encoder pass per run: the language is read from the same encoding the text is decoded
        # from (transcribe with language=None encoded twice: 1.25 s vs 0.65 s for 2 s of speech), and the
        # detected language picks its prompt. The first run's language is kept for the rest of the utterance.
        hint = st["hint"]
        heard = await self.engine.run(transcribe_utterance, audio, WHISPER_RATE, hint, ASR_THREADS,
                                      st["prompts"], io=True)
        if heard.language not in st["langs"]:  # a language the brand does not speak: read it as its first
            hint = st["langs"][0]
            heard = await self.engine.run(transcribe_utterance, audio, WHISPER_RATE, hint, ASR_THREADS,
                                          st["prompts"], io=True)
        st["hint"] = st["hint"] or heard.language
        return heard

    async def _run(self, st: dict[str, Any], utterance: int, audio: np.ndarray, prev: asyncio.Task | None,
                   live: bool) -> Any:
        if prev is not None:
            await asyncio.wait([prev])
        if live and (self._stream is not st or st["utterance"] != utterance):
            return None  # live text of a stopped stream or an overtaken utterance: nobody needs it
        heard = await self._transcribe(st, audio)
        if live and self._stream is st and st["utterance"] == utterance and heard.text.strip():
            await self.out.control({"type": "partial", "utterance": utterance, "text": heard.text.strip(),
                                    "language": heard.language})
        return heard

    async def _final(self, st: dict[str, Any], utterance: int, ev: Any, t_end: float) -> None:
        run = self._covering(st, ev.voiced, utterance)
        reused = run is not None
        heard = None
        try:
            if run is not None:  # a run over the same speech is done or under way: its text is the final one
                with contextlib.suppress(Exception):
                    heard = await run["task"]
            if heard is None:  # voice after the last run (or it failed): transcribe the whole utterance
                reused = False
                heard = await self._asr(st, ev, live=False, utterance=utterance)["task"]
        except Exception as exc:  # noqa: BLE001 - reported, the session stays up
            with contextlib.suppress(Exception):
                await self.out.control({"type": "error", "code": "asr_failed",
                                        "message": f"could not transcribe the question: {exc}"})
            return
        text = heard.text.strip()
        # asr_ms: how long the answer waited for the transcript after the end of speech was detected
        await self.out.control({"type": "heard", "text": text, "language": heard.language, "final": True,
                                "utterance": utterance, "end_s": round(ev.t, 3), "reused": reused,
                                "asr_ms": round((time.monotonic() - t_end) * 1000, 1)})
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
