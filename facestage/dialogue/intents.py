"""Persona templates for the turns that need no knowledge: greetings, thanks, goodbyes, small talk, and
a polite refusal for unsafe requests. Keyword rules, because these turns are short and formulaic."""

from __future__ import annotations

import re

from .guardrails import unsafe_request
from .profile import Profile

_PATTERNS: dict[str, dict[str, re.Pattern[str]]] = {
    "greeting": {
        "en": re.compile(r"^\s*(hi|hello|hey|hiya|good (morning|afternoon|evening)|greetings)\b[\s!,.]*"
                         r"(there|mia)?[\s!.]*$", re.I),
        "zh": re.compile(r"^\s*(你好|您好|嗨|哈喽|早上好|下午好|晚上好)[\s!！。，,]*$"),
    },
    "thanks": {
        "en": re.compile(r"^\s*(thanks|thank you|thx|cheers|great,? thanks?)\b.{0,30}$", re.I),
        "zh": re.compile(r"^\s*(谢谢|多谢|感谢).{0,10}$"),
    },
    "goodbye": {
        "en": re.compile(r"^\s*(bye|goodbye|see you|good night)\b.{0,20}$", re.I),
        "zh": re.compile(r"^\s*(再见|拜拜|回头见).{0,6}$"),
    },
    "smalltalk": {
        "en": re.compile(r"\b(how are you|who are you|what('| i)s your name|are you (a )?(robot|human|real|bot))\b",
                         re.I),
        "zh": re.compile(r"(你好吗|你是谁|你叫什么|你是机器人|你是真人)"),
    },
}  # fmt: skip

DEFAULT_TEMPLATES = {
    "thanks": {"en": "You're welcome!", "zh": "不客气！"},
    "goodbye": {"en": "Goodbye!", "zh": "再见！"},
    "smalltalk": {"en": "I'm {name}, the virtual {role} of {company}. How can I help?",
                  "zh": "我是{company}的虚拟助理{name}。有什么可以帮您？"},
    "redirect": {"en": "I'm sorry, I can only help with questions about {company}.",
                 "zh": "抱歉，我只能回答关于{company}的问题。"},
    "unsafe": {"en": "I'm sorry, I can't help with that.", "zh": "抱歉，这个我无法帮忙。"},
    "greeting": {"en": "Hello, I'm {name} from {company}. How can I help?", "zh": "您好，我是{company}的{name}。"},
}


def detect_intent(text: str, lang: str) -> str | None:
    """'unsafe', 'greeting', 'thanks', 'goodbye', 'smalltalk' or None (a real question)."""
    if unsafe_request(text):  # harm asked for, not a keyword ("does pasteurisation kill bacteria?" is fine)
        return "unsafe"
    for intent in ("greeting", "thanks", "goodbye", "smalltalk"):
        pat = _PATTERNS[intent].get(lang) or _PATTERNS[intent]["en"]
        if pat.search(text):
            return intent
    return None


def template(profile: Profile, kind: str, lang: str) -> str:
    """The profile's own text for this kind and language, else a neutral default filled with its names."""
    if kind == "greeting" and profile.greeting:
        text = profile.greeting.get(lang) or next(iter(profile.greeting.values()))
        return text
    own = profile.templates.get(kind, {})
    text = own.get(lang) or DEFAULT_TEMPLATES[kind].get(lang) or DEFAULT_TEMPLATES[kind]["en"]
    return text.format(name=profile.name, role=profile.role, company=profile.company)
