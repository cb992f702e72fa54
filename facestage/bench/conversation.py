"""``facestage bench conversation``: a spoken conversation with the brand console in real Chromium.

Chromium's fake microphone plays a WAV of questions spoken by our own TTS (piper for English, Kokoro for
Mandarin), the console streams it to a real server on 127.0.0.1 (hands-free "Talk" mode: server VAD,
streaming Whisper), and the page's test hooks record when each answer's first audio starts playing.

Measured per language: **end of user speech → first reply audio played in the page** (the end of speech is
known exactly from the WAV; the capture clock starts one microphone chunk before the page's first chunk),
median and p95; plus TTS real-time factor per voice and time to first audio from text.
``facestage bench`` records the result (``--out DIR``, ``--no-save``); this module writes no file itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = "/usr/bin/chromium"
QUESTIONS = {
    "en": ["What are your opening hours?", "How much is the delivery fee?", "Do you have lactose-free milk?",
           "Can I pay with Alipay?", "Is the Greek yogurt sweetened?", "Do you deliver to Northbridge?"],
    "zh": ["你们几点关门？", "配送费是多少？", "有没有无乳糖牛奶？", "可以用支付宝吗？", "希腊酸奶加糖了吗？",
           "能送到北桥吗？"],
}
WAV_RATE = 48000  # Chromium's capture rate: no resampling in the fake device
LEAD_IN_S = 1.0  # silence before the first question (the page's microphone settles)
ANSWER_GAP_S = 11.0  # silence after each question: room for the whole answer before the next one
MIC_CHUNK_S = 4096 / 48000  # the console's ScriptProcessor buffer: its first chunk arrives this late
TARGET_MS = 1000.0


def speech_bounds(audio: np.ndarray, rate: int, level: float = 0.02) -> tuple[float, float]:
    """(first, last) time with sound above ``level`` of the peak, in 10 ms blocks."""
    hop = rate // 100
    n = len(audio) // hop
    rms = np.sqrt((audio[: n * hop].astype(np.float32).reshape(n, hop) ** 2).mean(axis=1))
    loud = np.nonzero(rms > level * rms.max())[0]
    return float(loud[0] * hop / rate), float((loud[-1] + 1) * hop / rate)


def question_wav(path: Path, texts: list[str], gaps: list[float], tts: Any) -> list[tuple[float, float]]:
    """Speak ``texts`` into a 48 kHz WAV, text i followed by gaps[i] s of silence; speech (start, end) times."""
    from ..speech.types import resample_int16
    from ..speech.wavio import write_wav

    parts = [np.zeros(int(LEAD_IN_S * WAV_RATE), np.int16)]
    t = LEAD_IN_S
    bounds = []
    for text, gap in zip(texts, gaps, strict=True):
        utt = tts.synthesize_all(text)
        audio = resample_int16(utt.audio, utt.sample_rate, WAV_RATE)
        s, e = speech_bounds(audio, WAV_RATE)
        bounds.append((t + s, t + e))
        parts += [audio, np.zeros(int(gap * WAV_RATE), np.int16)]
        t += len(audio) / WAV_RATE + gap
    write_wav(path, np.concatenate(parts), WAV_RATE)
    return bounds


def launch(playwright: Any, wav: Path) -> Any:
    """Chromium with the WAV as its microphone (played once: %noloop)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"])


def open_console_talking(browser: Any, url: str) -> Any:
    """The console on the demo brand, hands-free talking started with a click (audio needs a gesture)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/console.html")
    page.evaluate("localStorage.clear()")
    page.click("#demo")
    page.wait_for_function("window.fsConsole.started", timeout=120_000)
    page.click("#talk")
    page.wait_for_function("window.fsConsole.events.some((e) => e.type === 'mic_first_chunk')", timeout=60_000)
    return page


def latencies(events: list[dict], bounds: list[tuple[float, float]]) -> list[float | None]:
    """End of each question's speech → the first audio of the answer it got, in ms (None: no answer)."""
    mic = next(e for e in events if e["type"] == "mic_first_chunk")
    capture0 = mic["t"] - MIC_CHUNK_S * 1000  # page time (ms) of the WAV's first sample
    # the reply number follows the question order; its first audio plays the page's lead after it is scheduled
    firsts = [e["t"] + e.get("lead_ms", 120.0) for e in events if e["type"] == "first_audio"]
    out: list[float | None] = []
    for _, end in bounds:
        end_ms = capture0 + end * 1000
        later = [f for f in firsts if f > end_ms]
        out.append(round(later[0] - end_ms, 1) if later else None)
    return out


