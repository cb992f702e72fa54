"""State that outlives one process, behind small interfaces: session checkpoints, watch channels, brand
profiles/keys and per-client session counters.

Single-process servers use the in-process implementations (``MemoryCheckpoints``, ``serving.channels.Channels``,
SQLite ``ProfileStore``, ``ClientCounter``); ``facestage serve --replicas N`` swaps in the Redis ones
(``shared.redis``) so every replica sees the same state. See docs/cluster.md.
"""

from .checkpoints import CHECKPOINT_TTL_S, CheckpointStore, MemoryCheckpoints, StoredCheckpoint

__all__ = ["CHECKPOINT_TTL_S", "CheckpointStore", "MemoryCheckpoints", "StoredCheckpoint"]
