"""The virtual employee: templates, hybrid retrieval and (when configured) an LLM, with per-session memory.

Replies stream as sentences so speech can start on the first one: tokens → sentences → TTS.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..speech.text import detect_lang, split_sentences
from .guardrails import OutputGuard
from .intents import detect_intent, template
from .llm import LLMError, OpenAIChatBackend
from .profile import Profile
from .retrieval import Hit, Retriever

MAX_QUESTION_CHARS = 2000
INTERRUPTED = " …"  # marks an answer the customer cut short (the LLM sees what was really said)
MEMORY_TURNS = 8  # user+assistant pairs kept per session (bounded: sessions may live for hours)


@dataclass
class Session:
    turns: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=2 * MEMORY_TURNS))
    last_topic: str | None = None  # doc id of the last answered passage, for follow-ups ("how much is it?")
    last_question: str = ""
    lang: str = "en"
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"turns": list(self.turns), "last_topic": self.last_topic, "last_question": self.last_question,
                "lang": self.lang}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Session:
        s = cls(last_topic=d.get("last_topic"), last_question=d.get("last_question", ""), lang=d.get("lang", "en"))
        s.turns.extend(d.get("turns", []))
        return s


@dataclass
class Reply:
    text: str
    lang: str
    source: str  # "template:<kind>" | "faq" | "product" | "llm" | "redirect"
    hits: list[Hit]


class SentenceStreamer:
    """Collect streamed tokens and release whole sentences as soon as they end."""

    _END = re.compile(r"([.!?;](?=\s)|[。！？；]|\n)")

    def __init__(self) -> None:
        self.buf = ""

    def feed(self, token: str) -> list[str]:
        self.buf += token
        out: list[str] = []
        while True:
            m = self._END.search(self.buf)
            if not m:
                return out
            sentence, self.buf = self.buf[: m.end()].strip(), self.buf[m.end() :]
            if sentence:
                out.append(sentence)

    def flush(self) -> list[str]:
        rest, self.buf = self.buf.strip(), ""
        return [rest] if rest else []


class Employee:
    # Below these retrieval confidences a question is treated as off-topic. Measured on the demo
    # paraphrases: English on-topic top-1 embedding similarity ≥ 0.38, clearly off-topic ≤ 0.26 (but
    # "weather tomorrow" reaches 0.39); Chinese on-topic questions share ≥ 1 content word (≥ 0.55).
    MIN_SCORE = {"en": 0.35, "zh": 0.3}

    def __init__(self, profile: Profile, backend: OpenAIChatBackend | None = None,
                 retriever: Retriever | None = None) -> None:
        self.profile = profile
        if backend is None and profile.llm is not None:
            backend = OpenAIChatBackend.from_settings(profile.llm)
        self.backend = backend
        self.retriever = retriever or Retriever(profile)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.last_error: str | None = None  # the most recent backend failure (for logs and tests)
        self.guard = OutputGuard(profile)
        self.last_guard: str | None = None  # why the most recent LLM sentence was not spoken

    # ----------------------------------------------------------------------------------------- sessions
    def session(self, session_id: str) -> Session:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                s = self._sessions[session_id] = Session()
            s.updated = time.time()
            return s

    def session_state(self, session_id: str) -> dict[str, Any]:
        """A JSON-able checkpoint of one session (to move it to another replica)."""
        return self.session(session_id).to_dict()

    def restore_session(self, session_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            self._sessions[session_id] = Session.from_dict(state)

    def session_ids(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def end_session(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    # ------------------------------------------------------------------------------------------ replies
    def _lang(self, text: str) -> str:
        lang = detect_lang(text)
        return lang if lang in self.profile.languages else self.profile.languages[0]

    def greeting(self, lang: str | None = None) -> str:
        return template(self.profile, "greeting", lang or self.profile.languages[0])

    def _check(self, text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InputError("empty question")
        if len(text) > MAX_QUESTION_CHARS:
            raise InputError(f"question longer than {MAX_QUESTION_CHARS} characters")
        return text.strip()

    def retrieve(self, text: str, session: Session | None, lang: str) -> tuple[list[Hit], str]:
        """Hits for the question and the query that produced them (merged with the last one for follow-ups)."""
        hits = self.retriever.search(text, lang)
        # A short follow-up ("and for kids?", "多少钱？") often names no topic: retry together with the
        # previous question of the same language. Long questions carry their own topic and are not merged.
        short = len(text.split()) <= 5 if lang == "en" else len(text) <= 10
        if (session and session.last_question and short and detect_lang(session.last_question) == lang
                and (not hits or hits[0].confidence < self.MIN_SCORE[lang])):
            merged = session.last_question + " " + text
            again = self.retriever.search(merged, lang)
            if again and again[0].passage.lang == lang and again[0].confidence >= self.MIN_SCORE[lang]:
                return again, merged
        return hits, text

    def answer(self, text: str, session_id: str = "default") -> Reply:
        """The full reply at once (see :meth:`reply_stream` for the streamed form)."""
        sentences: list[str] = []
        reply = None
        for item in self._reply(text, session_id):
            if isinstance(item, Reply):
                reply = item
            else:
                sentences.append(item)
        assert reply is not None
        reply.text = " ".join(sentences) if reply.lang == "en" else "".join(sentences)
        return reply

    def reply_stream(self, text: str, session_id: str = "default") -> Iterator[str]:
        """Yield the reply sentence by sentence (LLM tokens are grouped into sentences as they arrive)."""
        for item in self._reply(text, session_id):
            if isinstance(item, str):
                yield item

    def _reply(self, text: str, session_id: str) -> Iterator[str | Reply]:
        text = self._check(text)
        spoken: list[str] = []
        finished = False
        try:
            for item in self._reply_body(text, session_id, spoken):
                finished = isinstance(item, Reply)
                yield item
        finally:
            if not finished:
                # The caller stopped listening half way (barge-in, stop): the turn is still part of the
                # conversation, as far as it was said — unless the session already recorded what was played.
                self.set_spoken(session_id, text, _join(spoken, self._lang(text)), replace=False)

    def _record(self, session_id: str, question: str, answer: str) -> None:
        session = self.session(session_id)
        with self._lock:
            session.turns.append({"role": "user", "content": question})
            session.turns.append({"role": "assistant", "content": answer})

    def set_spoken(self, session_id: str, question: str, spoken: str, replace: bool = True) -> None:
        """Record an interrupted answer to ``question`` as what was actually spoken (marked with " …").

        The session calls it with what the customer heard; the reply generator, when closed early, with
        what it had produced (``replace=False``: it never overwrites the session's more exact record).
        """
        session = self.session(session_id)
        answer = spoken.strip() + INTERRUPTED
        with self._lock:
            turns = session.turns
            # the answer to this question is already recorded (in full, or by the session): correct it
            if len(turns) >= 2 and turns[-2] == {"role": "user", "content": question.strip()}:
                if replace:
                    turns[-1] = {"role": "assistant", "content": answer}
                return
            turns.append({"role": "user", "content": question.strip()})
            turns.append({"role": "assistant", "content": answer})

    def _reply_body(self, text: str, session_id: str, spoken: list[str]) -> Iterator[str | Reply]:
        session = self.session(session_id)
        lang = self._lang(text)
        session.lang = lang
        source = ""
        hits: list[Hit] = []
        intent = detect_intent(text, lang)
        if intent is None and self.guard.blocked_topic(text):  # the brand's own no-go topics
            intent = "redirect"
        if intent is not None:
            source = f"template:{intent}"
            for s in split_sentences(template(self.profile, intent, lang)):
                spoken.append(s)
                yield s
        else:
            hits, query = self.retrieve(text, session, lang)
            on_topic = bool(hits) and hits[0].confidence >= self.MIN_SCORE[lang]
            guarded = ""
            if self.backend is not None and on_topic:
                source = "llm"
                try:
                    # every sentence is checked before it is spoken; the first failing one ends the LLM's turn
                    for s in self._llm_sentences(text, session, hits, lang):
                        verdict = self.guard.check(s)
                        if not verdict.ok:
                            guarded = self.last_guard = verdict.reason
                            break
                        spoken.append(s)
                        yield s
                except LLMError as exc:
                    self.last_error = str(exc)
                    if spoken:  # the stream broke mid-answer: close politely rather than repeat
                        s = "抱歉，我的回答中断了。" if lang == "zh" else "Sorry, I lost my train of thought there."
                        spoken.append(s)
                        yield s
                    source = "llm-partial" if spoken else ""
            if guarded:
                # a blocked topic gets a polite refusal; a competitor or an invented price/product gets the
                # FAQ answer instead (grounded by construction)
                kind = "unsafe" if guarded.startswith("blocked_topic") else None
                source = ("llm+" if spoken else "") + f"guard:{kind or hits[0].passage.kind}"
                lines = split_sentences(template(self.profile, "unsafe", lang) if kind else hits[0].passage.answer)
                for s in lines:
                    spoken.append(s)
                    yield s
            if not spoken:
                if on_topic:
                    source = hits[0].passage.kind
                    for s in split_sentences(hits[0].passage.answer):
                        spoken.append(s)
                        yield s
                else:
                    source = "redirect"
                    for s in split_sentences(template(self.profile, "redirect", lang)):
                        spoken.append(s)
                        yield s
            if on_topic:
                session.last_topic = hits[0].passage.doc_id
                session.last_question = query  # a follow-up keeps the topic words it borrowed
        self._record(session_id, text, _join(spoken, lang))
        yield Reply("", lang, source, hits)

    def build_messages(self, text: str, session: Session, hits: list[Hit], lang: str) -> list[dict[str, str]]:
        """The chat prompt: persona + retrieved passages as the only facts, then this session's history."""
        p = self.profile
        passages = "\n".join(f"- {h.passage.title}: {h.passage.answer}" for h in hits)
        language = "Chinese (Mandarin, simplified characters)" if lang == "zh" else "English"
        system = (
            f"You are {p.name}, the {p.role} of {p.company}. {p.persona} Tone: {p.tone}.\n"
            f"Answer in {language}, in at most three short sentences, using only these facts:\n{passages}\n"
            "If the facts do not answer the question, say so and offer the customer service contact."
        )
        return [{"role": "system", "content": system}, *session.turns, {"role": "user", "content": text}]

    def _llm_sentences(self, text: str, session: Session, hits: list[Hit], lang: str) -> Iterator[str]:
        assert self.backend is not None
        streamer = SentenceStreamer()
        for token in self.backend.stream_chat(self.build_messages(text, session, hits, lang)):
            yield from streamer.feed(token)
        yield from streamer.flush()


def _join(sentences: list[str], lang: str) -> str:
    return (" " if lang == "en" else "").join(sentences)
