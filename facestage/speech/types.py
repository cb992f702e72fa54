"""What the speech side hands to the rest of facestage: sentence-sized audio with its timelines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Timeline = list[tuple[float, float, str]]


@dataclass
class SpeechChunk:
    """One synthesized sentence.

    ``phonemes`` and ``visemes`` are (start_s, end_s, name) relative to THIS chunk's first sample;
    ``offset_s`` is where the chunk starts within the whole utterance (sum of earlier chunk durations),
    so absolute time = offset_s + start_s. Viseme names are the Oculus 15 (sil PP FF … ou).
    """

    audio: np.ndarray  # int16 mono
    sample_rate: int
    offset_s: float
    text: str
    lang: str
    engine: str  # e.g. "piper:joe", "espeak:cmn", "http:tts-1"
    phonemes: Timeline = field(default_factory=list)
    visemes: Timeline = field(default_factory=list)
    transcript: str = ""  # the engine's phoneme string (espeak mnemonics carry Mandarin tone numbers)
    synth_s: float = 0.0  # time the engine took for this chunk
    worker_pid: int | None = None  # the TTS worker process that made it
    synth_at: tuple[float, float] | None = None  # wall-clock (time.time()) start/end of its synthesis

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate if self.sample_rate else 0.0


@dataclass
class Utterance:
    """Chunks joined into one clip: int16 audio and absolute viseme/phoneme timelines."""

    audio: np.ndarray
    sample_rate: int
    visemes: Timeline
    phonemes: Timeline
    chunks: list[SpeechChunk]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate if self.sample_rate else 0.0


def join_chunks(chunks: list[SpeechChunk], sample_rate: int | None = None) -> Utterance:
    """Concatenate chunks (resampling any whose rate differs) and shift their timelines to absolute time."""
    rate = sample_rate or (chunks[0].sample_rate if chunks else 22050)
    parts: list[np.ndarray] = []
    visemes: Timeline = []
    phonemes: Timeline = []
    t = 0.0
    for ch in chunks:
        audio = ch.audio if ch.sample_rate == rate else resample_int16(ch.audio, ch.sample_rate, rate)
        parts.append(audio)
        visemes += [(t + s, t + e, v) for s, e, v in ch.visemes]
        phonemes += [(t + s, t + e, p) for s, e, p in ch.phonemes]
        t += len(audio) / rate
    audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return Utterance(audio, rate, visemes, phonemes, list(chunks))


def resample_int16(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for speech between 16 and 48 kHz)."""
    if src == dst or len(audio) == 0:
        return audio
    n = int(round(len(audio) * dst / src))
    x = np.linspace(0, len(audio) - 1, n)
    return np.interp(x, np.arange(len(audio)), audio.astype(np.float32)).astype(np.int16)
