"""espeak-ng through its C API (ctypes): audio plus phoneme events with exact millisecond positions.

GPL-3.0 engine: import this module only inside the TTS worker process (facestage.speech.worker).

Library choice: the pip package ``espeakng-loader`` ships espeak-ng 1.52 whose ``cmn`` voice speaks
Mandarin; Debian's 1.51 reads tone digits aloud with ``cmn`` and needs ``cmn-latn-pinyin``. We prefer the
pip build and fall back to the system library with the right voice name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

# espeak_EVENT_TYPE values from speak_lib.h
_EV_LIST_TERMINATED = 0
_EV_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes phonememode bits (speak_lib.h)
_PHONEMES_TIE = 0x80  # bits 8-23 then hold the tie character


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class EspeakResult:
    audio: np.ndarray  # int16 mono
    sample_rate: int
    phonemes: list[tuple[float, float, str]]  # (start_s, end_s, IPA phoneme); "" = pause
    transcript: str  # espeak's own phoneme mnemonics, with tone numbers for tonal languages


class Espeak:
    """One espeak-ng instance (the C library is a process-wide singleton: keep one of these per process)."""

    # voice names that mean "Mandarin" for each library generation
    MANDARIN_VOICES = {"pip": "cmn", "system": "cmn-latn-pinyin"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib, data_path, self.flavour = self._load()
        self.sample_rate = int(
            self._lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
            )
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (no voice data found)")
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._audio: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: C holds only the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    @staticmethod
    def _load() -> tuple[ctypes.CDLL, bytes | None, str]:
        try:
            import espeakng_loader

            return ctypes.CDLL(espeakng_loader.get_library_path()), espeakng_loader.get_data_path().encode(), "pip"
        except (ImportError, OSError, RuntimeError):
            name = ctypes.util.find_library("espeak-ng")
            if not name:
                raise RuntimeError(
                    "espeak-ng is not installed: pip install espeakng-loader (or apt-get install espeak-ng)"
                ) from None
            return ctypes.CDLL(name), None, "system"

    def voice_for(self, lang: str) -> str:
        """espeak voice name for a language code ('zh' → the Mandarin voice of this library)."""
        if lang in ("zh", "cmn", "zh-cn"):
            return self.MANDARIN_VOICES[self.flavour]
        return {"en": "en-us"}.get(lang, lang)

    def _on_synth(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.POINTER(_Event)) -> int:
        if n > 0:
            self._audio.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self._events.append((ev.audio_position, ev.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def _set_voice(self, voice: str) -> None:
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice

    def transcript(self, text: str, voice: str) -> str:
        """Phoneme mnemonics for the text (e.g. Mandarin 'ni214X'Au214' with tone contours)."""
        return self._phonemes(text, voice, 0)

    def ipa(self, text: str, voice: str = "en-us") -> str:
        """IPA with '^' tying multi-letter phonemes (what misaki's tables expect), e.g. 'ˈæpə^l pˈe^ɪ'."""
        mode = _PHONEMES_IPA | _PHONEMES_TIE | (ord("^") << 8)
        return self._phonemes(text, voice, mode)

    def _phonemes(self, text: str, voice: str, mode: int) -> str:
        with self._lock:
            self._set_voice(voice)
            buf = ctypes.c_char_p(text.encode("utf-8"))
            ptr = ctypes.pointer(buf)
            out: list[str] = []
            # espeak advances the pointer clause by clause and sets it to NULL at the end; the bound only
            # guards against a library that never does
            for _ in range(10_000):
                if not ptr.contents.value:
                    break
                res = self._lib.espeak_TextToPhonemes(ptr, _CHARS_UTF8, mode)
                if res:
                    out.append(res.decode("utf-8", "replace"))
            return " ".join(out)

    def synthesize(self, text: str, voice: str) -> EspeakResult:
        with self._lock:
            self._set_voice(voice)
            self._audio, self._events = [], []
            data = text.encode("utf-8")
            err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err}")
            audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
            events = self._events
        duration = len(audio) / self.sample_rate
        phonemes: list[tuple[float, float, str]] = []
        for k, (pos_ms, name) in enumerate(events):
            start = pos_ms / 1000.0
            end = events[k + 1][0] / 1000.0 if k + 1 < len(events) else duration
            end = min(max(end, start), duration)
            if end > start:
                phonemes.append((start, end, name))
        # leading audio before the first event is silence
        if phonemes and phonemes[0][0] > 0:
            phonemes.insert(0, (0.0, phonemes[0][0], ""))
        elif not phonemes and duration > 0:
            phonemes = [(0.0, duration, "")]
        if phonemes and phonemes[-1][1] < duration:
            phonemes.append((phonemes[-1][1], duration, ""))
        return EspeakResult(audio.astype(np.int16), self.sample_rate, phonemes, self.transcript(text, voice))
