"""Streaming listening: voice-activity detection on live microphone chunks, cut into utterances.

The browser streams PCM16 at its own rate; we resample to 16 kHz, run Silero VAD (its ONNX model ships in
the ``silero-vad`` wheel, ``load_silero_vad(onnx=True)``) on 32 ms windows and emit events:

- ``start``   — speech began (after MIN_SPEECH_S of voiced windows): the trigger for barge-in;
- ``partial`` — every PARTIAL_EVERY_S of speech, the audio so far (the caller transcribes it for live text);
- ``pause``   — PAUSE_S of silence after speech: the utterance so far, to transcribe *speculatively* while
  the hangover runs (if no voice follows, that transcript is the final one: no second Whisper pass after
  ``end``);
- ``end``     — MIN_SILENCE_S of silence after speech: the whole utterance, to transcribe and answer.

Every event with audio says how much of it is voiced (``voiced``: samples up to the last voiced window), so a
transcript of earlier audio can be reused when it already covers all the speech.

Pure and synchronous (no asyncio): the session decides where transcription runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .types import resample_int16

RATE = 16000
WINDOW = 512  # Silero's window at 16 kHz (32 ms)
THRESHOLD = 0.5  # speech probability (Silero's recommended default)
MIN_SPEECH_S = 0.096  # 3 windows: a click or a cough shorter than this is not a question (nor a barge-in)
MIN_SILENCE_S = 0.35  # a pause this long ends the utterance: shorter than a turn gap (~0.5 s), longer than
# the pauses between words and at commas (0.1-0.3 s in our own TTS and in read speech)
PAUSE_S = 0.096  # 3 silent windows: the speech has probably ended; Silero's own release makes shorter unsafe
PAD_S = 0.15  # audio kept before the detected onset, so the first consonant is not cut off
PARTIAL_EVERY_S = 0.8  # live text refresh: often enough to look live, rare enough for a 2-core CPU
MAX_UTTERANCE_S = 30.0  # Whisper's window; a longer monologue is cut and answered

_MODEL_LOCK = threading.Lock()


def _load_vad() -> Any:
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConfigError("streaming listening needs the silero-vad package") from exc
    with _MODEL_LOCK:  # one ONNX session per listener (it keeps recurrent state), created one at a time
        return load_silero_vad(onnx=True)


@dataclass
class Event:
    kind: str  # "start" | "partial" | "pause" | "end"
    audio: np.ndarray | None = None  # int16 at 16 kHz: the utterance so far (partial, pause) or whole (end)
    t: float = 0.0  # stream time (s) of the event: onset for start, end of speech for pause and end
    voiced: int = 0  # samples of audio up to the end of its last voiced window (the rest is silence)


class Listener:
    """Feed it microphone chunks; it returns VAD events. One per listening session."""

    def __init__(self, sample_rate: int, min_silence_s: float = MIN_SILENCE_S) -> None:
        if not 8000 <= sample_rate <= 48000:
            raise InputError(f"sample_rate must be 8000..48000 Hz, got {sample_rate}")
        import torch  # silero's ONNX wrapper takes tensors

        self._torch = torch
        self.sample_rate = sample_rate
        self.min_silence = int(min_silence_s * RATE / WINDOW)
        self.pause = max(1, min(self.min_silence - 1, round(PAUSE_S * RATE / WINDOW)))
        self._model = _load_vad()
        self._pending = np.zeros(0, np.int16)  # 16 kHz samples not yet in a full window
        self._history = np.zeros(0, np.int16)  # recent audio before an onset (PAD_S)
        self._speech: list[np.ndarray] = []
        self._speaking = False
        self._voiced = 0  # consecutive voiced windows
        self._silent = 0  # consecutive silent windows while speaking
        self._since_partial = 0
        self.samples = 0  # 16 kHz samples consumed (stream clock)

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, pcm: bytes | np.ndarray) -> list[Event]:
        if isinstance(pcm, bytes | bytearray | memoryview):
            if len(pcm) % 2:
                raise InputError("PCM16 audio needs an even number of bytes")
            pcm = np.frombuffer(pcm, "<i2")
        audio = resample_int16(np.asarray(pcm, np.int16), self.sample_rate, RATE)
        self._pending = np.concatenate([self._pending, audio])
        events: list[Event] = []
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            events += self._window(window)
        return events

    def _window(self, window: np.ndarray) -> list[Event]:
        x = self._torch.from_numpy(window.astype(np.float32) / 32768.0)
        prob = float(self._model(x, RATE).item())
        self.samples += WINDOW
        voiced = prob >= THRESHOLD
        if not self._speaking:
            self._history = np.concatenate([self._history, window])[-int(PAD_S * RATE) - WINDOW * 4:]
            self._voiced = self._voiced + 1 if voiced else 0
            if self._voiced * WINDOW >= MIN_SPEECH_S * RATE:
                self._speaking, self._silent, self._since_partial = True, 0, 0
                self._speech = [self._history.copy()]
                self._history = np.zeros(0, np.int16)
                onset = (self.samples - self._voiced * WINDOW) / RATE
                return [Event("start", t=onset)]
            return []
        self._speech.append(window)
        self._since_partial += 1
        self._silent = 0 if voiced else self._silent + 1
        total = sum(len(s) for s in self._speech)
        voiced_to = total - self._silent * WINDOW
        end = (self.samples - self._silent * WINDOW) / RATE
        if self._silent >= self.min_silence or total >= MAX_UTTERANCE_S * RATE:
            audio = np.concatenate(self._speech)
            self._speaking, self._speech, self._voiced = False, [], 0
            self._model.reset_states()
            return [Event("end", audio, t=end, voiced=voiced_to)]
        if self._silent == self.pause:
            return [Event("pause", np.concatenate(self._speech), t=end, voiced=voiced_to)]
        if self._since_partial * WINDOW >= PARTIAL_EVERY_S * RATE and voiced:
            self._since_partial = 0
            return [Event("partial", np.concatenate(self._speech), t=self.samples / RATE, voiced=total)]
        return []

    def flush(self) -> list[Event]:
        """End of the stream: an utterance in progress ends now."""
        if not self._speaking:
            return []
        audio = np.concatenate(self._speech)
        self._speaking, self._speech = False, []
        return [Event("end", audio, t=self.samples / RATE, voiced=len(audio))]
