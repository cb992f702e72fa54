"""The virtual-employee profile: who speaks, how, with which face, voice, colours and knowledge.

Profiles arrive as JSON from users, so ``Profile.from_dict`` validates every field and names the exact
path of the first problem (``knowledge.faq[3].answer: must be a non-empty string``) in a ConfigError.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

LANGUAGES = ("en", "zh")
MAX_KNOWLEDGE_ITEMS = 5000  # every item is embedded when the employee starts: keep start-up bounded
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass
class FAQEntry:
    id: str  # shared by the translations of one entry: "delivery-fee" in en and zh
    lang: str
    question: str
    answer: str
    alternates: list[str] = field(default_factory=list)  # other ways customers ask it


@dataclass
class ProductSheet:
    id: str
    lang: str
    title: str
    text: str  # free text; paragraphs become retrieval passages


@dataclass
class LLMSettings:
    base_url: str
    model: str
    api_key: str | None = None  # the LLM provider's key (not the brand's API key)
    temperature: float = 0.3
    max_tokens: int = 256


@dataclass
class Profile:
    id: str
    name: str
    role: str
    company: str
    persona: str  # a paragraph describing character and tone; goes into the LLM system prompt
    tone: str = "friendly"
    languages: list[str] = field(default_factory=lambda: ["en"])
    greeting: dict[str, str] = field(default_factory=dict)  # per language
    templates: dict[str, dict[str, str]] = field(default_factory=dict)  # kind → lang → text
    voice: str | None = None  # TTS voice (None = automatic per language)
    voices: dict[str, str] = field(default_factory=dict)  # per language, e.g. {"zh": "kokoro:zm_yunxi"}
    avatar: str = "default"  # a built-in avatar name
    colors: dict[str, str] = field(default_factory=dict)  # primary, secondary, text … as #rrggbb
    background: str = "#ffffff"  # a colour or a built-in background name
    faq: list[FAQEntry] = field(default_factory=list)
    products: list[ProductSheet] = field(default_factory=list)
    llm: LLMSettings | None = None
    competitors: list[str] = field(default_factory=list)  # names the employee never says (guardrails)
    blocked_topics: list[str] = field(default_factory=list)  # words/phrases it never speaks about

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["knowledge"] = {"faq": d.pop("faq"), "products": d.pop("products")}
        if d["llm"] is None:
            del d["llm"]
        return d

    def public_dict(self) -> dict[str, Any]:
        """What any API or export may show: secrets are write-only, only whether one is set is visible."""
        d = self.to_dict()
        if "llm" in d:
            d["llm"]["api_key_set"] = d["llm"].pop("api_key") is not None
        return d

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        return _parse_profile(data)

    def background_rgb(self) -> tuple[int, int, int]:
        """The background as RGB (a non-colour background name falls back to the primary colour or white)."""
        value = self.background if _HEX.match(self.background) else self.colors.get("background", "#ffffff")
        return hex_to_rgb(value)


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


# ----------------------------------------------------------------------------------------------------- parsing
_TOP_KEYS = {"id", "name", "role", "company", "persona", "tone", "languages", "greeting", "templates", "voice",
             "voices", "competitors", "blocked_topics", "avatar", "colors", "background", "knowledge", "llm"}


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = True, default: str | None = None,
         max_len: int = 20_000) -> Any:
    if key not in d or d[key] is None:
        if required:
            raise ConfigError(f"{where}{key}: missing (a non-empty string is required)")
        return default
    v = d[key]
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}{key}: must be a non-empty string, got {type(v).__name__} {v!r:.40}")
    if len(v) > max_len:
        raise ConfigError(f"{where}{key}: longer than {max_len} characters")
    return v.strip()


def _lang(v: Any, where: str) -> str:
    if v not in LANGUAGES:
        raise ConfigError(f"{where}: language must be one of {', '.join(LANGUAGES)}, got {v!r}")
    return str(v)


def _lang_map(v: Any, where: str) -> dict[str, str]:
    if isinstance(v, str):
        return {"en": v}
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: must be an object of language → text")
    out = {}
    for k, text in v.items():
        _lang(k, f"{where}.{k}")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}.{k}: must be a non-empty string")
        out[k] = text.strip()
    return out


def _parse_profile(data: Any) -> Profile:
    if not isinstance(data, dict):
        raise ConfigError(f"profile: must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"profile: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    pid = _str(data, "id", "profile.")
    if not _ID.match(pid):
        raise ConfigError(f"profile.id: {pid!r} must be 1-64 of a-z 0-9 _ - (starting with a letter or digit)")
    langs = data.get("languages", ["en"])
    if not isinstance(langs, list) or not langs:
        raise ConfigError("profile.languages: must be a non-empty list such as [\"en\", \"zh\"]")
    langs = [_lang(x, f"profile.languages[{i}]") for i, x in enumerate(langs)]
    colors = data.get("colors", {})
    if not isinstance(colors, dict):
        raise ConfigError("profile.colors: must be an object such as {\"primary\": \"#1e6fd9\"}")
    for k, v in colors.items():
        if not isinstance(v, str) or not _HEX.match(v):
            raise ConfigError(f"profile.colors.{k}: must be a #rrggbb colour, got {v!r}")
    templates = data.get("templates", {})
    if not isinstance(templates, dict):
        raise ConfigError("profile.templates: must be an object of kind → {language → text}")
    knowledge = data.get("knowledge", {})
    if not isinstance(knowledge, dict):
        raise ConfigError("profile.knowledge: must be an object with 'faq' and 'products' lists")
    if sum(len(v) for v in knowledge.values() if isinstance(v, list)) > MAX_KNOWLEDGE_ITEMS:
        raise ConfigError(f"profile.knowledge: more than {MAX_KNOWLEDGE_ITEMS} FAQ entries and product sheets")
    unknown_k = sorted(set(knowledge) - {"faq", "products"})
    if unknown_k:
        raise ConfigError(f"profile.knowledge: unknown field(s) {', '.join(unknown_k)} (allowed: faq, products)")
    return Profile(
        id=pid,
        name=_str(data, "name", "profile.", max_len=100),
        role=_str(data, "role", "profile.", max_len=200),
        company=_str(data, "company", "profile.", max_len=200),
        persona=_str(data, "persona", "profile."),
        tone=_str(data, "tone", "profile.", required=False, default="friendly", max_len=100),
        languages=langs,
        greeting=_lang_map(data.get("greeting", {}), "profile.greeting"),
        templates={str(k): _lang_map(v, f"profile.templates.{k}") for k, v in templates.items()},
        voice=_voice(_str(data, "voice", "profile.", required=False, max_len=100), "profile.voice"),
        voices={k: _voice(v, f"profile.voices.{k}")
                for k, v in _lang_map(data.get("voices", {}), "profile.voices").items()},
        avatar=_str(data, "avatar", "profile.", required=False, default="default", max_len=100),
        colors=dict(colors),
        background=_str(data, "background", "profile.", required=False, default="#ffffff", max_len=200),
        faq=[_parse_faq(e, i) for i, e in enumerate(_list(knowledge, "faq"))],
        products=[_parse_product(e, i) for i, e in enumerate(_list(knowledge, "products"))],
        llm=_parse_llm(data["llm"]) if data.get("llm") is not None else None,
        competitors=_str_list(data.get("competitors", []), "profile.competitors"),
        blocked_topics=_str_list(data.get("blocked_topics", []), "profile.blocked_topics"),
    )


def _str_list(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() and len(x) <= 200 for x in v):
        raise ConfigError(f"{where}: must be a list of non-empty strings (≤ 200 characters each)")
    return [x.strip() for x in v]


def _voice(v: str | None, where: str) -> str | None:
    from ..speech.voices import check_voice  # pure catalogue, no engine import

    try:
        return check_voice(v) if v else None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise ConfigError(f"profile.knowledge.{key}: must be a list")
    return v


def _parse_faq(e: Any, i: int) -> FAQEntry:
    where = f"profile.knowledge.faq[{i}]."
    if not isinstance(e, dict):
        raise ConfigError(f"{where[:-1]}: must be an object with id, lang, question, answer")
    alternates = e.get("alternates", [])
    if not isinstance(alternates, list) or not all(isinstance(a, str) and a.strip() for a in alternates):
        raise ConfigError(f"{where}alternates: must be a list of non-empty strings")
    return FAQEntry(id=_str(e, "id", where, max_len=100), lang=_lang(e.get("lang"), where + "lang"),
                    question=_str(e, "question", where), answer=_str(e, "answer", where),
                    alternates=[a.strip() for a in alternates])


def _parse_product(e: Any, i: int) -> ProductSheet:
    where = f"profile.knowledge.products[{i}]."
    if not isinstance(e, dict):
        raise ConfigError(f"{where[:-1]}: must be an object with id, lang, title, text")
    return ProductSheet(id=_str(e, "id", where, max_len=100), lang=_lang(e.get("lang"), where + "lang"),
                        title=_str(e, "title", where), text=_str(e, "text", where, max_len=100_000))


def _parse_llm(e: Any) -> LLMSettings:
    where = "profile.llm."
    if not isinstance(e, dict):
        raise ConfigError("profile.llm: must be an object with base_url and model")
    e = {k: v for k, v in e.items() if k != "api_key_set"}  # echoed back from public_dict(): ignored
    unknown = sorted(set(e) - {"base_url", "model", "api_key", "temperature", "max_tokens"})
    if unknown:
        raise ConfigError(f"profile.llm: unknown field(s) {', '.join(unknown)} (allowed: base_url, model, api_key, "
                          "temperature, max_tokens)")
    base_url = _str(e, "base_url", where)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"profile.llm.base_url: must start with http:// or https://, got {base_url!r}")
    try:
        temperature = float(e.get("temperature", 0.3))
        max_tokens = int(e.get("max_tokens", 256))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"profile.llm: temperature/max_tokens must be numbers ({exc})") from exc
    if not 0 <= temperature <= 2 or not 1 <= max_tokens <= 8192:
        raise ConfigError("profile.llm: temperature must be in [0, 2] and max_tokens in [1, 8192]")
    return LLMSettings(base_url=base_url, model=_str(e, "model", where),
                       api_key=_str(e, "api_key", where, required=False), temperature=temperature,
                       max_tokens=max_tokens)
