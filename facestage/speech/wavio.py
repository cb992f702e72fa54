"""WAV files for synthesized speech (16-bit mono PCM, standard library only)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ..errors import InputError


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise InputError(f"output must be a .wav file, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise InputError(f"{path}: only 16-bit PCM WAV is supported")
            audio = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            if w.getnchannels() > 1:
                audio = audio.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.int16)
            return audio.astype(np.int16), w.getframerate()
    except (wave.Error, EOFError, FileNotFoundError) as exc:
        raise InputError(f"cannot read WAV {path}: {exc}") from exc