def breakdown(events: list[dict], bounds: list[tuple[float, float]]) -> dict[str, float]:
    """Median ms per stage on the page clock, end of speech → first sound:
    ``to_heard`` (VAD end-of-speech hangover + final transcription + network; ``asr`` = the server's own
    transcription time within it, 0 when the speculative transcript was reused), ``heard_to_reply`` (dialogue),
    ``reply_to_audio`` (first TTS chunk), ``audio_to_sound`` (decode + the page's scheduling lead)."""
    mic = next(e for e in events if e["type"] == "mic_first_chunk")
    capture0 = mic["t"] - MIC_CHUNK_S * 1000
    stages: dict[str, list[float]] = {"to_heard": [], "asr": [], "heard_to_reply": [], "reply_to_audio": [],
                                      "audio_to_sound": []}

    def first(kind: str, after: float, **match: Any) -> dict | None:
        return next((e for e in events if e["type"] == kind and e["t"] >= after
                     and all(e.get(k) == v for k, v in match.items())), None)

    for _, end in bounds:
        end_ms = capture0 + end * 1000
        heard = first("heard", end_ms)
        reply = heard and first("reply", heard["t"], index=0)
        audio = reply and first("audio", reply["t"], reply=reply["reply"], index=0)
        sound = audio and first("first_audio", audio["t"], reply=reply["reply"])
        if not sound:
            continue
        stages["to_heard"].append(heard["t"] - end_ms)
        if heard.get("asr_ms") is not None:
            stages["asr"].append(heard["asr_ms"])
        stages["heard_to_reply"].append(reply["t"] - heard["t"])
        stages["reply_to_audio"].append(audio["t"] - reply["t"])
        stages["audio_to_sound"].append(sound["t"] + sound.get("lead_ms", 120.0) - audio["t"])
    return {k: round(statistics.median(v), 1) for k, v in stages.items() if v}


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def _tts_figures(tts: Any) -> dict[str, Any]:
    voices = {"piper:joe": "Our farm shops are open every day from 8 am to 8 pm.",
              "kokoro:zf_xiaobei": "我们的牧场门店每天早上8点到晚上8点营业。",
              "kokoro:zm_yunxi": "我们的牧场门店每天早上8点到晚上8点营业。"}
    out = {}
    for voice, text in voices.items():
        rtf, first = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            chunks = []
            for c in tts.synthesize(text, voice=voice):
                if not chunks:
                    first.append(time.perf_counter() - t0)
                chunks.append(c)
            rtf.append(sum(c.synth_s for c in chunks) / sum(c.duration_s for c in chunks))
        out[voice] = {"rtf": round(statistics.median(rtf), 3),
                      "text_to_first_audio_ms": round(statistics.median(first) * 1000, 1)}
    return out


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from ..serving import ServerThread
    from ..speech import TTSClient

    n = max(2, min(int(getattr(args, "frames", None) or 6), len(QUESTIONS["en"])))
    load0 = os.getloadavg()[0]
    result: dict[str, Any] = {"cpus": os.cpu_count(), "questions_per_language": n, "target_p50_ms": TARGET_MS}
    with tempfile.TemporaryDirectory() as tmp, TTSClient() as tts:
        tts.warmup(("en", "zh"))
        result["tts"] = _tts_figures(tts)
        with ServerThread(db_path=Path(tmp) / "p.sqlite3") as srv, sync_playwright() as p:
            srv.app.engine.tts.warmup(("en", "zh"))
            for lang in ("en", "zh"):
                wav = Path(tmp) / f"questions-{lang}.wav"
                bounds = question_wav(wav, QUESTIONS[lang][:n], [ANSWER_GAP_S] * n, tts)
                browser = launch(p, wav)
                try:
                    page = open_console_talking(browser, srv.url)
                    deadline = time.monotonic() + bounds[-1][1] + ANSWER_GAP_S + 30
                    while time.monotonic() < deadline:
                        done = page.evaluate("window.fsConsole.events.filter((e) => e.type === 'first_audio').length")
                        if done >= n and page.evaluate("window.fsConsole.replyEnded") >= n:
                            break
                        time.sleep(0.5)
                    state = page.evaluate("({events: fsConsole.events, heard: fsConsole.heard})")
                finally:
                    browser.close()
                lat = latencies(state["events"], bounds)
                ok = [v for v in lat if v is not None]
                result[lang] = {"end_of_speech_to_first_audio_ms_p50": _pct(ok, 50),
                                "end_of_speech_to_first_audio_ms_p95": _pct(ok, 95),
                                "samples_ms": lat, "answered": len(ok), "heard": state["heard"],
                                "breakdown_ms_p50": breakdown(state["events"], bounds)}
    result["load_avg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return result
