"""Mandarin text normalisation before G2P: numbers, prices, times, phone numbers and Latin words.

misaki's ZHG2P converts plain numbers itself (cn2an "an2cn": 12.5 → 十二点五, 3.8% → 百分之三点八), but reads
a phone number as one big number (800 555 0199 → 八百 五百五十五 …), passes "7:30", "¥" and Latin letters
through unchanged (the model then speaks garbage). Those cases are rewritten here into the words a
Mandarin speaker says; Latin spans are returned separately so the caller can phonemise them as English.
"""

from __future__ import annotations

import re

import cn2an

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"  # "1" is read 幺 in phone numbers (不会和"七"听混)

# 3+ digit groups separated by spaces or dashes, or one run of 7+ digits: phone/order numbers, read digit
# by digit. Years ("2026年") and quantities are shorter or followed by a unit.
_PHONE = re.compile(r"(?<![\d.])(\d{3,4}(?:[ -]\d{3,4}){1,3}|\d{7,})(?![\d.])")
_TIME = re.compile(r"(?<!\d)([01]?\d|2[0-3])[:：]([0-5]\d)(?!\d)")
_CURRENCY = re.compile(r"([¥￥$€£])\s?(\d+(?:\.\d+)?)")
_CURRENCY_WORD = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s?[-–~～]\s?(\d+(?:\.\d+)?)")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?=年)")
_LATIN = re.compile(r"[A-Za-z][A-Za-z'’.&-]*(?:\s+[A-Za-z][A-Za-z'’.&-]*)*")

# Letter names in Chinese characters, for spelling Latin letters when no English phonemiser is at hand.
_LETTERS = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    ["诶", "必", "西", "迪", "伊", "艾弗", "吉", "艾尺", "艾", "杰", "开", "艾勒", "艾姆", "恩", "欧",
                     "批", "酷", "阿", "艾斯", "提", "优", "维", "达布流", "艾克斯", "歪", "贼"], strict=True))


def _read_number(s: str) -> str:
    return cn2an.an2cn(s, "low")


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    head = _read_number(str(hour)) + "点"
    if minute == 0:
        return head
    if minute == 30:
        return head + "半"
    return head + ("零" + _DIGITS[minute] if minute < 10 else _read_number(str(minute))) + "分"


def _phone(m: re.Match[str]) -> str:
    groups = re.split(r"[ -]", m.group(1))
    # a pause between groups (a comma) is how people read them out
    return "，".join("".join(_PHONE_DIGITS[int(d)] for d in g) for g in groups)


def normalize_zh(text: str) -> str:
    """Rewrite numbers, prices, times and phone numbers into Mandarin words (Latin spans are kept)."""
    text = _PHONE.sub(_phone, text)
    text = _TIME.sub(_time, text)
    text = _CURRENCY.sub(lambda m: _read_number(m.group(2)) + _CURRENCY_WORD[m.group(1)], text)
    text = _YEAR.sub(lambda m: "".join(_DIGITS[int(d)] for d in m.group(1)), text)
    text = _RANGE.sub(lambda m: f"{_read_number(m.group(1))}到{_read_number(m.group(2))}", text)
    return text


def split_latin(text: str) -> list[tuple[bool, str]]:
    """[(is_latin, span), ...] covering the text in order."""
    out: list[tuple[bool, str]] = []
    pos = 0
    for m in _LATIN.finditer(text):
        if m.start() > pos:
            out.append((False, text[pos : m.start()]))
        out.append((True, m.group(0)))
        pos = m.end()
    if pos < len(text):
        out.append((False, text[pos:]))
    return out


def spell_latin(span: str) -> str:
    """Latin letters as Chinese letter names (the fallback when no English phonemiser is available)."""
    return "".join(_LETTERS.get(c.upper(), "") for c in span if c.isalpha())
