"""The connection state machine without a socket: every error code the server sends, from events alone.

The parts are real (a ProfileStore in memory, the operator key, the option schemas); only the clock is
a plain number the test advances, so rate limits and idle time are exact.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from facestage.dialogue.store import ProfileStore
from facestage.serving.auth import identify
from facestage.serving.connection import (
    Checkpoint,
    ClientCounter,
    Close,
    CloseSession,
    ConnectionCore,
    FrameToSession,
    Send,
    StartSession,
    ToSession,
)
from facestage.serving.options import SCHEMAS, validate_options
from facestage.serving.protocol import MAX_FRAME_BYTES, MAX_JSON_BYTES, Kind, pack_frame
from facestage.serving.security import Limits, OperatorKey, SecurityConfig

OP = "fso_core-test-operator-key-000"
JPEG = b"\xff\xd8\xff" + b"\0" * 100


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world():
    store = ProfileStore(":memory:")
    store.create({"id": "shop", "name": "A", "role": "r", "company": "c", "persona": "p"})
    key = store.create_key("shop")
    app = SimpleNamespace(operator=OperatorKey(OP), engine=SimpleNamespace(store=store),
                          security=SecurityConfig(trust_local=False))
    clock = Clock()

    def core(open_media: bool = False, counter: ClientCounter | None = None, **limits: float) -> ConnectionCore:
        return ConnectionCore(lambda k, b: identify(app, k, b, False), counter or ClientCounter(2),
                              Limits(**limits), open_media, "198.51.100.7", clock)

    yield SimpleNamespace(core=core, key=key, clock=clock)
    store.close()


def codes(actions) -> list[str]:
    return [a.msg["code"] for a in actions if isinstance(a, Send) and a.msg.get("type") == "error"]


def start(c: ConnectionCore, session: str = "effects", **options) -> list:
    return c.receive(json.dumps({"type": "start", "session": session, "options": options}))


def started(c: ConnectionCore, actions: list) -> None:
    (s,) = [a for a in actions if isinstance(a, StartSession)]
    c.started(s.kind, "sid", {})


@pytest.mark.parametrize("data, code", [
    (b"short", "bad_frame"), (b"\xff\xd8\xff" + b"\0" * 20, "bad_frame"),
    (pack_frame(99, 0, 0, b""), "unknown_kind"),
    (pack_frame(Kind.JPEG, 0, 0, b"x" * (MAX_FRAME_BYTES + 1)), "too_large"),
    (pack_frame(Kind.JPEG, 0, float("nan"), JPEG), "bad_frame"), (pack_frame(Kind.JPEG, 0, 0, JPEG), "no_session"),
    ("{oops", "bad_json"), ("[1]", "bad_message"), ('{"kind": 1}', "bad_message"), ('{"type": "fly"}', "unknown_type"),
    ('{"type": "start", "session": "effects", "x": 1}', "unknown_field"), ('{"type": "start"}', "missing_field"),
    ('{"type": "say", "text": 5}', "bad_field"),
    (json.dumps({"type": "ping", "t": "x" * MAX_JSON_BYTES}), "too_large"),
    ('{"type": "say", "text": "hi"}', "no_session"), ('{"type": "start", "session": "nope"}', "unknown_session"),
    ('{"type": "start", "session": "effects", "resume": {"version": 9}}', "bad_state"),
    ('{"type": "start", "session": "avatar", "resume": {"version": 1, "session": "effects"}}', "bad_state"),
    (json.dumps({"type": "start", "session": "effects", "options": {"quality": 5, "key": OP}}), "bad_field"),
    ('{"type": "start", "session": "effects", "options": {"colour": 1}}', "unknown_field"),
    ('{"type": "start", "session": "effects"}', "unauthorized"),
    ('{"type": "start", "session": "effects", "options": {"key": "fs_bad", "brand": "shop"}}', "forbidden"),
    ('{"type": "start", "session": "employee", "options": {"brand": "shop"}}', "unauthorized"),
    (json.dumps({"type": "start", "session": "employee", "options": {"brand": "other", "key": OP}}), "forbidden"),
])
def test_every_error_code_from_events_alone(world, data, code):
    c = world.core()
    actions = c.receive(data)
    assert codes(actions) == [code], actions
    assert all(isinstance(a, Send) for a in actions)  # an error never starts or closes anything
    assert all("Traceback" not in json.dumps(a.msg) for a in actions)


def test_start_dispatch_checkpoint_and_replace(world):
    c = world.core()
    actions = start(c, key=OP, quality=70)
    (s,) = actions
    assert isinstance(s, StartSession) and s.options == {"quality": 70} and s.access.operator
    assert codes(c.receive('{"type": "ping"}')) == []  # ping works while starting
    assert codes(start(c, key=OP)) == ["busy"]
    assert c.started("effects", "sid", {})[0].msg["type"] == "started"
    assert isinstance(c.receive('{"type": "checkpoint"}')[0], Checkpoint)
    assert isinstance(c.receive('{"type": "config", "quality": 50}')[0], ToSession)
    assert isinstance(c.receive(pack_frame(Kind.JPEG, 1, 0, JPEG))[0], FrameToSession)
    again = start(c, "watch", key=OP)
    assert isinstance(again[0], CloseSession) and isinstance(again[1], StartSession)


def test_resume_goes_through_the_same_schema(world):
    c = world.core()
    bad = {"version": 1, "session": "avatar", "options": {"size": 5000}}
    assert codes(c.receive(json.dumps({"type": "start", "session": "avatar", "resume": bad,
                                       "options": {"key": OP}}))) == ["bad_field"]
    good = {"version": 1, "session": "avatar", "options": {"size": 128, "alpha": False}}
    (s,) = c.receive(json.dumps({"type": "start", "session": "avatar", "resume": good, "options": {"key": OP}}))
    assert s.options == {"size": 128, "alpha": False} and s.state.options == {}  # validated, then re-applied
    fx = {"version": 1, "session": "effects", "effects": {"beauty": {"smooth": 0.5}}}
    c2 = world.core()
    (s,) = c2.receive(json.dumps({"type": "start", "session": "effects", "resume": fx, "options": {"key": OP}}))
    assert s.options["effects"] == {"beauty": {"smooth": 0.5}} and s.state.effects == {}


def test_brand_keys_open_media_and_employee_sessions(world):
    c = world.core()
    (s,) = start(c, key=world.key, brand="shop")
    assert s.access.brand == "shop" and not s.access.operator and "key" not in s.options
    c2 = world.core()
    (s,) = start(c2, "employee", key=world.key, brand="shop")
    assert s.options == {"brand": "shop", "key": world.key}
    opened = world.core(open_media=True)
    (s,) = start(opened)
    assert s.access.principal == ""  # counted against the address


def test_sessions_per_client_are_counted_and_released(world):
    counter = ClientCounter(2)
    a, b, c = (world.core(counter=counter) for _ in range(3))
    started(a, start(a, key=world.key, brand="shop"))
    started(b, start(b, key=world.key, brand="shop"))
    assert codes(start(c, key=world.key, brand="shop")) == ["too_many_sessions"]
    b.session_closed()
    assert isinstance(start(c, key=world.key, brand="shop")[0], StartSession)
    c.start_failed(ValueError("boom"))  # a failed start frees its slot too
    assert counter.counts == {"brand:shop": 1}
    for _ in range(5):  # the operator is limited by the connection limit only
        o = world.core(counter=counter)
        assert isinstance(start(o, key=OP)[0], StartSession)


def test_frame_and_byte_rates_drop_with_one_error_per_second(world):
    c = world.core(fps=5, bytes_per_s=10**9)
    started(c, start(c, key=OP))
    frame = pack_frame(Kind.JPEG, 0, 0, JPEG)
    results = [c.receive(frame) for _ in range(20)]
    passed = sum(isinstance(r[0], FrameToSession) for r in results if r)
    assert passed == 5 and sum(codes(r) == ["rate_limited"] for r in results) == 1
    world.clock.t += 1.0
    assert isinstance(c.receive(frame)[0], FrameToSession)
    b = world.core(fps=1000, bytes_per_s=1000)
    started(b, start(b, key=OP))
    assert codes(b.receive(pack_frame(Kind.JPEG, 0, 0, JPEG * 20))) == ["rate_limited"]
    world.clock.t += 2.0
    floods = [b.receive(json.dumps({"type": "ping", "t": 1})) for _ in range(200)]  # text counts as bytes
    assert sum(codes(r) == ["rate_limited"] for r in floods) == 1 and sum(bool(r) for r in floods) < 100


def test_idle_timeout_closes_and_input_resets_it(world):
    c = world.core(idle_timeout_s=10)
    world.clock.t += 9
    assert c.tick() == []
    c.receive('{"type": "ping"}')
    world.clock.t += 9
    assert c.tick() == []
    world.clock.t += 2
    actions = c.tick()
    assert codes(actions) == ["idle"] and isinstance(actions[-1], Close)
    watcher = world.core(idle_timeout_s=10)  # a session that only receives is not idle
    started(watcher, start(watcher, "watch", key=OP))
    world.clock.t += 100
    assert watcher.tick() == []
    watcher.session_closed()
    world.clock.t += 11
    assert codes(watcher.tick()) == ["idle"]


def test_unexpected_exceptions_say_nothing(world):
    c = world.core()
    start(c, key=OP)
    (err,) = c.start_failed(RuntimeError("/srv/secret/path exploded"))
    assert err.msg["code"] == "internal" and "secret" not in err.msg["message"]


def test_every_session_has_a_schema_with_valid_defaults():
    for kind, schema in SCHEMAS.items():
        for name, opt in schema.items():
            if opt.default is not None:
                assert validate_options(kind, {name: opt.default})[name] == opt.default or opt.type == "color"


def test_serving_modules_import_without_cycles():
    """Module-level imports inside facestage/serving form a DAG (app→http, engine→sessions circles broken);
    imports under TYPE_CHECKING or inside functions are not edges."""
    import ast
    from pathlib import Path

    import facestage.serving as pkg

    root = Path(pkg.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    edges.add(node.module.split(".")[0])
                else:
                    edges |= {a.name for a in node.names}
        graph[path.stem] = edges & {p.stem for p in root.glob("*.py")}
    assert {"app", "http", "engine", "base", "connection"} <= set(graph)
    done: set[str] = set()

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, " -> ".join((*stack, mod))
        if mod in done:
            return
        for dep in graph.get(mod, ()):
            visit(dep, (*stack, mod))
        done.add(mod)

    for mod in graph:
        visit(mod, ())
