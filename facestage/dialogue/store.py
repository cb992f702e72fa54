"""Profiles persisted in SQLite (the embedded default); a small interface so Redis/Postgres can follow.

Durability: WAL journal with ``synchronous=FULL`` and one transaction per call, so a profile written
before a crash (even ``kill -9``) is there when the database is reopened.

API keys are stored hashed: a key is 32 random bytes shown once by :meth:`create_key`; the store keeps
a salted SHA-256 of it. Slow password hashes are unnecessary because such keys cannot be guessed from a
dictionary, and verification runs on every server request.

Provider secrets (``llm.api_key``) never sit in the profile JSON: they are Fernet-encrypted into their own
column with a key from ``$FACESTAGE_SECRETS_KEY`` or ``secrets.key`` (0600, generated beside the database),
so a copied database file alone reveals no provider key. An update without ``api_key`` keeps the stored
one; ``"api_key": null`` clears it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, InputError
from .profile import Profile

DEMO_ID = "demo"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    key_salt BLOB,
    key_hash BLOB,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
"""


def default_path() -> Path:
    """$FACESTAGE_PROFILES, else ~/.local/share/facestage/profiles.sqlite3."""
    env = os.environ.get("FACESTAGE_PROFILES")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "facestage" / "profiles.sqlite3"


def demo_profile_dict() -> dict[str, Any]:
    """The shipped demo brand (facestage/assets/brands/demo/profile.json)."""
    ref = resources.files("facestage") / "assets" / "brands" / "demo" / "profile.json"
    return json.loads(ref.read_text(encoding="utf-8"))


