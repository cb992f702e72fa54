"""Profiles persisted in SQLite (the embedded default); a small interface so Redis/Postgres can follow.

Durability: WAL journal with ``synchronous=FULL`` and one transaction per call, so a profile written
before a crash (even ``kill -9``) is there when the database is reopened.

API keys are stored hashed: a key is 32 random bytes shown once by :meth:`create_key`; the store keeps
a salted SHA-256 of it. Slow password hashes are unnecessary because such keys cannot be guessed from a
dictionary, and verification runs on every server request.
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
from typing import Any

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


def _hash_key(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode("utf-8")).digest()


def parse_profile_json(text: str) -> Profile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"profile JSON is invalid: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    return Profile.from_dict(data)


class ProfileStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else str(default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"profile store {self.path} is not a usable SQLite database: {exc}") from exc

    # ------------------------------------------------------------------------------------------------ CRUD
    def create(self, profile: Profile | dict[str, Any]) -> Profile:
        p = profile if isinstance(profile, Profile) else Profile.from_dict(profile)
        now = time.time()
        with self._lock:
            try:
                self._db.execute("INSERT INTO profiles (id, data, created, updated) VALUES (?, ?, ?, ?)",
                                 (p.id, json.dumps(p.to_dict(), ensure_ascii=False), now, now))
            except sqlite3.IntegrityError:
                raise ConfigError(f"profile {p.id!r} already exists (use update or import with replace)") from None
        return p

    def get(self, profile_id: str) -> Profile:
        with self._lock:
            row = self._db.execute("SELECT data FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        if row is None:
            raise InputError(f"no profile {profile_id!r} (known: {', '.join(self.ids()) or 'none'})")
        return Profile.from_dict(json.loads(row[0]))

    def exists(self, profile_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM profiles WHERE id = ?", (profile_id,)).fetchone() is not None

    def update(self, profile_id: str, changes: Profile | dict[str, Any]) -> Profile:
        """Replace the profile (a Profile) or merge top-level fields (a dict); the result is validated."""
        current = self.get(profile_id).to_dict()
        if isinstance(changes, Profile):
            merged = changes.to_dict()
        else:
            if not isinstance(changes, dict):
                raise ConfigError("profile update must be an object of fields")
            merged = {**current, **changes}
        if merged.get("id") != profile_id:
            raise ConfigError(f"profile id cannot change ({profile_id!r} → {merged.get('id')!r})")
        p = Profile.from_dict(merged)
        with self._lock:
            self._db.execute("UPDATE profiles SET data = ?, updated = ? WHERE id = ?",
                             (json.dumps(p.to_dict(), ensure_ascii=False), time.time(), profile_id))
        return p

    def delete(self, profile_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))
        return cur.rowcount > 0

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM profiles ORDER BY id")]

    def list(self) -> list[Profile]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM profiles ORDER BY id").fetchall()
        return [Profile.from_dict(json.loads(r[0])) for r in rows]

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
        """The profile as JSON (never the API key hash); also written to ``path`` when given."""
        text = json.dumps(self.get(profile_id).to_dict(), ensure_ascii=False, indent=2)
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
        with self._lock:
            self._db.execute("UPDATE profiles SET key_salt = ?, key_hash = ?, updated = ? WHERE id = ?",
                             (salt, _hash_key(salt, key), time.time(), profile_id))
        return key

    rotate_key = create_key

    def revoke_key(self, profile_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE profiles SET key_salt = NULL, key_hash = NULL WHERE id = ?", (profile_id,))

    def verify_key(self, profile_id: str, key: str) -> bool:
        if not isinstance(key, str) or not key:
            return False
        with self._lock:
            row = self._db.execute("SELECT key_salt, key_hash FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        if row is None or row[0] is None:
            return False
        return hmac.compare_digest(_hash_key(row[0], key), row[1])

    # --------------------------------------------------------------------------------------------- misc
    def ensure_demo(self) -> Profile:
        """Install the demo brand (id 'demo') unless it is already there."""
        if self.exists(DEMO_ID):
            return self.get(DEMO_ID)
        return self.create(demo_profile_dict())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
