"""An OpenAI-compatible ``/v1/chat/completions`` client with streaming (Server-Sent Events).

Works with llama.cpp's server, vLLM, Ollama and hosted OpenAI-style APIs. Standard library only
(http.client), so the dialogue needs no extra dependency and streaming stays byte-exact.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, FacestageError
from .outbound import OutboundPolicy

MAX_EVENT_BYTES = 1 << 20  # one SSE line; a longer one is cut (and then fails to parse) instead of filling memory
MAX_BODY_BYTES = 8 << 20  # a non-streamed completion


class LLMError(FacestageError, RuntimeError):
    """The chat backend is unreachable or answered with an error (callers fall back to retrieval)."""


class OpenAIChatBackend:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, temperature: float = 0.3,
                 max_tokens: int = 256, timeout: float = 30.0, connect_timeout: float = 3.0,
                 total_timeout: float = 120.0, policy: OutboundPolicy | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"LLM base URL must be http(s)://host[:port][/v1], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.temperature, self.max_tokens = temperature, max_tokens
        # timeout: the longest silence between two reads; total_timeout: the whole answer, pings included.
        self.timeout, self.connect_timeout, self.total_timeout = timeout, connect_timeout, total_timeout
        # None = trusted local use (a developer's own profile); the server always passes its policy.
        self.policy = policy
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        path = parts.path.rstrip("/")
        # Accept both "http://host:8080" and "http://host:8080/v1" as the base URL.
        self._path = (path if path.endswith("/v1") else path + "/v1") + "/chat/completions"

    @classmethod
    def from_settings(cls, settings: Any, policy: OutboundPolicy | None = None) -> OpenAIChatBackend:
        return cls(settings.base_url, settings.model, settings.api_key, settings.temperature, settings.max_tokens,
                   policy=policy)

    def _connection(self) -> http.client.HTTPConnection:
        if self.policy is not None:
            # Resolve and check now, then connect to exactly that address (no second lookup to rebind).
            try:
                target = self.policy.check_url(self.base_url)
            except ConfigError as exc:
                raise LLMError(str(exc)) from None
            if self._scheme == "https":
                return _PinnedHTTPS(target.host, target.port, target.address, self.connect_timeout)
            return _PinnedHTTP(target.host, target.port, target.address, self.connect_timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.connect_timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)

    def stream_chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Yield content deltas as the server streams them. Raises LLMError on any failure."""
        body = json.dumps({"model": self.model, "messages": messages, "stream": True,
                           "temperature": self.temperature, "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        conn = self._connection()
        try:
            try:
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(self.timeout)  # connecting must be quick; generating may take longer
                conn.request("POST", self._path, body, headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise LLMError(f"chat backend {self.base_url} unreachable: {exc}") from exc
            if resp.status != 200:
                detail = resp.read(4096).decode("utf-8", "replace")
                with contextlib.suppress(LLMError):
                    detail = _error_text(_loads(detail))
                raise LLMError(f"chat backend {self.base_url} answered HTTP {resp.status}: {detail[:300]}")
            yield from self._events(resp)
        finally:
            conn.close()

    def _events(self, resp: http.client.HTTPResponse) -> Iterator[str]:
        """Parse the Server-Sent Events of a streamed completion as the servers people run send them:
        ``data: [DONE]`` or only a ``finish_reason`` (llama.cpp, some proxies) ends the answer; comments
        (``: ping``), ``event:``/``id:``/``retry:`` lines, blank separators and usage-only chunks are skipped;
        an error (an ``error`` event, ``event: error``, or a bare JSON error body written mid-stream) and a
        stream that stops before the answer is finished raise LLMError. The whole answer must arrive within
        ``total_timeout`` even if the server keeps the stream alive with pings."""
        ctype = (resp.getheader("Content-Type") or "").lower()
        if "application/json" in ctype:  # a server that ignored "stream": true answers in one body
            yield self._whole_body(resp)
            return
        deadline = time.monotonic() + self.total_timeout
        finished = False  # a finish_reason was seen: the answer is complete even if [DONE] never comes
        event_name = ""
        try:
            while True:
                if time.monotonic() > deadline:
                    raise LLMError(f"chat backend {self.base_url} took longer than {self.total_timeout:.0f} s "
                                   "to finish its answer")
                line = resp.readline(MAX_EVENT_BYTES)
                if not line:
                    if finished:
                        return
                    raise LLMError(f"chat stream from {self.base_url} broke: it ended before the answer was "
                                   "finished (no finish_reason, no [DONE])")
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    event_name = ""  # a blank line ends one event
                    continue
                if text.startswith("event:"):
                    event_name = text[6:].strip()
                    continue
                if text.startswith("{"):  # not SSE: an error body written into the stream
                    raise LLMError(f"chat backend error: {_error_text(_loads(text))}")
                if not text.startswith("data:"):
                    continue  # comments (": ping"), id:, retry:
                data = text[5:].strip()
                if data == "[DONE]":
                    return
                event = _loads(data)
                if event_name == "error" or "error" in event:
                    raise LLMError(f"chat backend error: {_error_text(event)}")
                for choice in event.get("choices") or []:  # usage-only chunks carry no choices
                    finished = finished or bool(choice.get("finish_reason"))
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        yield content
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise LLMError(f"chat stream from {self.base_url} broke: {exc}") from exc

    def _whole_body(self, resp: http.client.HTTPResponse) -> str:
        try:
            body = _loads(resp.read(MAX_BODY_BYTES).decode("utf-8", "replace"))
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise LLMError(f"chat backend {self.base_url} broke off its answer: {exc}") from exc
        if "error" in body:
            raise LLMError(f"chat backend error: {_error_text(body)}")
        try:
            return str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"chat backend {self.base_url} sent a completion without choices[0].message") from exc

    def chat(self, messages: list[dict[str, str]]) -> str:
        return "".join(self.stream_chat(messages))


def _loads(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LLMError(f"chat backend sent a malformed event: {data[:80]!r}") from exc
    if not isinstance(event, dict):
        raise LLMError(f"chat backend sent an event that is not an object: {data[:80]!r}")
    return event


def _error_text(event: dict[str, Any]) -> str:
    """The message of an OpenAI-style error ({"error": {"message": ...}} or {"error": "..."})."""
    err = event.get("error", event)
    if isinstance(err, dict):
        err = err.get("message") or err
    return str(err)[:300]


class _PinnedHTTP(http.client.HTTPConnection):
    """Host header from the URL, TCP connection to the address the policy checked."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address, with the URL's host name for SNI and certificate verification."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
