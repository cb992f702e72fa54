"""The OpenAI-compatible client against the stream shapes real servers send.

A real HTTP server on 127.0.0.1 plays one recorded wire shape per path (what llama.cpp, vLLM, Ollama,
OpenAI-style proxies and broken deployments actually write); the client must produce the complete answer
or a clear LLMError — never a hang. The same client against a real llama.cpp server is in test_dialogue.py.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from facestage.dialogue.llm import LLMError, OpenAIChatBackend


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    event = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                          "finish_reason": finish}]}
    return f"data: {json.dumps(event)}\n\n".encode()


ANSWER = ["Our shops", " open at", " 8 am."]
USAGE = b'data: {"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}\n\n'

# path -> the events written, in order (b"<stall>" = stay silent until the client gives up)
SCENARIOS: dict[str, list[bytes]] = {
    # OpenAI: content, a finish chunk, [DONE]
    "openai": [_chunk(t) for t in ANSWER] + [_chunk(finish="stop"), b"data: [DONE]\n\n"],
    # llama.cpp / proxies: a finish_reason and then the stream just ends
    "finish-no-done": [_chunk(t) for t in ANSWER[:-1]] + [_chunk(ANSWER[-1], finish="stop")],
    # keep-alive comments, event names, ids, CRLF line endings between the content
    "keepalive": [b": ping\r\n\r\n", b"event: message\r\nid: 1\r\n" + _chunk(ANSWER[0]).replace(b"\n", b"\r\n"),
                  b": keep-alive\n\n", b"retry: 3000\n\n", _chunk(ANSWER[1]), b":\n\n", _chunk(ANSWER[2]),
                  _chunk(finish="stop"), b"data: [DONE]\n\n"],
    # stream_options.include_usage: a usage chunk with no choices after the finish
    "usage": [_chunk(t) for t in ANSWER] + [_chunk(finish="stop"), USAGE, b"data: [DONE]\n\n"],
    # errors mid-stream, three shapes
    "error-event": [_chunk(ANSWER[0]), b'data: {"error": {"message": "model overloaded", "code": 503}}\n\n'],
    "error-named-event": [_chunk(ANSWER[0]), b'event: error\ndata: {"message": "context length exceeded"}\n\n'],
    "error-body": [_chunk(ANSWER[0]), b'{"error": {"message": "upstream timed out", "type": "server_error"}}\n'],
    # broken: cut off with no finish and no [DONE]; a torn JSON event; a server that stops talking
    "cut-off": [_chunk(t) for t in ANSWER[:2]],
    "torn": [_chunk(ANSWER[0]), b'data: {"choices": [{"delta": {"cont\n\n'],
    "silent": [_chunk(ANSWER[0]), b"<stall>"],
    "pings-forever": [_chunk(ANSWER[0])] + [b": ping\n\n"] * 400,
}


class _Scripted(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = self.path.split("/")[1]
        if name == "http-500":
            self._reply(500, b'{"error": {"message": "out of memory loading the model"}}')
            return
        if name == "not-streamed":  # a server that ignores "stream": true
            body = {"choices": [{"message": {"role": "assistant", "content": "".join(ANSWER)}}]}
            self._reply(200, json.dumps(body).encode())
            return
        assert request["stream"] is True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for data in SCENARIOS[name]:
                if data == b"<stall>":
                    time.sleep(3)
                    return
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01 if name == "pings-forever" else 0.02)
            self.wfile.write(b"0\r\n\r\n")  # a clean end of the chunked body
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        srv.server_close()


def _backend(server: str, name: str, **kw: float) -> OpenAIChatBackend:
    return OpenAIChatBackend(f"{server}/{name}/v1", "m", **kw)


@pytest.mark.parametrize("name", ["openai", "finish-no-done", "keepalive", "usage", "not-streamed"])
def test_complete_answers_from_every_stream_shape(server: str, name: str) -> None:
    deltas = list(_backend(server, name).stream_chat([{"role": "user", "content": "When do you open?"}]))
    assert "".join(deltas) == "Our shops open at 8 am."
    if name != "not-streamed":
        assert deltas == ANSWER  # streamed as the server sent it, not re-chunked


@pytest.mark.parametrize(("name", "message"), [
    ("error-event", "chat backend error: model overloaded"),
    ("error-named-event", "chat backend error: context length exceeded"),
    ("error-body", "chat backend error: upstream timed out"),
    ("http-500", "answered HTTP 500: out of memory loading the model"),
    ("cut-off", "ended before the answer was finished"),
    ("torn", "malformed event"),
])
def test_errors_mid_stream_are_clear_llm_errors(server: str, name: str, message: str) -> None:
    got: list[str] = []
    with pytest.raises(LLMError, match=message):
        got.extend(_backend(server, name).stream_chat([{"role": "user", "content": "hi"}]))
    if name not in ("http-500",):
        assert got == ANSWER[:len(got)] and len(got) >= 1  # what arrived before the error was delivered


def test_a_silent_server_times_out_instead_of_hanging(server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="broke"):
        list(_backend(server, "silent", timeout=0.5).stream_chat([]))
    assert time.monotonic() - t0 < 2.5  # the read timeout fired, not the server's own 3 s stall


def test_keepalive_pings_cannot_keep_an_answer_open_forever(server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="took longer than 1 s"):
        list(_backend(server, "pings-forever", total_timeout=1.0).stream_chat([]))
    assert time.monotonic() - t0 < 2.5  # the stream would go on for 4 s of pings


def test_connection_refused_is_an_llm_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    with pytest.raises(LLMError, match="unreachable"):
        list(OpenAIChatBackend(f"http://127.0.0.1:{port}", "m").stream_chat([]))
