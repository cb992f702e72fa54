"""Where the server may send requests on a brand's behalf (LLM and speech backends, VMC targets).

A brand writes ``llm.base_url`` into its profile; without a check the server would fetch any URL the
brand names, including addresses inside the operator's network (cloud metadata at 169.254.169.254, an
admin panel on 10.0.0.5, the server's own loopback). The policy is checked on the *resolved* addresses,
and the caller connects to the address that was checked (``Target.address``), so a DNS answer that
changes between check and connect (rebinding) cannot redirect the request.

Entries of an allow-list:
  ``public``            any host whose addresses are all globally routable (the default list)
  ``api.example.com``   this host name (``*.example.com`` for sub-domains), at public addresses
  ``loopback`` / ``private`` / ``link-local``  that address class (127/8 and ::1; RFC 1918, fc00::/7 and
                        100.64/10; 169.254/16 and fe80::/10 — which includes cloud metadata)
  ``10.1.2.0/24``       a network (CIDR) or one address, at any class
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

CLASSES: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
}
METADATA = ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")  # AWS/GCP/Azure, AWS IPv6, Alibaba


class OutboundRefused(ConfigError):
    """The destination is not allowed by the operator. The message names the URL's host only."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (for the Host header and TLS server name)
    port: int
    address: str  # the checked address to connect to


class OutboundPolicy:
    def __init__(self, allow: Iterable[str] = ("public",), resolver: Resolver | None = None) -> None:
        self.entries = tuple(str(a).strip().lower() for a in allow if str(a).strip())
        self.resolver = resolver or system_resolver
        self.public = "public" in self.entries
        self.names: list[str] = []
        self.networks: list[Network] = []
        for e in self.entries:
            if e == "public":
                continue
            if e in CLASSES:
                self.networks += [ipaddress.ip_network(n) for n in CLASSES[e]]
                continue
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                if not e.replace("*.", "", 1).replace("-", "").replace(".", "").isalnum():
                    raise ConfigError(f"outbound allow-list: {e!r} is not a host name, network or class "
                                      "(public, loopback, private, link-local)") from None
                self.names.append(e)

    @classmethod
    def allow_all(cls) -> OutboundPolicy:
        """Trusted local use (a developer's own profile): every class allowed."""
        return cls(("public", "loopback", "private", "link-local"))

    def _name_ok(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == n or (n.startswith("*.") and host.endswith(n[1:])) for n in self.names)

    def address_ok(self, addr: IPAddress, name_ok: bool) -> bool:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(addr in net for net in self.networks):
            return True
        if str(addr) in METADATA or not addr.is_global or addr.is_multicast:
            return False
        return self.public or name_ok

    def check(self, host: str, port: int) -> str:
        """The first resolved address of ``host`` after checking *every* address; OutboundRefused otherwise."""
        refused = OutboundRefused(f"outbound requests to {host!r} are not allowed by this server's operator")
        if not host or len(host) > 253:
            raise refused
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        name_ok = literal is None and self._name_ok(host)
        if literal is not None:
            if not self.address_ok(literal, False):
                raise refused  # refused before any connection or DNS lookup
            return str(literal)
        addresses = self.resolver(host, port)
        if not addresses:
            raise OutboundRefused(f"cannot resolve {host!r}")
        parsed = []
        for a in addresses:
            try:
                parsed.append(ipaddress.ip_address(a.split("%", 1)[0]))
            except ValueError:
                raise refused from None
        # every answer must pass: a mixed answer (one public, one internal) is how rebinding hides
        if not all(self.address_ok(a, name_ok) for a in parsed):
            raise refused
        return str(parsed[0])

    def check_url(self, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused("outbound URLs must be http(s)://host[:port]/…")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OutboundRefused("the URL's port is not a number within 1..65535") from None
        if parts.username or parts.password:
            raise OutboundRefused("outbound URLs may not carry user:password@ (put keys in api_key)")
        return Target(parts.scheme, parts.hostname, port, self.check(parts.hostname, port))
