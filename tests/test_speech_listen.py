"""The streaming listener on its own: Silero VAD (ONNX) on real speech from our TTS, fed in mic-sized chunks."""

from __future__ import annotations

import numpy as np
import pytest

from facestage.errors import InputError
from facestage.speech import TTSClient
from facestage.speech.kokoro import SAMPLE_RATE
from facestage.speech.listen import MIN_SILENCE_S, Listener


@pytest.fixture(scope="module")
def speech():
    with TTSClient() as tts:
        return tts.synthesize_all("一升全脂牛奶多少钱？", voice="kokoro:zf_xiaobei")


def test_events_follow_the_speech_and_its_end(speech):
    assert speech.sample_rate == SAMPLE_RATE  # Kokoro speaks the question
    rate = speech.sample_rate
    audio = np.concatenate([np.zeros(rate, np.int16), speech.audio, np.zeros(rate, np.int16)])
    listener = Listener(rate)
    events = []
    step = int(0.085 * rate)
    for i in range(0, len(audio), step):
        events += listener.feed(audio[i : i + step].tobytes())
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    r = np.abs(speech.audio.astype(np.float32))
    onset = 1.0 + np.argmax(r > 0.05 * r.max()) / rate
    offset = 1.0 + (len(r) - np.argmax(r[::-1] > 0.05 * r.max())) / rate
    assert abs(events[0].t - onset) < 0.15, (events[0].t, onset)
    assert abs(events[-1].t - offset) < 0.3, (events[-1].t, offset)  # end of speech, before the hangover
    assert listener.samples / 16000 > events[-1].t + MIN_SILENCE_S - 0.05  # the end came after the silence
    # the utterance handed over covers the whole question (with the onset padding)
    assert len(events[-1].audio) / 16000 >= offset - onset
    assert "partial" in kinds and not listener.speaking
    # the pause (speculative final) comes first, over all the voiced audio the end reports: no voice after it
    pause = [e for e in events if e.kind == "pause"][-1]
    assert kinds.index("pause") < kinds.index("end") and pause.voiced == events[-1].voiced
    assert len(pause.audio) >= events[-1].voiced and pause.t == events[-1].t
    assert events[-1].voiced / 16000 >= offset - onset  # the voiced part holds the whole question


def test_bad_audio_is_a_clear_error():
    with pytest.raises(InputError, match="8000..48000"):
        Listener(4000)
    listener = Listener(16000)
    with pytest.raises(InputError, match="even number of bytes"):
        listener.feed(b"\0\0\0")
    assert listener.feed(np.zeros(160, np.int16)) == [] and listener.flush() == []
