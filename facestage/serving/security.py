"""The operator's security settings and credential: who is the operator, what is trusted, what is limited.

One ``SecurityConfig`` per server. The operator key is read from ``$FACESTAGE_OPERATOR_KEY``, from a file
(``--operator-key-file``), or generated at first start into ``operator.key`` (mode 0600) beside the profile
database and printed once. Only a salted hash stays in memory after start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..dialogue.outbound import OutboundPolicy
from ..errors import ConfigError
from .auth import LOOPBACK_HOSTS

OPERATOR_PREFIX = "fso_"


@dataclass
class Limits:
    """Per key (or per client address for key-less sessions) and per connection."""

    sessions_per_client: int = 8  # concurrent WebSocket sessions per key / address
    fps: float = 60.0  # media frames per second in, per connection (burst of one second allowed)
    bytes_per_s: int = 8 * 2**20  # media bytes per second in, per connection
    idle_timeout_s: float = 300.0  # a connection that sends nothing for this long is closed
    upload_bytes: int = 32 * 2**20  # one HTTP upload (avatar model or photo)
    json_body_bytes: int = 256 * 1024


class SessionCounter(Protocol):
    """Concurrent sessions per client (``Limits.sessions_per_client``): ``connection.ClientCounter`` in one
    process, ``shared.redis_state.RedisClientCounter`` across the replicas of a cluster."""

    limit: int

    def acquire(self, client: str) -> bool: ...

    def release(self, client: str) -> None: ...


@dataclass
class SecurityConfig:
    operator_key: str | None = None  # None: read or generate (see resolve_operator_key)
    operator_key_file: Path | None = None
    # Requests from this machine (loopback address, loopback Host, no proxy headers) act as operator:
    # the out-of-the-box demo. None = on when the server is bound to loopback. Turn it off behind a proxy
    # on the same host (every proxied request would come from 127.0.0.1).
    trust_local: bool | None = None
    # Effects/avatar/render/watch sessions without a key. None = as trust_local (loopback bind, no proxy).
    open_media: bool | None = None
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    vmc: OutboundPolicy = field(default_factory=lambda: OutboundPolicy(("loopback",)))
    limits: Limits = field(default_factory=Limits)

    def settle(self, host: str) -> None:
        """Fill the host-dependent defaults once the bind address is known."""
        local = host in LOOPBACK_HOSTS
        if self.trust_local is None:
            self.trust_local = local
        if self.open_media is None:
            self.open_media = bool(self.trust_local)


class OperatorKey:
    """The operator credential; verification is constant-time against a salted hash."""

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or len(key) < 16:
            raise ConfigError("the operator key must be at least 16 characters")
        self._salt = secrets.token_bytes(16)
        self._hash = hashlib.sha256(self._salt + key.encode()).digest()

    def verify(self, key: str | None) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return hmac.compare_digest(hashlib.sha256(self._salt + key.encode()).digest(), self._hash)


def write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def resolve_operator_key(cfg: SecurityConfig, data_dir: Path) -> tuple[str, str | None]:
    """(key, newly generated key or None). The new key is returned so the banner can print it once."""
    if cfg.operator_key:
        return cfg.operator_key, None
    env = os.environ.get("FACESTAGE_OPERATOR_KEY", "").strip()
    if env:
        return env, None
    path = cfg.operator_key_file or data_dir / "operator.key"
    if path.is_file():
        key = path.read_text().strip()
        if key:
            return key, None
    if cfg.operator_key_file is not None:
        raise ConfigError(f"operator key file {path} is missing or empty")
    key = OPERATOR_PREFIX + secrets.token_urlsafe(32)
    write_secret_file(path, key)
    return key, key
