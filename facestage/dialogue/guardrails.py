"""Guardrails for a brand's employee: what it refuses to discuss, and what it may say.

Input: a request is refused only when harm is *asked for* — a harmful verb aimed at a person, or a
dangerous thing to make or obtain. Single keywords are not enough: the demo FAQ itself answers "Does
pasteurisation kill bacteria?", and customers ask about "food poisoning", "antibiotics and drugs" given
to cows or "credit cards" at the till.

Output: every sentence an LLM writes is checked *before it is spoken* (the employee streams sentence by
sentence into TTS):
- blocked topics (the unsafe set below + the profile's own ``blocked_topics``);
- competitor names from the profile;
- numbers with a unit, currency or percent sign (prices, quantities, times) that appear in none of the
  brand's FAQ answers or product sheets — an invented price is the costliest kind of hallucination;
- "we sell/offer/have X" claims whose product words appear nowhere in the knowledge.
A failing sentence is not spoken; the caller falls back to the FAQ answer or a polite refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .profile import Profile

# ------------------------------------------------------------------------------------------------ input
_PERSON_EN = (r"(some ?one|somebody|people|persons?|a person|him|her|them|myself|yourself|themselves|my "
              r"(wife|husband|boss|neighbou?r|friend|child|kid|mother|father|family)|a (man|woman|child|kid)|"
              r"the (president|teacher|neighbou?r))")
_UNSAFE_EN = [
    rf"\b(kill|murder|hurt|harm|attack|stab|shoot|strangle|kidnap)\w*\s+{_PERSON_EN}\b",
    rf"\bpoison(ing)?\s+{_PERSON_EN}\b",
    r"\b(how|ways?)\b.{0,30}\b(poison|murder|kill)\b(?!.{0,30}\b(bacteria|germs|microbes|pathogens|"
    r"listeria|salmonella|e\.? ?coli)\b)",
    r"\b(make|build|buy|get|assemble)\w*\b.{0,25}\b(bomb|explosives?|pipe ?bomb|grenade|napalm|"
    r"gun|firearm|weapon|meth|crack cocaine|ricin|nerve gas)\b",
    r"\b(bomb|explosives?|firearms?|weapons?|guns?)\b.{0,20}\b(recipe|instructions|at home|homemade|diy)\b",
    r"\b(suicide|kill myself|end my life|self[- ]harm|cut myself)\b",
    r"\b(hack|hacking|break) ?(into|someone|an? account|a password|a wi-?fi|the system)\b",
    r"\b(steal|shoplift)\w*\b",
    r"\b(buy|sell|get|score|cook|make)\w*\b.{0,15}\b(cocaine|heroin|meth|weed|illegal drugs)\b",
    r"\b(porn|pornography|nude|nudes|sexual)\b",
    r"\b(credit card numbers|card numbers of|someone'?s (credit card|password|bank))\b",
]
_UNSAFE_ZH = [
    r"(杀|杀死|杀掉|害|伤害|毒死|毒害|绑架|攻击)(人|别人|他人|他|她|某人|我自己|自己|邻居|老板|孩子|家人|同事)",
    r"(怎么|如何|教我).{0,6}(杀人|下毒|投毒|害人)",
    r"(炸弹|炸药|爆炸物|枪支|手枪|武器|毒品|冰毒|海洛因|可卡因)",
    r"(自杀|自残|轻生|不想活)",
    r"(黑客|入侵|盗取|破解).{0,6}(账号|密码|系统|网站|别人)",
    r"(偷东西|偷窃|盗窃|怎么偷)",
    r"(色情|黄色视频|裸照)",
]
UNSAFE = {"en": re.compile("|".join(_UNSAFE_EN), re.I), "zh": re.compile("|".join(_UNSAFE_ZH))}


def unsafe_request(text: str) -> bool:
    """True when the text asks for something harmful (either language's rules apply to any text)."""
    return bool(UNSAFE["en"].search(text) or UNSAFE["zh"].search(text))


# ----------------------------------------------------------------------------------------------- output
# A number that makes a claim: with a currency sign/word, a unit, a percent sign or a clock time. Each unit
# spelling maps to one class, so "$4", "4 dollars" and "4 bucks" are the same claim.
_UNITS = {
    "usd": ["$", "dollar", "dollars", "bucks"], "eur": ["€", "euro", "euros"], "gbp": ["£", "pound", "pounds"],
    "cny": ["¥", "￥", "yuan", "rmb", "元", "块"], "cent": ["cent", "cents", "p"], "jiao": ["毛", "角"],
    "am": ["am", "a.m."], "pm": ["pm", "p.m."], "clock": ["点"], "hour": ["hour", "hours", "小时"],
    "minute": ["minute", "minutes", "分钟"], "day": ["day", "days", "天"], "month": ["month", "months", "个月"],
    "deg": ["degree", "degrees", "°c", "度"], "pct": ["%", "percent", "per cent"],
    "g": ["g", "gram", "grams", "克"], "kg": ["kg", "kilo", "kilos", "公斤", "千克"], "ml": ["ml", "millilitre",
    "millilitres", "milliliter", "milliliters", "毫升"], "l": ["l", "litre", "litres", "liter", "liters", "升"],
    "mg": ["mg", "milligram", "milligrams", "毫克"], "kcal": ["kcal", "calorie", "calories", "千卡"],
    "km": ["km", "kilometre", "kilometres", "公里"], "age": ["岁"],
}  # fmt: skip
_UNIT_CLASS = {spelling: cls for cls, spellings in _UNITS.items() for spelling in spellings}
_SIGNS = "$€£¥￥"
_AFTER = sorted((u for u in _UNIT_CLASS if u not in _SIGNS), key=len, reverse=True)
_CLAIM = re.compile(
    rf"(?P<sign>[{_SIGNS}])\s?(?P<n1>\d+(?:[.,]\d+)?)"
    rf"|(?P<n2>\d+(?:[.,]\d+)?)\s?(?P<unit>{'|'.join(re.escape(u) for u in _AFTER)})(?![a-z])", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# "2 dollars 50" (how the demo FAQ writes a price) is 2.50 dollars
_SPLIT_PRICE = re.compile(r"(\d+) (dollars?|euros?|pounds?) (\d{2})\b", re.I)


def claims(text: str) -> set[tuple[str, str]]:
    """The (number, unit class) claims in a text, e.g. {("2.5", "usd"), ("8", "am")}."""
    text = _SPLIT_PRICE.sub(r"\1.\3 \2", text)
    out = set()
    for m in _CLAIM.finditer(text):
        number = m.group("n1") or m.group("n2")
        unit = m.group("sign") or m.group("unit")
        out.add((_norm_number(number), _UNIT_CLASS[unit.lower()]))
    return out


_OFFER_EN = re.compile(r"\b(?:we|our (?:shops?|stores?|farm))\s+(?:also\s+)?(?:sell|offer|have|make|stock|carry)\s+"
                       r"((?:[a-z-]+\s?){1,3})", re.I)
_OFFER_ZH = re.compile(r"我们(?:也|还)?(?:卖|有售|出售|提供|生产)([\u4e00-\u9fff]{2,6})")
_STOP = {"a", "an", "the", "some", "any", "fresh", "our", "also", "many", "lots", "of", "great", "new", "and",
         "delicious", "local", "organic", "free", "delivery", "it", "them", "you", "your", "to", "for", "in"}


@dataclass
class Verdict:
    ok: bool
    reason: str = ""  # blocked_topic:<w> | competitor:<name> | ungrounded_number:<n unit> | ungrounded_product:<w>


class OutputGuard:
    """Checks sentences an LLM wrote for one brand against that brand's knowledge and rules."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        texts = [e.answer for e in profile.faq] + [e.question for e in profile.faq]
        texts += [p.text for p in profile.products] + [p.title for p in profile.products]
        texts += [t for kinds in profile.templates.values() for t in kinds.values()]
        texts += list(profile.greeting.values())
        self._claims = {c for t in texts for c in claims(t)}
        self._knowledge = " ".join(texts).lower()
        self._competitors = [c for c in getattr(profile, "competitors", []) if c.strip()]
        topics = [t for t in getattr(profile, "blocked_topics", []) if t.strip()]
        self._topics = re.compile("|".join(rf"\b{re.escape(t)}\b" if t.isascii() else re.escape(t)
                                           for t in topics), re.I) if topics else None

    def blocked_topic(self, text: str) -> str | None:
        """The profile's blocked topic or competitor the text mentions, if any (used on questions too)."""
        if self._topics is not None and (m := self._topics.search(text)):
            return m.group(0)
        return next((c for c in self._competitors if c.lower() in text.lower()), None)

    def check(self, sentence: str) -> Verdict:
        if unsafe_request(sentence):
            return Verdict(False, "blocked_topic:unsafe")
        if self._topics is not None and (m := self._topics.search(sentence)):
            return Verdict(False, f"blocked_topic:{m.group(0).lower()}")
        low = sentence.lower()
        for name in self._competitors:
            if name.lower() in low:
                return Verdict(False, f"competitor:{name}")
        for number, unit in sorted(claims(sentence)):
            if (number, unit) not in self._claims:
                return Verdict(False, f"ungrounded_number:{number} {unit}")
        for m in _OFFER_EN.finditer(sentence):
            words = [w for w in re.findall(r"[a-z]+", m.group(1).lower()) if w not in _STOP]
            missing = [w for w in words if w.rstrip("s") not in self._knowledge]
            if missing:
                return Verdict(False, f"ungrounded_product:{missing[0]}")
        for m in _OFFER_ZH.finditer(sentence):
            item = m.group(1)
            # two-character words of the claimed item; one of them must occur in the knowledge
            if not any(item[i : i + 2] in self._knowledge for i in range(len(item) - 1)):
                return Verdict(False, f"ungrounded_product:{item}")
        return Verdict(True)


def _norm_number(n: str) -> str:
    n = n.replace(",", ".")
    try:
        return f"{float(n):g}"
    except ValueError:
        return n
