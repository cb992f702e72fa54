"""Speech: TTS in worker processes, phoneme/viseme timelines, ARKit mouth shapes per video frame."""

from .client import (
                     HTTPSpeechBackend,
                     SpeechError,
                     TTSClient,
                     WorkerDied,
                     WorkerPool,
                     WorkerSpeechBackend,
                     default_pool_size,
)
from .types import SpeechChunk, Utterance, join_chunks

__all__ = ["HTTPSpeechBackend", "SpeechChunk", "SpeechError", "TTSClient", "Utterance", "WorkerDied", "WorkerPool",
           "WorkerSpeechBackend", "default_pool_size", "join_chunks"]
