"""Speech: TTS in a worker process, phoneme/viseme timelines, ARKit mouth shapes per video frame."""

from .client import HTTPSpeechBackend, SpeechError, TTSClient, WorkerPool, WorkerSpeechBackend
from .types import SpeechChunk, Utterance, join_chunks

__all__ = ["HTTPSpeechBackend", "SpeechChunk", "SpeechError", "TTSClient", "Utterance", "WorkerPool",
           "WorkerSpeechBackend",
           "join_chunks"]