def load_secrets_key(db_path: str) -> bytes:
    """The Fernet key for secrets at rest: $FACESTAGE_SECRETS_KEY, else secrets.key beside the database."""
    from cryptography.fernet import Fernet

    env = os.environ.get("FACESTAGE_SECRETS_KEY", "").strip()
    if env:
        return env.encode()
    if db_path == ":memory:":
        return Fernet.generate_key()  # nothing outlives the process, neither may the key
    path = Path(db_path).parent / "secrets.key"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip().encode()
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def _split_secrets(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(profile JSON without secrets, {field: secret})."""
    data = json.loads(json.dumps(data))
    found: dict[str, str] = {}
    llm = data.get("llm")
    if isinstance(llm, dict) and (key := llm.pop("api_key", None)):
        found["llm.api_key"] = key
    return data, found


def _hash_key(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode("utf-8")).digest()


def parse_profile_json(text: str) -> Profile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"profile JSON is invalid: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    return Profile.from_dict(data)


class ProfileRows(Protocol):
    """Where profile rows live: SQLite here, Redis in a cluster (``serving.shared.redis_profiles``).
    A row is the profile JSON without secrets, the sealed secrets and the API key's salt and hash."""

    def insert(self, pid: str, data: str, blob: bytes | None) -> bool: ...  # False: the id exists

    def row(self, pid: str) -> tuple[str, bytes | None] | None: ...

    def exists(self, pid: str) -> bool: ...

    def replace(self, pid: str, data: str, blob: bytes | None) -> None: ...

    def delete(self, pid: str) -> bool: ...

    def ids(self) -> list[str]: ...

    def set_key(self, pid: str, salt: bytes | None, digest: bytes | None) -> None: ...

    def key(self, pid: str) -> tuple[bytes, bytes] | None: ...

    def close(self) -> None: ...


class SQLiteRows:
    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(profiles)")}
            if "secrets" not in cols:  # databases from before secrets were encrypted
                self._db.execute("ALTER TABLE profiles ADD COLUMN secrets BLOB")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"profile store {path} is not a usable SQLite database: {exc}") from exc

    def insert(self, pid: str, data: str, blob: bytes | None) -> bool:
        now = time.time()
        with self._lock:
            try:
                self._db.execute("INSERT INTO profiles (id, data, secrets, created, updated) VALUES (?, ?, ?, ?, ?)",
                                 (pid, data, blob, now, now))
            except sqlite3.IntegrityError:
                return False
        return True

    def row(self, pid: str) -> tuple[str, bytes | None] | None:
        with self._lock:
            return self._db.execute("SELECT data, secrets FROM profiles WHERE id = ?", (pid,)).fetchone()

    def exists(self, pid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM profiles WHERE id = ?", (pid,)).fetchone() is not None

    def replace(self, pid: str, data: str, blob: bytes | None) -> None:
        with self._lock:
            self._db.execute("UPDATE profiles SET data = ?, secrets = ?, updated = ? WHERE id = ?",
                             (data, blob, time.time(), pid))

    def delete(self, pid: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM profiles WHERE id = ?", (pid,)).rowcount > 0

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM profiles ORDER BY id")]

    def set_key(self, pid: str, salt: bytes | None, digest: bytes | None) -> None:
        with self._lock:
            self._db.execute("UPDATE profiles SET key_salt = ?, key_hash = ?, updated = ? WHERE id = ?",
                             (salt, digest, time.time(), pid))

    def key(self, pid: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT key_salt, key_hash FROM profiles WHERE id = ?", (pid,)).fetchone()
        return None if row is None or row[0] is None else (row[0], row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ProfileStore:
    """Brand profiles and API keys. ``rows`` picks where they live (default: the SQLite file at ``path``);
    secrets are sealed with the Fernet key before they reach the rows either way."""

    def __init__(self, path: str | Path | None = None, secrets_key: bytes | None = None,
                 rows: ProfileRows | None = None) -> None:
        from cryptography.fernet import Fernet

        self.path = str(path) if path is not None else str(default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fernet = Fernet(secrets_key or load_secrets_key(self.path))
        except ValueError as exc:
            raise ConfigError(f"the secrets key is not a Fernet key (32 url-safe base64 bytes): {exc}") from None
        self._rows: ProfileRows = rows if rows is not None else SQLiteRows(self.path)

    # ------------------------------------------------------------------------------------------ secrets
    def _seal(self, profile: Profile) -> tuple[str, bytes | None]:
        data, found = _split_secrets(profile.to_dict())
        blob = self._fernet.encrypt(json.dumps(found).encode()) if found else None
        return json.dumps(data, ensure_ascii=False), blob

    def _open(self, data: str, blob: bytes | None) -> Profile:
        from cryptography.fernet import InvalidToken

        d = json.loads(data)
        if blob is not None and isinstance(d.get("llm"), dict):
            try:
                found = json.loads(self._fernet.decrypt(blob))
            except InvalidToken:
                raise ConfigError("the profile's secrets cannot be decrypted: the secrets key changed "
                                  "(set it again, or replace the provider key)") from None
            d["llm"]["api_key"] = found.get("llm.api_key")
        return Profile.from_dict(d)

    # ------------------------------------------------------------------------------------------------ CRUD
    def create(self, profile: Profile | dict[str, Any]) -> Profile:
        p = profile if isinstance(profile, Profile) else Profile.from_dict(profile)
        data, blob = self._seal(p)
        if not self._rows.insert(p.id, data, blob):
            raise ConfigError(f"profile {p.id!r} already exists (use update or import with replace)")
        return p

    def get(self, profile_id: str) -> Profile:
        row = self._rows.row(profile_id)
        if row is None:
            raise InputError(f"no profile {profile_id!r}")
        return self._open(row[0], row[1])

    def exists(self, profile_id: str) -> bool:
        return self._rows.exists(profile_id)

    def update(self, profile_id: str, changes: Profile | dict[str, Any]) -> Profile:
        """Replace the profile (a Profile) or merge top-level fields (a dict); the result is validated."""
        current = self.get(profile_id).to_dict()
        if isinstance(changes, Profile):
            merged = changes.to_dict()
        else:
            if not isinstance(changes, dict):
                raise ConfigError("profile update must be an object of fields")
            merged = {**current, **changes}
            new_llm, old_llm = changes.get("llm"), current.get("llm")
            if isinstance(new_llm, dict) and "api_key" not in new_llm and isinstance(old_llm, dict):
                # secrets are write-only: a client that read the profile never saw the key, so an update
                # that leaves it out keeps it (send "api_key": null to clear it)
                merged["llm"] = {**new_llm, "api_key": old_llm.get("api_key")}
        if merged.get("id") != profile_id:
            raise ConfigError(f"profile id cannot change ({profile_id!r} → {merged.get('id')!r})")
        p = Profile.from_dict(merged)
        data, blob = self._seal(p)
        self._rows.replace(profile_id, data, blob)
        return p

    def delete(self, profile_id: str) -> bool:
        return self._rows.delete(profile_id)

    def ids(self) -> list[str]:
        return self._rows.ids()

    def list(self) -> list[Profile]:
        rows = [r for pid in self._rows.ids() if (r := self._rows.row(pid)) is not None]
        return [self._open(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------------------------------ JSON I/O
    def import_json(self, source: str | Path | dict[str, Any], replace: bool = False) -> Profile:
        """Import a profile from a JSON file path, a JSON string or a dict; ConfigError when invalid."""
        if isinstance(source, dict):
            p = Profile.from_dict(source)
        else:
            text = str(source)
            if isinstance(source, Path) or not text.lstrip().startswith(("{", "[", "\"")):
                path = Path(text)
                if not path.is_file():
                    raise InputError(f"profile file {path} does not exist")
                text = path.read_text(encoding="utf-8")
            p = parse_profile_json(text)
        if replace and self.exists(p.id):
            return self.update(p.id, p)
        return self.create(p)

    def export_json(self, profile_id: str, path: str | Path | None = None) -> str:
        """The profile as JSON (never the API key hash, never a provider secret); also written to ``path``."""
        text = json.dumps(self.get(profile_id).public_dict(), ensure_ascii=False, indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    # ----------------------------------------------------------------------------------------- API keys
    def create_key(self, profile_id: str) -> str:
        """A new API key for the brand (replacing any previous one). The plain key is returned only here."""
        if not self.exists(profile_id):
            raise InputError(f"no profile {profile_id!r}")
        key = "fs_" + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        self._rows.set_key(profile_id, salt, _hash_key(salt, key))
        return key

    rotate_key = create_key

    def revoke_key(self, profile_id: str) -> None:
        self._rows.set_key(profile_id, None, None)

    def verify_key(self, profile_id: str, key: str) -> bool:
        if not isinstance(key, str) or not key:
            return False
        row = self._rows.key(profile_id)
        if row is None:
            return False
        return hmac.compare_digest(_hash_key(row[0], key), row[1])

    # --------------------------------------------------------------------------------------------- misc
    def ensure_demo(self) -> Profile:
        """Install the demo brand (id 'demo') unless it is already there."""
        if self.exists(DEMO_ID):
            return self.get(DEMO_ID)
        return self.create(demo_profile_dict())

    def close(self) -> None:
        self._rows.close()

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
