"""Dialogue: brand profiles (SQLite), hybrid retrieval, persona templates and an OpenAI-compatible LLM."""

from .employee import Employee, Reply, SentenceStreamer
from .llm import LLMError, OpenAIChatBackend
from .profile import FAQEntry, LLMSettings, ProductSheet, Profile
from .retrieval import Retriever
from .store import ProfileStore

__all__ = ["Employee", "FAQEntry", "LLMError", "LLMSettings", "OpenAIChatBackend", "ProductSheet", "Profile",
           "ProfileStore", "Reply", "Retriever", "SentenceStreamer"]
