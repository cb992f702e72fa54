"""Speech input: faster-whisper with the packaged Whisper base weights and voice-activity detection,
fed with real synthesized speech (a TTS → ASR round trip)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from facestage.errors import InputError
from facestage.speech import TTSClient
from facestage.speech.asr import transcribe

SENTENCE = "Our fresh milk is delivered every morning before breakfast."


@pytest.fixture(scope="module")
def spoken():
    with TTSClient() as tts:
        return tts.synthesize_all(SENTENCE)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_round_trip_recovers_the_words_and_vad_skips_the_silence(spoken):
    pad = np.zeros(int(1.5 * spoken.sample_rate), np.int16)
    result = transcribe(np.concatenate([pad, spoken.audio, pad]), spoken.sample_rate)
    assert result.language == "en" and result.language_probability > 0.8
    want = _words(SENTENCE)
    got = set(_words(result.text))
    assert sum(w in got for w in want) / len(want) >= 0.8, result.text
    # voice activity detection: the first voiced segment starts after the 1.5 s of leading silence
    # (Silero pads segments by a few hundred ms)
    assert result.segments and result.segments[0][0] >= 1.0, result.segments
    assert result.segments[-1][1] <= 1.5 + spoken.duration_s + 0.6


def test_silence_gives_no_text_and_bad_input_is_an_error():
    assert transcribe(np.zeros(16000 * 2, np.int16), 16000).text == ""
    with pytest.raises(InputError):
        transcribe(np.zeros(0, np.int16), 16000)
