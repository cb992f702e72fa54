"""Who may do what: origin checks for browsers, brand API keys for the console and employee sessions.

Keys are verified against the store's salted hashes (never stored in plain). A key authorises exactly one
brand: brand A's key on brand B's URL is refused like a wrong key, so a brand sees only its own profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from websockets.datastructures import Headers

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


class Unauthorized(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OriginPolicy:
    """Browsers send Origin; pages served by this server (same host:port) and listed origins are allowed.

    Non-browser clients (Python, OBS plugins) send no Origin and are allowed: origin checks protect
    users' browsers from other web sites, not the server from programs.
    """

    def __init__(self, port: int, extra: Iterable[str] = ()) -> None:
        self.port = port
        self.extra = {o.rstrip("/") for o in extra}

    def allowed(self, origin: str | None, host_header: str | None = None) -> bool:
        if origin is None:
            return True
        origin = origin.rstrip("/")
        if origin in self.extra or "*" in self.extra:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            return False
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        if host_header and parts.netloc == host_header:
            return True  # the page came from this very server, under the name the browser used
        return parts.hostname in LOOPBACK_HOSTS and port == self.port


def bearer_key(headers: Headers) -> str | None:
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("X-API-Key") or None


def require_brand(store, brand: str, headers: Headers) -> None:
    key = bearer_key(headers)
    if key is None:
        raise Unauthorized(401, "this endpoint needs the brand's API key: 'Authorization: Bearer KEY'")
    if not store.exists(brand) or not store.verify_key(brand, key):
        # same answer for a missing brand and a wrong key: no probing which brands exist
        raise Unauthorized(403, f"the API key is not valid for brand {brand!r}")
