"""Property-based fuzzing (hypothesis): the frame header, JSON messages, session options, the connection
core, and HTTP routes and WebSocket messages against a real server on 127.0.0.1.

Properties: bad input becomes a ProtocolError / a 4xx JSON error / an error message — never another
exception, never a 5xx, never a traceback to the client — and the server stays healthy with bounded
memory. Sized for CI (a few thousand cases in well under a minute); ``FACESTAGE_FUZZ_EXAMPLES=N``
multiplies every budget by N (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import string

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facestage.dialogue.store import ProfileStore
from facestage.serving import ServerThread
from facestage.serving.auth import identify
from facestage.serving.connection import Action, ClientCounter, ConnectionCore, Send
from facestage.serving.options import SCHEMAS, validate_options
from facestage.serving.protocol import HEADER, Frame, ProtocolError, parse_message, unpack_frame
from facestage.serving.protocol import SCHEMAS as MESSAGES
from facestage.serving.security import Limits, OperatorKey, SecurityConfig

SCALE = max(1, int(os.environ.get("FACESTAGE_FUZZ_EXAMPLES", "1")))
OP = "fso_fuzz-operator-key-00000000"


def budget(n: int) -> settings:
    return settings(max_examples=n * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                  HealthCheck.function_scoped_fixture])


json_scalar = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=30)
json_value = st.recursive(json_scalar, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)
FIELD_NAMES = sorted({f for schema in MESSAGES.values() for f in schema}
                     | {f for schema in SCHEMAS.values() for f in schema} | {"key", "brand", "version", "session"})
field_name = st.sampled_from(FIELD_NAMES) | st.text(max_size=10)


@st.composite
def control_message(draw) -> dict:
    """Mostly well-formed messages with wrong details: a known type, known field names, odd values."""
    msg = {"type": draw(st.sampled_from(sorted(MESSAGES)) | st.text(max_size=8))}
    msg.update(draw(st.dictionaries(field_name, json_value, max_size=5)))
    if msg["type"] == "start" and draw(st.booleans()):
        msg["session"] = draw(st.sampled_from(sorted(SCHEMAS)))
        msg["options"] = draw(st.dictionaries(field_name, json_value, max_size=5))
    return msg


frame_bytes = (st.binary(max_size=64)
               | st.builds(lambda v, k, f, s, t, p: HEADER.pack(v, k, f, s, t) + p, st.integers(0, 255),
                           st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1),
                           st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=32)))


# --------------------------------------------------------------------------------------------- pure parts
@budget(2000)
@given(frame_bytes)
def test_frame_header_never_fails_otherwise(data: bytes) -> None:
    try:
        f = unpack_frame(data)
    except ProtocolError as exc:
        assert exc.code and exc.message
    else:
        assert isinstance(f, Frame) and f.timestamp == f.timestamp


@budget(1500)
@given(control_message() | json_value)
def test_json_messages_never_fail_otherwise(msg) -> None:
    try:
        out = parse_message(json.dumps(msg))
    except ProtocolError as exc:
        assert exc.code and exc.message
    else:
        assert out["type"] in MESSAGES


@budget(1000)
@given(st.sampled_from(sorted(SCHEMAS)), st.dictionaries(field_name, json_value, max_size=6),
       st.dictionaries(field_name, json_value, max_size=4))
def test_session_options_never_fail_otherwise(kind: str, options: dict, resumed: dict) -> None:
    try:
        out = validate_options(kind, options, resumed)
    except ProtocolError as exc:
        assert exc.code in ("bad_field", "unknown_field")
    else:
        assert set(out) <= set(SCHEMAS[kind]) | {"key", "brand"}


@pytest.fixture(scope="module")
def core_factory():
    from types import SimpleNamespace

    store = ProfileStore(":memory:")
    app = SimpleNamespace(operator=OperatorKey(OP), engine=SimpleNamespace(store=store),
                          security=SecurityConfig(trust_local=False))
    counter = ClientCounter(4)
    yield lambda: ConnectionCore(lambda k, b: identify(app, k, b, False), counter, Limits(), False, "192.0.2.1")
    store.close()


def _check_actions(actions: list[Action]) -> None:
    for a in actions:
        if isinstance(a, Send) and a.msg.get("type") == "error":
            text = json.dumps(a.msg)
            assert a.msg["code"] != "internal", text
            assert "Traceback" not in text and 'File "' not in text


@budget(1500)
@given(st.lists(control_message().map(json.dumps) | frame_bytes | st.text(max_size=40), min_size=1, max_size=8))
def test_connection_core_turns_any_event_sequence_into_actions(core_factory, events) -> None:
    core = core_factory()
    for e in events:
        actions = core.receive(e)
        _check_actions(actions)
        for a in actions:  # play the adapter: a start either succeeds or fails, both must be handled
            if type(a).__name__ == "StartSession":
                core.started(a.kind, "sid", {})
    core.session_closed()


# ------------------------------------------------------------------------------------------- real server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sec = SecurityConfig(operator_key=OP, trust_local=False, open_media=False, limits=Limits(idle_timeout_s=60))
    with ServerThread(db_path=tmp_path_factory.mktemp("fuzz") / "p.sqlite3", security=sec) as srv:
        yield srv


def health(srv) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("GET", "/healthz")
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


SEGMENT = st.sampled_from(["v1", "brands", "demo", "render", "avatars", "effects", "avatar", "key", "healthz", "demo",
                           "studio.html", "..", "%2e%2e", "etc", "passwd", "", "ws"]) \
    | st.text(alphabet=string.ascii_letters + string.digits + "-_.%~", max_size=12)
PATH = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda s: "/" + "/".join(s)) \
    .flatmap(lambda p: st.sampled_from([p, p + "?filename=x.glb", p + "?a=%00&b=" + "x" * 50]))
HEADER_TEXT = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=40)
AUTH = st.sampled_from([None, f"Bearer {OP}", "Bearer fs_nope", "Bearer ", "Basic abc"]) | HEADER_TEXT
BODY = st.none() | json_value.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200) \
    | control_message().map(lambda m: json.dumps({**m, "id": "fz", "name": "n", "role": "r", "company": "c",
                                                  "persona": "p"}).encode())


@budget(300)
@given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]), PATH, AUTH, BODY,
       st.sampled_from([None, "http://evil.example", "null"]))
def test_http_routes_never_5xx_or_leak(server, method, path, auth, body, origin) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request(method, path, body=body if method not in ("GET", "HEAD") else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (method, path, resp.status, data[:300])
    assert b"Traceback" not in data and b'File "' not in data
    if resp.status >= 400 and method != "HEAD":
        err = json.loads(data)
        assert err["error"] and err["message"]


@budget(300)
@given(st.lists(control_message().map(json.dumps) | frame_bytes, min_size=1, max_size=6))
def test_websocket_messages_keep_the_connection_and_server_healthy(server, messages) -> None:
    async def main() -> None:
        async with websockets.connect(server.ws_url, max_size=2**24) as ws:
            await ws.recv()  # hello
            for m in messages:
                await ws.send(m)
            await ws.send(json.dumps({"type": "ping", "t": 1}))
            while True:  # every reply is well-formed; the connection survives to answer the ping
                reply = await asyncio.wait_for(ws.recv(), 60)
                if isinstance(reply, bytes):
                    continue
                msg = json.loads(reply)
                assert "Traceback" not in reply and msg.get("code") != "internal", reply
                if msg.get("type") == "pong":
                    return

    asyncio.run(main())


def test_after_fuzzing_the_server_is_healthy_and_memory_bounded(server) -> None:
    before = health(server)
    asyncio.run(_flood(server, 400))
    after = health(server)
    print(f"rss {before['rss_kb']} -> {after['rss_kb']} kB after 400 malformed sessions")
    assert after["ok"] and after["sessions"] == 0
    assert after["rss_kb"] - before["rss_kb"] < 32 * 1024


async def _flood(server, n: int) -> None:
    junk = [b"\x01\x01" + b"\0" * 14 + b"\xff\xd8\xff" + os.urandom(200), b"{", "x" * 1000,
            json.dumps({"type": "start", "session": "effects", "options": {"key": OP, "quality": 500}})]
    for i in range(n):
        async with websockets.connect(server.ws_url) as ws:
            await ws.recv()
            await ws.send(junk[i % len(junk)])
            await ws.recv()
