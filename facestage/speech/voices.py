"""The voice catalogue and how a requested voice resolves per sentence language.

Pure data (no engine imports), so the profile validator, the client and the worker agree on names.

A voice is ``engine:name``: ``piper:joe`` (English), ``kokoro:zf_xiaobei`` … (Mandarin, neural) or
``espeak:NAME`` (any espeak-ng voice; the fallback for languages with no neural voice). A request may
give one voice (it applies to sentences of its own language; others use that language's default) or a
mapping language → voice (a brand's per-language choice).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InputError

PIPER_VOICES = {"joe": "en_US-joe-medium"}
# Kokoro-82M v1.0 Mandarin voices (style vectors from npm kokoro-js@1.2.1): name → gender.
KOKORO_ZH_VOICES = {
    "zf_xiaobei": "female", "zf_xiaoni": "female", "zf_xiaoxiao": "female", "zf_xiaoyi": "female",
    "zm_yunjian": "male", "zm_yunxi": "male", "zm_yunxia": "male", "zm_yunyang": "male",
}
# zf_xiaobei had the lowest Whisper character error rate on the brand sentences (BRIEF: 2.3 %).
DEFAULT_VOICES = {"en": "piper:joe", "zh": "kokoro:zf_xiaobei"}
VOICE_LANG = {**{f"piper:{v}": "en" for v in PIPER_VOICES}, **{f"kokoro:{v}": "zh" for v in KOKORO_ZH_VOICES}}

VoiceSpec = str | Mapping[str, str] | None


def list_voices() -> list[str]:
    return [*VOICE_LANG, "espeak:<espeak voice, e.g. cmn, en-us, fr>"]


def check_voice(voice: str) -> str:
    """The voice name if it exists, else an InputError listing the choices."""
    if voice in VOICE_LANG or (voice.startswith("espeak:") and len(voice) > 7):
        return voice
    bare = voice.split(":", 1)[-1]
    for full in VOICE_LANG:  # accept a bare name ("zm_yunxi", "joe") for convenience
        if full.split(":", 1)[1] == bare:
            return full
    raise InputError(f"unknown voice {voice!r}; choose one of {', '.join(list_voices())}")


def check_voice_spec(spec: object) -> VoiceSpec:
    """Validate a request's voice (None, a name, or language → name) and normalise the names."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, str):
        return check_voice(spec)
    if isinstance(spec, Mapping):
        out: dict[str, str] = {}
        for lang, v in spec.items():
            if not isinstance(v, str):
                raise InputError(f"voice for {lang!r} must be a string")
            out[str(lang)] = check_voice(v)
        return out
    raise InputError("voice must be a voice name or an object of language → voice name")


def resolve(spec: VoiceSpec, lang: str) -> tuple[str, str]:
    """(engine, engine voice) for a sentence in ``lang``.

    An explicit espeak voice is used as given for every sentence (the caller chose espeak on purpose);
    a piper or kokoro voice only for sentences of its own language.
    """
    chosen: str | None = None
    if isinstance(spec, Mapping):
        chosen = spec.get(lang)
    elif isinstance(spec, str):
        voice = check_voice(spec)
        if voice.startswith("espeak:") or VOICE_LANG.get(voice) == lang:
            chosen = voice
    chosen = check_voice(chosen) if chosen else DEFAULT_VOICES.get(lang)
    if chosen is None:  # no neural voice for this language: espeak-ng speaks it
        return "espeak", lang
    engine, name = chosen.split(":", 1)
    return engine, name


def profile_voice(profile: object) -> VoiceSpec:
    """A brand profile's voice choice as a spec: ``voices`` (per language) over ``voice`` (one name)."""
    voice: str | None = getattr(profile, "voice", None)
    voices: dict[str, str] = dict(getattr(profile, "voices", {}) or {})
    if voice and not voices:
        return voice
    if voice and VOICE_LANG.get(voice):
        voices.setdefault(VOICE_LANG[voice], voice)
    return voices or None
