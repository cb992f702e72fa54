"""The employee session: a brand's virtual employee answers text or speech with voice, visemes and frames.

Per sentence of the reply (so speech starts after the first sentence, not the whole answer):
``reply`` (text) → ``audio`` (timing + visemes + the ARKit track) + PCM16 frame → rendered frames whose
timestamps are media time in ms from the start of the reply, so the client plays audio and shows each frame
when the audio clock reaches it (time-aligned however the network jitters).

Listening (``{"type": "listen", "sample_rate", "mode"}`` then PCM16 frames):
- ``mode: "hold"`` (hold-to-talk): audio until ``listen_end``, then one transcription and the answer;
- ``mode: "stream"`` (duplex): the server's VAD cuts the stream into utterances (facestage.speech.listen):
  ``speech_start`` (and barge-in: a reply in progress stops), ``partial`` texts while the user speaks,
  ``heard`` at the end of speech, then the answer; until ``listen_end``.
A reply stopped by barge-in or ``stop`` is kept in the dialogue memory as far as it was played.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from .base import Session
from .employee_listen import StreamListening
from .media import encode_rgba
from .options import SCHEMAS
from .protocol import Kind, ProtocolError, pack_frame

EMPLOYEE_OPTIONS = {"brand", "key", *SCHEMAS["employee"]}  # declared once, in options.py
MAX_LISTEN_S = 30.0  # one spoken question; longer audio is refused rather than buffered
CLIENT_LEAD_S = 0.05  # the console schedules a reply's first chunk this far ahead (console.js LEAD_S)
_DONE = object()


class EmployeeSession(StreamListening, Session):
    kind = "employee"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._employee = None
        self._avatar = None
        self._reply_task: asyncio.Task | None = None
        self._cancel = threading.Event()
        self._listen: dict[str, Any] | None = None  # {"rate", "lang", "chunks", "samples"} while holding
        # the reply in progress: its number, question, sent chunks [(start_s, duration_s, text)], when its
        # first audio left (monotonic) and, once interrupted, how much of it was played
        self._ctx: dict[str, Any] | None = None

    async def start(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - EMPLOYEE_OPTIONS)
        if unknown:
            raise ProtocolError("unknown_field", f"employee options: unknown field(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(sorted(EMPLOYEE_OPTIONS))}")
        brand = options.get("brand", self.state.brand)
        key = options.get("key")
        if not isinstance(brand, str) or not isinstance(key, str):
            raise ProtocolError("unauthorized", "employee sessions need options.brand and options.key (the brand's "
                                "API key)")
        ok = await self.engine.run(self.engine.store.verify_key, brand, key, io=True)
        if not ok:
            raise ProtocolError("unauthorized", f"wrong API key for brand {brand!r}")
        self.state.brand = brand
        o = self.state.options
        size, fps = options.get("size", o.get("size", 256)), options.get("fps", o.get("fps", 25))
        if not isinstance(size, int) or not 64 <= size <= 1024:
            raise ProtocolError("bad_field", "size: pixels within 64..1024")
        if not isinstance(fps, int | float) or not 5 <= fps <= 60:
            raise ProtocolError("bad_field", "fps: 5..60")
        o.update(size=int(size), fps=float(fps), frames=bool(options.get("frames", o.get("frames", True))),
                 alpha=bool(options.get("alpha", o.get("alpha", False))))
        self._employee = await self.engine.run(self.engine.employee, brand, io=True)
        if self.state.dialogue:
            self._employee.restore_session(self.state.session_id, self.state.dialogue)
        p = self._employee.profile
        if o["frames"]:
            self._avatar = await self.engine.run(self.engine.avatar, p.avatar, brand, io=True)
        return {"brand": brand, "name": p.name, "company": p.company, "languages": p.languages,
                "colors": p.colors, "greeting": self._employee.greeting()}

    async def after_start(self) -> None:
        """A still of the employee at rest (timestamp -1: show now), so the page is not empty before a reply."""
        if self._avatar is None:
            return
        from ..avatar.rig import Rig

        o = self.state.options
        bg = None if o["alpha"] else self._employee.profile.background_rgb()
        rgba = await self.engine.render.render_async(self._avatar, Rig(self._avatar).idle(0.0), size=o["size"],
                                                     background=bg)
        data, kind = await self.engine.run(encode_rgba, rgba, "webp" if bg is None else "jpeg", 85)
        await self.out.always(pack_frame(kind, 0, -1.0, data, 1 if bg is None else 0))

    async def on_message(self, msg: dict[str, Any]) -> None:
        t = msg["type"]
        if t == "say":
            text = msg["text"].strip()
            if not text:
                raise ProtocolError("bad_field", "say.text: empty question")
            if len(text) > 2000:
                raise ProtocolError("too_large", "say.text: at most 2000 characters")
            await self._start_reply(text, greet=False, voice=msg.get("voice"))
        elif t == "greet":
            await self._start_reply(self._employee.greeting(msg.get("lang")), greet=True)
        elif t == "listen":
            rate, mode = msg["sample_rate"], msg.get("mode", "hold")
            if not 8000 <= rate <= 48000:
                raise ProtocolError("bad_field", f"listen.sample_rate: 8000..48000 Hz, got {rate}")
            if mode not in ("hold", "stream"):
                raise ProtocolError("bad_field", f"listen.mode: 'hold' or 'stream', got {mode!r}")
            if mode == "stream":
                await self.start_streaming(rate, msg.get("lang"))
            else:
                self._listen = {"rate": rate, "lang": msg.get("lang"), "chunks": [], "samples": 0}
            await self.out.control({"type": "listening", "sample_rate": rate, "mode": mode})
        elif t == "listen_end":
            if self.streaming:
                await self.stop_streaming()
            else:
                await self._heard()
        elif t == "stop":
            stopped = await self.interrupt("stop", msg.get("played_s"))
            if not stopped:
                await self.out.control({"type": "stopped", "reason": "stop"})
        else:
            await super().on_message(msg)

    # ------------------------------------------------------------------------------------------ replies
    async def interrupt(self, reason: str, played_s: float | None = None) -> bool:
        """Stop the reply the customer is hearing (barge-in or ``stop``); True if there was one.

        A reply counts while it is being sent *or* still playing in the client (all audio may have left
        already). The client is told how much was played, and exactly that is kept in the dialogue memory.
        """
        ctx = self._ctx
        if ctx is None or ctx.get("stopped"):
            return False
        running = self._reply_task is not None and not self._reply_task.done()
        if played_s is None:  # estimate the client's playback position from when the first audio left
            t0 = ctx.get("t0")
            played_s = max(0.0, time.monotonic() - t0 - CLIENT_LEAD_S) if t0 is not None else 0.0
        total = sum(d for _, d, _ in ctx["log"])
        if not running and (ctx.get("t0") is None or played_s >= total):
            return False  # it has finished playing: nothing to interrupt
        ctx.update(stopped=True, played_s=float(played_s), spoken=spoken_text(ctx["log"], float(played_s)))
        if running:
            await self._stop_reply()  # no audio leaves after this
        if not ctx["greet"]:  # the turn is remembered as far as it was heard, from now on
            self._employee.set_spoken(self.state.session_id, ctx["question"], ctx["spoken"])
            self.state.dialogue = self._employee.session_state(self.state.session_id)
        await self.out.control({"type": "stopped", "reason": reason, "reply": ctx["reply"],
                                "played_s": round(float(played_s), 3), "spoken": ctx["spoken"]})
        return True

    async def _stop_reply(self) -> None:
        if self._reply_task is not None and not self._reply_task.done():
            self._cancel.set()
            self._reply_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reply_task
        self._cancel = threading.Event()

    async def _start_reply(self, text: str, greet: bool, voice: str | None = None) -> None:
        await self.interrupt("new_question")  # a new question interrupts the current answer
        self.state.replies += 1
        self._cancel = threading.Event()  # one per reply: the last one was set when that reply ended
        self._ctx = {"reply": self.state.replies, "question": text, "greet": greet, "log": [], "t0": None,
                     "played_s": None}
        self._reply_task = asyncio.create_task(self._reply(text, greet, voice, self._ctx, self._cancel))

    # The producer runs on an I/O thread (dialogue, TTS and rendering block); it hands events to the loop
    # through a small bounded queue, so a slow client slows the producer instead of growing memory.
    def _produce(self, text: str, greet: bool, voice: str | None, loop: asyncio.AbstractEventLoop,
                 q: asyncio.Queue, cancel: threading.Event, ctx: dict[str, Any]) -> None:
        from ..avatar.rig import Rig
        from ..speech.visemes import viseme_weight_frames
        from ..speech.voices import profile_voice

        def put(item: Any) -> None:
            if cancel.is_set():
                raise _Cancelled
            try:
                asyncio.run_coroutine_threadsafe(q.put(item), loop).result(timeout=60)
            except TimeoutError:
                raise _Cancelled from None  # the consumer is gone

        o = self.state.options
        emp = self._employee
        rig = Rig(self._avatar)
        fps = o["fps"]
        sentences = iter([text]) if greet else emp.reply_stream(text, self.state.session_id)
        try:
            media_t = 0.0  # seconds since the reply started, across sentences
            frame_no = 0
            chunk_no = 0
            full: list[str] = []
            for sentence in sentences:
                full.append(sentence)
                put({"type": "reply", "text": sentence, "index": len(full) - 1, "start_s": round(media_t, 3)})
                for chunk in self.engine.tts.synthesize(sentence, voice=voice or profile_voice(emp.profile)):
                    start = media_t
                    # Lip sync from one place: the TTS timeline becomes co-articulated viseme weights per frame,
                    # and the rig (the same one camera tracking drives) turns them into ARKit shapes; the track
                    # goes to the client too, for clients that render the avatar themselves (XR).
                    states = [rig.speak(w, start + i / fps)
                              for i, w in enumerate(viseme_weight_frames(chunk.visemes, fps, chunk.duration_s))]
                    # engine/worker/synth_at say which voice and TTS worker made the chunk and when (wall clock):
                    # what a client needs to tell that concurrent employees were synthesised in parallel
                    ctx["log"].append((start, chunk.duration_s, chunk.text))  # before it can reach the client
                    put({"type": "audio", "index": chunk_no, "sample_rate": chunk.sample_rate,
                         "engine": chunk.engine, "worker": chunk.worker_pid, "synth_at": chunk.synth_at,
                         "start_s": round(start, 4), "duration_s": round(chunk.duration_s, 4), "text": chunk.text,
                         "visemes": [[round(s + start, 4), round(e + start, 4), v] for s, e, v in chunk.visemes],
                         "fps": fps, "arkit": [_mouth(st.blendshapes) for st in states]})
                    put(pack_frame(Kind.PCM16, chunk_no, start * 1000.0, chunk.audio.astype("<i2").tobytes()))
                    chunk_no += 1
                    if o["frames"] and self._avatar is not None:
                        bg = None if o["alpha"] else emp.profile.background_rgb()
                        for i, st in enumerate(states):
                            rgba = self.engine.render.render(self._avatar, st, size=o["size"], background=bg)
                            data, kind = encode_rgba(rgba, "webp" if bg is None else "jpeg", 85)
                            put(pack_frame(kind, frame_no, (start + i / fps) * 1000.0, data, 1 if bg is None else 0))
                            frame_no += 1
                    media_t += chunk.duration_s
            put({"type": "reply_end", "text": " ".join(full), "duration_s": round(media_t, 3), "frames": frame_no,
                 "chunks": chunk_no})
        except _Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - reported to the client, the session stays up
            with contextlib.suppress(_Cancelled):
                put({"type": "error", "code": "reply_failed", "message": f"the reply failed: {exc}"})
        finally:
            if hasattr(sentences, "close"):
                sentences.close()  # an interrupted turn not recorded by interrupt() yet is recorded now

            def finish() -> None:
                try:
                    q.put_nowait(_DONE)
                except asyncio.QueueFull:  # the consumer is still draining: queue it behind the rest
                    loop.create_task(q.put(_DONE))

            with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody is waiting
                loop.call_soon_threadsafe(finish)

    async def _reply(self, text: str, greet: bool, voice: str | None, ctx: dict[str, Any],
                     cancel: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=8)
        fut = loop.run_in_executor(self.engine.io_executor, self._produce, text, greet, voice, loop, q, cancel, ctx)
        try:
            while True:
                item = await q.get()
                if item is _DONE:
                    break
                if isinstance(item, dict):
                    await self.out.control({**item, "reply": ctx["reply"]})
                else:
                    await self.out.always(item)  # reply media is never dropped: audio gaps are worse than delay
                    if item[1] != Kind.PCM16:
                        self.state.frames_out += 1
                    elif ctx["t0"] is None:
                        ctx["t0"] = time.monotonic()
        finally:
            cancel.set()
            while not q.empty():  # unblock a producer waiting on a full queue
                q.get_nowait()
            # give the producer a moment to stop (it records an interrupted turn itself, on its thread)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(fut), 0.1)
            if self._employee is not None:
                self.state.dialogue = self._employee.session_state(self.state.session_id)

    def checkpoint(self) -> dict[str, Any]:
        if self._employee is not None:
            self.state.dialogue = self._employee.session_state(self.state.session_id)
        return super().checkpoint()

    # ---------------------------------------------------------------------------------------- listening
    async def on_frame(self, frame) -> None:
        if frame.kind == Kind.PCM16 and self.streaming:
            await self.feed_stream(frame.payload)
            return
        if frame.kind != Kind.PCM16 or self._listen is None:
            raise ProtocolError("unsupported", "an employee session takes say/greet messages, or PCM16 audio "
                                'frames (kind 3) after {"type": "listen"}')
        if len(frame.payload) % 2:
            raise ProtocolError("bad_frame", "PCM16 audio needs an even number of bytes")
        lst = self._listen
        lst["samples"] += len(frame.payload) // 2
        if lst["samples"] > MAX_LISTEN_S * lst["rate"]:
            self._listen = None
            raise ProtocolError("too_large", f"a spoken question is limited to {MAX_LISTEN_S:.0f} s")
        lst["chunks"].append(frame.payload)

    async def _heard(self) -> None:
        """Hold-to-talk: transcribe what was said since "listen" (faster-whisper), then answer it like "say"."""
        import numpy as np

        lst, self._listen = self._listen, None
        if lst is None or not lst["chunks"]:
            raise ProtocolError("bad_message", 'no audio: send {"type": "listen", "sample_rate": N}, then PCM16 frames')
        from ..speech.asr import transcribe

        audio = np.frombuffer(b"".join(lst["chunks"]), "<i2").astype(np.int16)
        # the raw hold-to-talk audio keeps Whisper's VAD pass (silence before/after); only the text is used
        heard = await self.engine.run(transcribe, audio, lst["rate"], lst["lang"], True, 1, None, False, io=True)
        await self.out.control({"type": "heard", "text": heard.text, "language": heard.language, "final": True})
        if heard.text.strip():
            await self._start_reply(heard.text.strip(), greet=False)

    async def close(self) -> None:
        await self.stop_streaming(quiet=True)
        await self._stop_reply()
        if self._employee is not None:
            self._employee.end_session(self.state.session_id)
        await super().close()


def spoken_text(log: list[tuple[float, float, str]], played_s: float) -> str:
    """The text of the chunks played before ``played_s``; a chunk cut part way keeps its share of characters."""
    out = []
    for start, dur, text in log:
        if played_s <= start:
            break
        frac = min(1.0, (played_s - start) / dur) if dur > 0 else 1.0
        out.append(text if frac >= 1.0 else text[: int(round(len(text) * frac))])
    joined = "".join(out) if any("\u4e00" <= c <= "\u9fff" for c in "".join(out)) else " ".join(out)
    return joined.strip()


def _mouth(bs: dict[str, float]) -> dict[str, float]:
    # the non-zero shapes only (~10 of 52 per frame), rounded: 0.2 KB a frame instead of a 40 KB JPEG
    return {k: round(v, 3) for k, v in bs.items() if v >= 0.005}


class _Cancelled(Exception):
    pass
