"""Text helpers shared by the TTS client, the worker and the dialogue: sentence splitting, language guess.

Pure Python with no engine imports, so both sides of the worker pipe agree on what a "sentence" is.
"""

from __future__ import annotations

import re

# CJK Unified Ideographs (+ extension A) and CJK punctuation: enough to tell Mandarin from Latin text.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN_LETTER = re.compile(r"[A-Za-z]")

# A sentence ends at . ! ? ; (and their full-width forms) or a line break. Latin '.' must be followed by
# space/end so "3.5" and "e.g." inside a sentence do not split it; CJK marks end a sentence on their own.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+")
_CLAUSE = re.compile(r",\s|[，、：]")
_PHRASE_START = re.compile(r"\s(?=(from|to|and|but|with|for|in|on|at|by|so|which|that|because|before|after|when|or)\s)",
                           re.I)


def detect_lang(text: str) -> str:
    """'zh' when the text is mostly Chinese characters, else 'en' (the two languages the demo speaks).

    Counting characters rather than "any CJK present" keeps a product name like "Lait 牛奶" English-led
    only when most letters are Latin.
    """
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0:
        return "en"
    # One Chinese character carries about as much as one English word.
    return "zh" if cjk >= latin_words else "en"


def first_phrase_cut(sentence: str, max_chars: int = 40) -> tuple[str, str] | None:
    """Cut a long sentence after its first phrase, for a faster first audio chunk (time to first audio
    is the synthesis time of the first chunk, ~0.15 s per second of speech on a busy 2-core machine).

    Cuts at the earliest comma or English phrase boundary (before from/to/and/with/...) after ≥ 20
    characters.
    None when the sentence is short or has no boundary that leaves both parts substantial.
    """
    if len(sentence) <= max_chars:
        return None
    # the earliest boundary that leaves a first piece of 20+ characters and a second of 12+
    cuts = [m.end() for m in _CLAUSE.finditer(sentence)] + [m.start() for m in _PHRASE_START.finditer(sentence)]
    cuts = sorted(c for c in cuts if 20 <= c <= max_chars + 20 and c <= len(sentence) - 12)
    if not cuts:
        return None
    return sentence[: cuts[0]].strip(), sentence[cuts[0] :].strip()


def split_sentences(text: str, max_chars: int = 240) -> list[str]:
    """Split text into sentences to stream; long run-on sentences are cut at commas to keep latency low."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    out: list[str] = []
    for part in parts:
        while len(part) > max_chars:
            cut = max(part.rfind(",", 0, max_chars), part.rfind("，", 0, max_chars), part.rfind(" ", 0, max_chars))
            if cut <= 0:
                cut = max_chars
            out.append(part[: cut + 1].strip())
            part = part[cut + 1 :].strip()
        if part:
            out.append(part)
    return out


def has_speakable(text: str) -> bool:
    """True when the text has a letter, digit or CJK character (punctuation alone makes no sound)."""
    return bool(_CJK.search(text) or re.search(r"[^\W_]", text))
