"""Speech: real synthesis in the worker process (piper for English, espeak-ng for Mandarin), viseme
timelines checked against the audio itself, the CLI, and the HTTP speech backend's wire format."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

from facestage.errors import InputError
from facestage.speech import HTTPSpeechBackend, SpeechError, TTSClient, join_chunks
from facestage.speech.text import detect_lang, split_sentences
from facestage.speech.visemes import MOUTH_NAMES, VISEMES, mouth_opening, phoneme_visemes, viseme_frames
from facestage.speech.wavio import read_wav

EN_TEXT = "Good morning. Our fresh milk comes from local farms, and we deliver before breakfast!"
ZH_TEXT = "你好，我们的牛奶很新鲜。每瓶3元，每天早上送到您家门口。"


@pytest.fixture(scope="module")
def tts():
    client = TTSClient()
    yield client
    client.close()


@pytest.fixture(scope="module")
def en_chunks(tts):
    return list(tts.synthesize(EN_TEXT))


@pytest.fixture(scope="module")
def zh_chunks(tts):
    # espeak-ng is the fallback for languages without a neural voice; Mandarin itself is Kokoro's
    # (tests/test_speech_kokoro.py), so this checks the fallback engine by asking for it
    return list(tts.synthesize(ZH_TEXT, voice="espeak:cmn"))


def _rms(audio: np.ndarray, sr: int, hop_s: float = 0.01) -> np.ndarray:
    hop = int(sr * hop_s)
    n = len(audio) // hop
    return np.sqrt((audio[: n * hop].astype(np.float32).reshape(n, hop) ** 2).mean(axis=1))


def _check_timeline(timeline, duration: float) -> None:
    assert timeline, "empty timeline"
    assert timeline[0][0] == pytest.approx(0.0, abs=1e-6)
    assert timeline[-1][1] == pytest.approx(duration, abs=0.002), "timeline must cover the whole audio"
    for (s0, e0, _), (s1, e1, _) in zip(timeline, timeline[1:], strict=False):
        assert e0 > s0 and e1 > s1, "every segment has positive length"
        assert s1 == pytest.approx(e0, abs=1e-6), "segments are contiguous and in order"


def test_english_audio_is_real_speech_with_a_covering_monotonic_viseme_timeline(en_chunks):
    assert [c.engine for c in en_chunks] == ["piper:joe"] * len(en_chunks)
    assert len(en_chunks) >= 2, "streamed sentence by sentence"
    utt = join_chunks(en_chunks)
    words = len(EN_TEXT.split())
    # conversational English: 1.5-4.5 words per second (+ pauses at punctuation)
    assert words / 4.5 < utt.duration_s < words / 1.5 + 1.0, utt.duration_s
    assert _rms(utt.audio, utt.sample_rate).max() > 2000, "audio is not silent"
    for c in en_chunks:
        assert c.audio.dtype == np.int16 and c.sample_rate == 22050
        _check_timeline(c.phonemes, c.duration_s)
        _check_timeline(c.visemes, c.duration_s)
        assert {v for _, _, v in c.visemes} <= set(VISEMES)
    # offsets place chunks back to back; joined timeline covers the whole clip
    for a, b in zip(en_chunks, en_chunks[1:], strict=False):
        assert b.offset_s == pytest.approx(a.offset_s + a.duration_s)
    _check_timeline(utt.visemes, utt.duration_s)
    names = {v for _, _, v in utt.visemes}
    assert {"sil", "PP", "aa", "FF"} <= names, names  # "morning", "farms", "breakfast"


def test_mandarin_text_gives_mandarin_speech_not_english_digit_names(zh_chunks):
    assert all(c.engine.startswith("espeak:cmn") and c.lang == "zh" for c in zh_chunks)
    utt = join_chunks(zh_chunks)
    chars = len(re.findall(r"[\u4e00-\u9fff]", ZH_TEXT)) + 1  # + the digit 3, read as "san"
    assert chars / 7 < utt.duration_s < chars / 2.5 + 1.0, utt.duration_s  # 2.5-7 syllables per second
    assert _rms(utt.audio, utt.sample_rate).max() > 2000
    transcript = " ".join(c.transcript for c in zh_chunks)
    # espeak's Mandarin mnemonics carry a tone contour per syllable (55, 35, 214, 51, 11)
    tones = re.findall(r"(55|35|214|51|11)", transcript)
    assert len(tones) >= 0.8 * chars, transcript
    assert "s'a55n" in transcript, "the digit 3 is read in Mandarin (san1)"
    assert not re.search(r"Tr'i:|T\\ri", transcript), "not the English word 'three'"
    phonemes = {p for c in zh_chunks for _, _, p in c.phonemes}
    assert phonemes & {"ɕ", "χ", "ts", "tɕ", "iou", "ˈiɛ", "ˈɑu"}, phonemes  # Mandarin-only sounds
    for c in zh_chunks:
        _check_timeline(c.visemes, c.duration_s)


@pytest.mark.parametrize("which", ["en", "zh"])
def test_silence_in_the_audio_lines_up_with_sil_visemes(which, en_chunks, zh_chunks):
    for c in en_chunks if which == "en" else zh_chunks:
        r = _rms(c.audio, c.sample_rate)
        t = (np.arange(len(r)) + 0.5) * 0.01
        label = np.array(["sil"] * len(r), dtype=object)
        for s, e, v in c.visemes:
            label[(t >= s) & (t < e)] = v
        speech_level = float(np.median(r[label != "sil"]))
        # every pause long enough to see (>= 60 ms) is really quiet ...
        for s, e, v in c.visemes:
            if v == "sil" and e - s >= 0.06:
                inner = r[(t >= s + 0.02) & (t < e - 0.02)]
                assert inner.mean() < 0.1 * speech_level, (c.text, s, e, inner.mean() / speech_level)
        # ... and every long stretch of true silence (>= 150 ms below 1 % of peak) is mostly a sil viseme;
        # the rest may only be the closure of a stop (a final "t" is silent until its release)
        quiet = r < 0.01 * np.percentile(r, 95)
        i = 0
        while i < len(quiet):
            j = i
            while j < len(quiet) and quiet[j]:
                j += 1
            if j - i >= 15:
                run = label[i:j]
                assert (run == "sil").mean() >= 0.5, (c.text, i, j, list(run))
                assert np.isin(run, ["sil", "PP", "DD", "kk"]).mean() >= 0.8, (c.text, i, j, list(run))
            i = j + 1


def test_viseme_frames_sample_at_video_rate_with_coarticulation():
    timeline = [(0.0, 0.2, "sil"), (0.2, 0.4, "aa"), (0.4, 0.46, "PP"), (0.46, 0.7, "ou"), (0.7, 1.0, "sil")]
    frames = viseme_frames(timeline, 25, 1.0)
    assert len(frames) == 25 and all(set(f) == set(MOUTH_NAMES) for f in frames)
    opening = [mouth_opening(f) for f in frames]
    assert max(opening[5:10]) > 0.5 and opening[1] < 0.05 and opening[23] < 0.05  # open on aa, shut in sil
    assert frames[14]["mouthPucker"] > 0.5  # the 'ou' hold
    # the short bilabial closure is reached (lips pressed) between two open shapes
    assert max(f["mouthPressLeft"] for f in frames[9:13]) > 0.3
    # coarticulation: at the aa→PP boundary the frame blends both shapes, no hard switch
    boundary = frames[10]  # 0.42 s
    assert boundary["jawOpen"] > 0.05 and boundary["mouthPressLeft"] > 0.05
    steps = np.abs(np.diff([f["jawOpen"] for f in frames]))
    assert steps.max() < 0.5
    assert viseme_frames(timeline, 30, 0.0) == []


def test_phoneme_to_viseme_table_covers_both_engines():
    assert phoneme_visemes("ˈaʊ") == ["aa", "ou"]  # diphthong splits
    assert phoneme_visemes("tʃ") == ["CH"] and phoneme_visemes("ts") == ["SS"]
    assert phoneme_visemes("ph") == ["PP"]  # espeak's aspirated Mandarin p
    assert phoneme_visemes("ɕ") == ["CH"] and phoneme_visemes("ð") == ["TH"]
    assert phoneme_visemes("") == ["sil"] and phoneme_visemes(",") == ["sil"]


def test_text_helpers():
    assert split_sentences("One. Two 3.5 three! 你好。再见！") == ["One.", "Two 3.5 three!", "你好。", "再见！"]
    assert detect_lang("牛奶多少钱") == "zh" and detect_lang("How much is 牛奶?") == "en"


def test_engines_run_in_a_separate_process_and_recover_from_a_crash(tts, en_chunks):
    pid = tts.backend.pid
    assert pid is not None and pid != os.getpid()
    # the GPL engines never enter the test process
    assert "piper" not in sys.modules and "espeakng_loader" not in sys.modules
    os.kill(pid, signal.SIGKILL)
    chunks = list(tts.synthesize("Still here."))
    assert chunks and tts.backend.pid not in (None, pid)
    # stopping a stream half way leaves the client usable
    stream = tts.synthesize("First sentence. Second sentence. Third sentence.")
    next(stream)
    stream.close()
    assert len(list(tts.synthesize("Again."))) == 1


def test_a_worker_pool_serves_concurrent_streams_in_parallel():
    long_text = " ".join(f"This is sentence number {i} of a long answer about fresh milk." for i in range(8))
    done: dict[str, float] = {}
    engines: dict[str, set] = {}

    def speak(name: str, text: str, client: TTSClient) -> None:
        engines[name] = {c.engine for c in client.synthesize(text)}
        done[name] = time.perf_counter()

    with TTSClient(workers=2) as pool:
        pool.warmup(("en",))
        assert len({w.pid for w in pool.backend.workers}) == 2
        a = threading.Thread(target=speak, args=("long", long_text, pool))
        a.start()
        time.sleep(0.05)
        speak("short", "Hi.", pool)  # does not wait for the long answer
        a.join(timeout=120)
    assert done["short"] < done["long"], "the short request waited for the long one"
    assert engines == {"long": {"piper:joe"}, "short": {"piper:joe"}}


def test_bad_input_is_a_clear_error(tts):
    with pytest.raises(InputError, match="nothing to say"):
        list(tts.synthesize("  ... !! "))
    with pytest.raises(InputError, match="unknown voice"):
        list(tts.synthesize("Hello.", voice="piper:nobody"))
    assert len(list(tts.synthesize("Bonjour.", voice="espeak:fr"))) == 1  # other languages via espeak


def test_say_cli_writes_wav_and_viseme_json(tmp_path):
    out, vis = tmp_path / "hi.wav", tmp_path / "hi.json"
    proc = subprocess.run([sys.executable, "-m", "facestage", "say", "Hello there. 你好。", "-o", str(out),
                           "--visemes", str(vis), "--fps", "30"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    audio, sr = read_wav(out)
    doc = json.loads(vis.read_text())
    assert doc["duration_s"] == pytest.approx(len(audio) / sr, abs=1e-3)
    assert [c["engine"] for c in doc["chunks"]] == ["piper:joe", "kokoro:zf_xiaobei"]
    assert doc["visemes"][-1][1] == pytest.approx(doc["duration_s"], abs=2e-3)
    assert len(doc["frames"]) == round(doc["duration_s"] * 30)
    bad = subprocess.run([sys.executable, "-m", "facestage", "say", "Hi", "-o", str(tmp_path / "x.mp3")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and ".wav" in bad.stderr


class _SpeechHandler(http.server.BaseHTTPRequestHandler):
    """A wire-protocol double of an OpenAI-style /v1/audio/speech server: answers a 16 kHz WAV with a
    tone burst per word and 200 ms of silence at each end, so the envelope visemes can be checked."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        sr = 16000
        parts = [np.zeros(int(0.2 * sr))]
        for _ in body["input"].split():
            t = np.arange(int(0.25 * sr)) / sr
            parts += [8000 * np.sin(2 * np.pi * 220 * t), np.zeros(int(0.05 * sr))]
        parts.append(np.zeros(int(0.2 * sr)))
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(np.concatenate(parts).astype("<i2").tobytes())
        data = buf.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_http_speech_backend_streams_per_sentence():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SpeechHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        backend = HTTPSpeechBackend(f"http://127.0.0.1:{server.server_port}/v1", model="tts-1", api_key="k1")
        chunks = list(TTSClient(backend=backend).synthesize("Hello there. How are you today?"))
        assert [c.text for c in chunks] == ["Hello there.", "How are you today?"]
        assert chunks[0].duration_s == pytest.approx(0.4 + 2 * 0.3, abs=0.01)
        assert chunks[0].visemes[0][2] == "sil" and chunks[0].visemes[0][1] == pytest.approx(0.2, abs=0.021)
        assert chunks[1].offset_s == pytest.approx(chunks[0].duration_s)
        req = _SpeechHandler.requests[0]
        assert req["path"] == "/v1/audio/speech" and req["auth"] == "Bearer k1" and req["model"] == "tts-1"
    finally:
        server.shutdown()
        server.server_close()
    down = HTTPSpeechBackend(f"http://127.0.0.1:{server.server_port}", timeout=2)
    with pytest.raises(SpeechError, match="failed"):
        list(TTSClient(backend=down).synthesize("Hello."))
