"""An OpenAI-compatible ``/v1/audio/speech`` server as a speech backend (production voices elsewhere)."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import SpeechError
from .text import detect_lang, has_speakable, split_sentences
from .types import Timeline


class HTTPSpeechBackend:
    """An OpenAI-compatible ``POST /v1/audio/speech`` server (WAV response), one request per sentence.

    Such servers return no alignments, so phonemes are unknown and visemes come from the audio envelope
    (silence → sil, louder → more open vowels): coarser than the worker's exact timings.
    """

    def __init__(self, base_url: str, model: str = "tts-1", voice: str = "alloy", api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.voice, self.api_key, self.timeout = model, voice, api_key, timeout

    def stream(self, text: str, voice: str | None, lang: str | None) -> Iterator[dict[str, Any]]:
        for sentence in split_sentences(text):
            if not has_speakable(sentence):
                continue
            t0 = time.perf_counter()
            body = json.dumps({"model": self.model, "input": sentence, "voice": voice or self.voice,
                               "response_format": "wav"}).encode()
            headers = {"Content-Type": "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            url = self.base_url + ("/audio/speech" if self.base_url.endswith("/v1") else "/v1/audio/speech")
            req = urllib.request.Request(url, body, headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = resp.read()
            except (urllib.error.URLError, OSError) as exc:
                raise SpeechError(f"speech server {self.base_url} failed: {exc}") from exc
            audio, rate = _decode_wav(data)
            yield {"audio": audio, "sample_rate": rate, "text": sentence, "lang": lang or detect_lang(sentence),
                   "engine": f"http:{self.model}", "phonemes": [], "transcript": "",
                   "visemes": envelope_visemes(audio, rate), "synth_s": time.perf_counter() - t0}

    def close(self) -> None:
        pass


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2:
                raise SpeechError("speech server must return 16-bit WAV")
            audio = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            if w.getnchannels() > 1:
                audio = audio.reshape(-1, w.getnchannels()).mean(axis=1)
            return audio.astype(np.int16), w.getframerate()
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"speech server returned no WAV audio ({exc})") from exc


def envelope_visemes(audio: np.ndarray, sample_rate: int, hop_s: float = 0.02) -> Timeline:
    """Visemes from loudness alone, for engines that give no alignments."""
    hop = max(int(sample_rate * hop_s), 1)
    n = len(audio) // hop
    if n == 0:
        return []
    rms = np.sqrt((audio[: n * hop].astype(np.float32).reshape(n, hop) ** 2).mean(axis=1))
    ref = float(np.percentile(rms, 95)) or 1.0
    out: Timeline = []
    for i, r in enumerate(rms / ref):
        v = "sil" if r < 0.08 else "nn" if r < 0.3 else "E" if r < 0.6 else "aa"
        s, e = i * hop_s, (i + 1) * hop_s
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], e, v)
        else:
            out.append((s, e, v))
    return out
