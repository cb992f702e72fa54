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


def test_one_pass_utterance_transcription_detects_the_language_from_the_same_encoding(spoken):
    """The streaming path's transcribe_utterance: language read from the encoder output it decodes (one pass
    instead of two), the detected language picks its prompt; the same words as transcribe() on cut audio."""
    from facestage.speech.asr import transcribe_utterance

    with TTSClient() as tts:
        zh = tts.synthesize_all("一升全脂牛奶多少钱？", voice="kokoro:zf_xiaobei")
    prompts = {"zh": "以下是普通话的句子。"}
    en = transcribe_utterance(spoken.audio, spoken.sample_rate, None, 2, prompts)
    assert en.language == "en" and en.language_probability > 0.8
    assert en.text == transcribe(spoken.audio, spoken.sample_rate, "en", False, 2, None, False).text
    got = transcribe_utterance(zh.audio, zh.sample_rate, None, 2, prompts)
    assert got.language == "zh" and "牛奶" in got.text and "多少钱" in got.text, got.text
    assert got.text == transcribe(zh.audio, zh.sample_rate, "zh", False, 2, prompts["zh"], False).text
    assert transcribe_utterance(np.zeros(16000, np.int16), 16000, None, 2).text == ""
    with pytest.raises(InputError):
        transcribe_utterance(np.zeros(0, np.int16), 16000)
