"""Who may do what: origin checks for browsers, the operator key, brand API keys.

Keys are verified against salted hashes (never stored in plain). A brand key authorises exactly one
brand: brand A's key on brand B's URL is refused like a wrong key, so a brand sees only its own profile.
The operator key (or, on a loopback-bound server, a request from this machine) may create, list and
delete brands and act for any of them. See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from websockets.datastructures import Headers

if TYPE_CHECKING:
    from .context import ServerContext

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host", "Via")


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


def host_name(host_header: str | None) -> str:
    """The host part of a Host header ("127.0.0.1:8765" → "127.0.0.1", "[::1]:80" → "[::1]")."""
    h = (host_header or "").strip().lower()
    if h.startswith("["):
        return h[:h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def is_local_request(remote: str, headers: Headers) -> bool:
    """A request from this machine, made by name to this machine, not forwarded by a proxy.

    The Host check stops DNS rebinding (evil.example resolving to 127.0.0.1 sends Host: evil.example);
    the proxy headers stop a same-host reverse proxy from lending its 127.0.0.1 to the whole internet.
    """
    if remote not in LOOPBACK_HOSTS and not remote.startswith("127.") and remote != "::ffff:127.0.0.1":
        return False
    if host_name(headers.get("Host")) not in LOOPBACK_HOSTS:
        return False
    origin = headers.get("Origin")
    if origin is not None and (urlsplit(origin).hostname or "") not in LOOPBACK_HOSTS:
        return False
    return not any(h in headers for h in PROXY_HEADERS)


class Access:
    """What one request or session may do: ``operator`` (all brands) or ``brand`` (that one), or nothing."""

    def __init__(self, operator: bool = False, brand: str | None = None, local: bool = False) -> None:
        self.operator = operator
        self.brand = brand
        self.local = local

    @property
    def principal(self) -> str:
        """Who to count limits against (never the key itself: logs and stats may show this)."""
        return "operator" if self.operator else f"brand:{self.brand}" if self.brand else ""

    def may_brand(self, brand: str) -> bool:
        return self.operator or self.brand == brand


def identify(app: ServerContext, key: str | None, brand: str | None, local: bool) -> Access:
    """Access for a key (operator key, or the key of ``brand``); local trust makes this machine operator.
    Raises Unauthorized(403) for a key that is given but wrong: a wrong key is never silently ignored."""
    if key is not None:
        if app.operator.verify(key):
            return Access(operator=True, local=local)
        if brand is not None and app.engine.store.exists(brand) and app.engine.store.verify_key(brand, key):
            return Access(brand=brand, local=local)
        # same answer for a missing brand and a wrong key: no probing which brands exist
        raise Unauthorized(403, "the key is not valid here" + (f" for brand {brand!r}" if brand else ""))
    if local and app.security.trust_local:
        return Access(operator=True, local=True)
    return Access(local=local)


def require_operator(access: Access) -> None:
    if not access.operator:
        raise Unauthorized(401, "this endpoint needs the operator key: 'Authorization: Bearer KEY'")


def require_brand(access: Access, brand: str) -> None:
    if access.operator or access.brand == brand:
        return
    if access.brand is None:
        raise Unauthorized(401, "this endpoint needs the brand's API key: 'Authorization: Bearer KEY'")
    raise Unauthorized(403, f"the key is not valid for brand {brand!r}")
