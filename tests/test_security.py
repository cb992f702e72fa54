"""Every attack from issue 13 against a real server on 127.0.0.1 configured like a network deployment
(no local trust, media sessions need a key): each one now fails safely with a message that leaks nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
import websockets

from facestage import testdata
from facestage.client import Client, ServerError
from facestage.dialogue.outbound import OutboundPolicy, system_resolver
from facestage.serving import ServerThread
from facestage.serving.security import Limits, SecurityConfig

OP = "fso_test-operator-key-0123456789"
PROFILE = {"name": "Sam", "role": "helper", "company": "Co", "persona": "Helpful."}


def http(method: str, url: str, body: bytes | dict | None = None, key: str | None = None,
         headers: dict | None = None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def resolver(host: str, port: int) -> list[str]:
    """DNS for the tests without the network: one public name (never connected to), the rest local
    (localhost from /etc/hosts, numeric forms like 2130706433 parsed by getaddrinfo itself)."""
    if host == "api.example.com":
        return ["93.184.216.34"]
    return system_resolver(host, port) if host == "localhost" or host.isdigit() else []


def net_security(**limits: float) -> SecurityConfig:
    return SecurityConfig(operator_key=OP, trust_local=False, open_media=False, limits=Limits(**limits),
                          outbound=OutboundPolicy(("public",), resolver))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A server that treats this machine like any network client."""
    with ServerThread(db_path=tmp_path_factory.mktemp("net") / "p.sqlite3", security=net_security()) as srv:
        yield srv


@pytest.fixture(scope="module")
def brands(net):
    keys = {}
    for bid in ("brand-a", "brand-b"):
        status, body = http("POST", net.url + "/v1/brands", {"id": bid, **PROFILE}, key=OP)
        assert status == 201, body
        keys[bid] = json.loads(body)["key"]
    return keys


# ------------------------------------------------------------------------------------- operator vs brand
def test_only_the_operator_creates_lists_and_deletes_brands(net, brands):
    assert http("POST", net.url + "/v1/brands", {"id": "intruder", **PROFILE})[0] == 401
    assert http("POST", net.url + "/v1/brands", {"id": "intruder", **PROFILE}, key=brands["brand-a"])[0] == 403
    assert http("POST", net.url + "/v1/brands", {"id": "intruder", **PROFILE}, key="fso_guess")[0] == 403
    assert http("GET", net.url + "/v1/brands", key=brands["brand-a"])[0] == 403
    status, body = http("GET", net.url + "/v1/brands", key=OP)
    assert status == 200 and {"brand-a", "brand-b"} <= set(json.loads(body)["brands"])
    assert http("POST", net.url + "/v1/brands", {"id": "doomed", **PROFILE}, key=OP)[0] == 201
    assert http("DELETE", net.url + "/v1/brands/doomed", key=brands["brand-a"])[0] == 403
    assert http("DELETE", net.url + "/v1/brands/doomed", key=OP)[0] == 200
    assert http("GET", net.url + "/v1/brands/doomed", key=OP)[0] == 404
    status, body = http("GET", net.url + "/v1/demo")  # the demo key is for local trust only
    assert status == 403 and "fs_" not in body.decode()


def test_a_brand_sees_and_changes_only_its_own_profile(net, brands):
    a, b = net.url + "/v1/brands/brand-a", net.url + "/v1/brands/brand-b"
    assert http("GET", a)[0] == 401
    assert http("GET", a, key=brands["brand-b"])[0] == 403
    assert http("PUT", a, {"name": "Eve"}, key=brands["brand-b"])[0] == 403
    assert http("POST", a + "/key", key=brands["brand-b"])[0] == 403
    # a wrong key and a missing brand get the same answer: no probing which brands exist
    s1, m1 = http("GET", a, key="fs_wrong")
    s2, m2 = http("GET", net.url + "/v1/brands/no-such", key="fs_wrong")
    assert s1 == s2 == 403 and m1.replace(b"brand-a", b"X") == m2.replace(b"no-such", b"X")
    assert http("GET", b, key=brands["brand-b"])[0] == 200
    assert http("GET", a, key=OP)[0] == 200  # the operator acts for any brand


# ----------------------------------------------------------------------------------------------- secrets
def test_provider_keys_are_write_only_and_encrypted_at_rest(net, brands):
    url, key = net.url + "/v1/brands/brand-a", brands["brand-a"]
    llm = {"base_url": "https://api.example.com/v1", "model": "m", "api_key": "sk-SECRET-123"}
    status, body = http("PUT", url, {"llm": llm}, key=key)
    assert status == 200 and b"sk-SECRET" not in body and json.loads(body)["profile"]["llm"]["api_key_set"] is True
    status, body = http("GET", url, key=key)
    assert b"sk-SECRET" not in body and json.loads(body)["profile"]["llm"]["api_key_set"] is True
    store = net.app.engine.store
    assert "sk-SECRET" not in store.export_json("brand-a")
    assert store.get("brand-a").llm.api_key == "sk-SECRET-123"  # the server itself can still use it
    raw = b"".join(bytes(str(r), "utf8") for r in sqlite3.connect(store.path).execute("SELECT * FROM profiles"))
    assert b"sk-SECRET" not in raw and b"sk-SECRET" not in Path(store.path).read_bytes()
    # an update that leaves the key out keeps it (the client never saw it); a new one replaces; null clears
    http("PUT", url, {"llm": {"base_url": "https://api.example.com/v1", "model": "m2"}}, key=key)
    assert store.get("brand-a").llm.api_key == "sk-SECRET-123" and store.get("brand-a").llm.model == "m2"
    http("PUT", url, {"llm": {**llm, "api_key": "sk-NEW"}}, key=key)
    assert store.get("brand-a").llm.api_key == "sk-NEW"
    status, body = http("PUT", url, {"llm": {**llm, "api_key": None}}, key=key)
    assert status == 200 and json.loads(body)["profile"]["llm"]["api_key_set"] is False
    assert store.get("brand-a").llm.api_key is None


# ------------------------------------------------------------------------------------------------ outbound
@pytest.mark.parametrize("base_url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.5:8080/v1",
                                      "http://127.0.0.1:11434/v1", "http://localhost:8080", "http://[::1]:80/v1",
                                      "http://[::ffff:127.0.0.1]/v1", "http://2130706433/v1", "http://192.168.1.1",
                                      "http://user:pw@api.example.com/v1"])
def test_internal_llm_urls_are_refused(net, brands, base_url):
    status, body = http("PUT", net.url + "/v1/brands/brand-b", {"llm": {"base_url": base_url, "model": "m"}},
                        key=brands["brand-b"])
    assert status == 403 and json.loads(body)["error"] == "outbound_refused", body
    status, body = http("POST", net.url + "/v1/brands", {"id": "ssrf", **PROFILE, "llm": {"base_url": base_url,
                                                                                          "model": "m"}}, key=OP)
    assert status == 403 and not net.app.engine.store.exists("ssrf")


def test_vmc_targets_are_loopback_or_allow_listed(net, brands):
    async def main():
        async with Client.connect(net.ws_url) as c:
            for host in ("10.0.0.1", "169.254.169.254", "192.168.0.10", "8.8.8.8"):
                with pytest.raises(ServerError) as exc:
                    await c.start("avatar", key=brands["brand-a"], brand="brand-a", pixels=False,
                                  vmc={"host": host, "port": 39539})
                assert exc.value.code == "bad_config" and "not allowed" in str(exc.value)
            ok = await c.start("avatar", key=brands["brand-a"], brand="brand-a", pixels=False,
                               vmc={"host": "127.0.0.1", "port": 39539})
            assert ok["options"]["vmc"]["host"] == "127.0.0.1"

    asyncio.run(main())


# ---------------------------------------------------------------------------------------- assets by name
def test_avatars_and_effect_images_are_names_never_paths(net, brands, tmp_path):
    secret = tmp_path / "secret.jpg"
    cv2.imwrite(str(secret), testdata.astronaut())
    messages = set()
    for avatar in (f"photo:{secret}", f"photo:{tmp_path}/missing.jpg", str(tmp_path / "x.glb"),
                   "upload:../../p.sqlite3", "photo:../../../etc/hostname"):
        status, body = http("POST", net.url + "/v1/render", {"avatar": avatar, "size": 64}, key=OP)
        msg = json.loads(body)["message"]
        assert status == 400 and str(tmp_path) not in msg and "etc" not in msg
        messages.add(msg)
    assert len(messages) == 1  # an existing file and a missing one look the same
    # a profile cannot point its avatar at a path either
    status, body = http("PUT", net.url + "/v1/brands/brand-b", {"avatar": f"photo:{secret}"}, key=brands["brand-b"])
    assert status == 400 and str(tmp_path) not in body.decode()

    async def main():
        async with Client.connect(net.ws_url) as c:
            seen = set()
            for image in (str(secret), str(tmp_path / "missing.png"), "/etc/passwd", "../secret.jpg", "nope"):
                with pytest.raises(ServerError) as exc:
                    await c.start("effects", key=OP, effects={"background": {"mode": "replace", "image": image}})
                assert exc.value.code == "bad_config" and str(tmp_path) not in str(exc.value)
                seen.add(str(exc.value).replace("'nope'", "this value"))
            assert len(seen) == 1
            ok = await c.start("effects", key=OP, effects={"sticker": {"image": "glasses"},
                                                           "background": {"mode": "replace", "image": "astronaut"}})
            assert ok["effects"]["sticker"]["image"] == "glasses"  # the state keeps the name, not a path

    asyncio.run(main())


def test_a_brand_cannot_use_another_brands_upload(net, brands):
    photo = testdata.grace_hopper_path().read_bytes()
    status, _ = http("POST", net.url + "/v1/brands/brand-b/avatar?filename=me.jpg", photo, key=brands["brand-b"],
                     headers={"Content-Type": "application/octet-stream"})
    assert status == 200

    async def main():
        async with Client.connect(net.ws_url) as c:
            with pytest.raises(ServerError) as exc:  # brand A names B's upload: it resolves under A's folder only
                await c.start("avatar", key=brands["brand-a"], brand="brand-a", avatar="upload:photo.jpg", size=64)
            assert "upload" in str(exc.value) and "brand-b" not in str(exc.value)
            started = await c.start("avatar", key=brands["brand-b"], brand="brand-b", avatar="upload:photo.jpg",
                                    size=64)
            assert started["options"]["avatar"] == "upload:photo.jpg"
        status, body = http("POST", net.url + "/v1/render", {"avatar": "upload:photo.jpg"}, key=OP)
        assert status == 400  # the render API has no brand: no uploads at all

    asyncio.run(main())


def test_watchers_see_only_their_own_credentials_channels(net, brands):
    async def main():
        async with Client.connect(net.ws_url) as pub, Client.connect(net.ws_url) as spy, \
                Client.connect(net.ws_url) as friend:
            await pub.start("avatar", key=brands["brand-a"], brand="brand-a", channel="main", size=64)
            await spy.start("watch", key=brands["brand-b"], brand="brand-b", channel="main")
            await friend.start("watch", key=brands["brand-a"], brand="brand-a", channel="main")
            await pub.send({"type": "tracking", "blendshapes": {"jawOpen": 0.5}})
            while isinstance(await friend.recv(), dict):  # the same brand's watcher gets the frame
                pass
            with pytest.raises(TimeoutError):
                while True:  # brand B's "main" is not brand A's "main"
                    msg = await spy.recv(timeout=1.0)
                    assert isinstance(msg, dict), "a frame leaked to another brand"

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------- resume
def test_resume_is_validated_like_start(net):
    async def main():
        async with Client.connect(net.ws_url) as c:
            await c.start("avatar", key=OP, pixels=False)
            state = await c.checkpoint()
            for change, field in ((("options", "size"), 5000), (("options", "vmc"), {"host": "10.0.0.1"}),
                                  (("options", "avatar"), "photo:/etc/hostname"),
                                  (("calibration",), {"blendshapes": {"jawOpen": 9}, "pose": [0, 0, 0]})):
                bad = json.loads(json.dumps(state))
                target = bad
                for k in change[:-1]:
                    target = target[k]
                target[change[-1]] = field
                with pytest.raises(ServerError) as exc:
                    await c.start("avatar", resume=bad, key=OP)
                assert exc.value.code in ("bad_field", "bad_state", "bad_config"), (change, exc.value)
            fx = {"version": 1, "session": "effects", "effects": {"background": {"mode": "replace",
                                                                                 "image": "/etc/passwd"}}}
            with pytest.raises(ServerError) as exc:
                await c.start("effects", resume=fx, key=OP)
            assert exc.value.code == "bad_config" and "passwd" not in str(exc.value)

    asyncio.run(main())


# -------------------------------------------------------------------------------------------------- limits
def test_media_sessions_need_a_key_off_loopback(net, brands):
    async def main():
        async with Client.connect(net.ws_url) as c:
            for kind in ("effects", "avatar", "render", "watch"):
                with pytest.raises(ServerError) as exc:
                    await c.start(kind)
                assert exc.value.code == "unauthorized"
            with pytest.raises(ServerError) as exc:
                await c.start("effects", key="fs_wrong", brand="brand-a")
            assert exc.value.code == "forbidden"
            assert (await c.start("effects", key=brands["brand-a"], brand="brand-a"))["session"] == "effects"

    asyncio.run(main())


def test_rate_session_and_idle_limits(tmp_path):
    from facestage.serving.protocol import Kind, pack_frame

    sec = net_security(fps=5, sessions_per_client=2, idle_timeout_s=1.5)
    with ServerThread(db_path=tmp_path / "p.sqlite3", security=sec) as srv:
        key = json.loads(http("POST", srv.url + "/v1/brands", {"id": "lim", **PROFILE}, key=OP)[1])["key"]
        jpeg = cv2.imencode(".jpg", cv2.resize(testdata.astronaut(), (64, 64)))[1].tobytes()

        async def main():
            async with Client.connect(srv.ws_url) as a, Client.connect(srv.ws_url) as b, \
                    Client.connect(srv.ws_url) as c:
                await a.start("effects", key=key, brand="lim")
                await b.start("effects", key=key, brand="lim")
                with pytest.raises(ServerError) as exc:
                    await c.start("effects", key=key, brand="lim")
                assert exc.value.code == "too_many_sessions"
                for i in range(30):
                    await a.ws.send(pack_frame(Kind.JPEG, i, 0.0, jpeg))
                with pytest.raises(ServerError) as exc:
                    await a.expect("never")
                assert exc.value.code == "rate_limited"
                await a.send({"type": "ping"})
                assert (await a.expect("pong"))["type"] == "pong"  # the connection stays usable
                await b.ws.close()
                await asyncio.sleep(0.2)
                assert (await c.start("effects", key=key, brand="lim"))["session"] == "effects"  # a freed slot
            async with websockets.connect(srv.ws_url) as idle:
                await idle.recv()
                await asyncio.sleep(2.5)
                msgs = [json.loads(m) async for m in idle]
                assert msgs[-1]["code"] == "idle" and idle.close_code == 1000

        asyncio.run(main())


def test_local_trust_is_not_fooled_by_rebinding_or_proxies(tmp_path):
    with ServerThread(db_path=tmp_path / "p.sqlite3") as srv:  # the out-of-the-box local demo
        assert http("GET", srv.url + "/v1/demo")[0] == 200
        assert http("POST", srv.url + "/v1/brands", {"id": "local", **PROFILE})[0] == 201
        for headers in ({"Host": "evil.example:80"}, {"X-Forwarded-For": "203.0.113.9"},
                        {"Origin": "http://evil.example"}):
            status, body = http("GET", srv.url + "/v1/demo", headers=headers)
            assert status == 403 and b"fs_" not in body, headers
            assert http("POST", srv.url + "/v1/brands", {"id": "remote", **PROFILE}, headers=headers)[0] in (401, 403)


def test_operator_key_is_generated_once_and_kept_in_a_private_file(tmp_path):
    with ServerThread(db_path=tmp_path / "p.sqlite3") as srv:
        first = srv.app.new_operator_key
    key_file = tmp_path / "operator.key"
    assert first and key_file.read_text().strip() == first and key_file.stat().st_mode & 0o077 == 0
    with ServerThread(db_path=tmp_path / "p.sqlite3", security=SecurityConfig(trust_local=False)) as srv:
        assert srv.app.new_operator_key is None  # not printed again
        assert http("GET", srv.url + "/v1/brands", key=first)[0] == 200


def test_outbound_policy_checks_resolved_addresses_and_pins_them():
    calls: list[str] = []

    def resolver(answers):
        def resolve(host: str, port: int) -> list[str]:
            calls.append(host)
            return answers
        return resolve

    policy = OutboundPolicy(("public",), resolver(["93.184.216.34", "127.0.0.1"]))
    with pytest.raises(Exception, match="not allowed"):  # a mixed answer hides rebinding: refused
        policy.check_url("https://api.example.com/v1")
    calls.clear()
    for literal in ("169.254.169.254", "[fd00:ec2::254]", "100.100.100.200", "0.0.0.0", "[::]", "224.0.0.1"):
        with pytest.raises(Exception, match="not allowed"):
            policy.check_url(f"http://{literal}/")
    assert calls == []  # literal addresses are refused before any lookup or connection
    good = OutboundPolicy(("api.example.com",), resolver(["93.184.216.34"]))
    assert good.check_url("https://api.example.com/v1").address == "93.184.216.34"
    with pytest.raises(Exception, match="not allowed"):
        good.check_url("https://other.example.org/v1")
    assert OutboundPolicy(("loopback",)).check_url("http://127.0.0.1:1/").address == "127.0.0.1"


def test_llm_connection_goes_to_the_checked_address(tmp_path):
    """A resolver answers 127.0.0.1 for llm.test (a name the system cannot resolve): the request reaches the
    local server only because the connection is pinned to the checked address, with the URL's Host."""
    from facestage.dialogue.llm import LLMError, OpenAIChatBackend

    seen: list[str] = []
    srv = _sse_server(seen, "hi")
    port = srv.server_port
    try:
        allow = OutboundPolicy(("127.0.0.1/32",), lambda h, p: ["127.0.0.1"] if h == "llm.test" else [])
        backend = OpenAIChatBackend(f"http://llm.test:{port}/v1", "m", policy=allow)
        assert backend.chat([{"role": "user", "content": "x"}]) == "hi"
        assert seen == [f"llm.test:{port}"]
        deny = OutboundPolicy(("public",), lambda h, p: ["127.0.0.1"])
        with pytest.raises(LLMError, match="not allowed"):
            OpenAIChatBackend(f"http://llm.test:{port}/v1", "m", policy=deny).chat([])
        assert len(seen) == 1  # refused before connecting
    finally:
        srv.shutdown()
        srv.server_close()


def test_render_api_needs_a_key_off_loopback(net, brands):
    assert http("POST", net.url + "/v1/render", {"avatar": "ava", "size": 32})[0] == 401
    assert http("POST", net.url + "/v1/render?brand=brand-a", {"avatar": "ava", "size": 32}, key="fs_x")[0] == 403
    status, body = http("POST", net.url + "/v1/render?brand=brand-a", {"avatar": "ava", "size": 32},
                        key=brands["brand-a"])
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"


def _sse_server(seen: list[str], reply: str = "We close at eight in the evening."):
    """A tiny OpenAI-style streaming endpoint on 127.0.0.1 that records the Host of every request."""
    import http.server
    import threading

    class SSE(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            event = json.dumps({"choices": [{"delta": {"content": reply}, "finish_reason": "stop"}]})
            body = f"data: {event}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SSE)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.mark.parametrize("allow, reaches_llm", [(("public",), False), (("public", "loopback"), True)])
def test_the_employee_connects_only_where_the_operator_allows(tmp_path, allow, reaches_llm):
    """The outbound policy holds at connection time too: a brand whose stored LLM URL is internal (saved
    before the operator tightened the policy) falls back to its FAQ and the URL never sees a request; an
    operator who allows loopback (a local llama.cpp) gets the LLM's answer."""
    from facestage.dialogue.store import demo_profile_dict

    seen: list[str] = []
    llm = _sse_server(seen)
    sec = SecurityConfig(operator_key=OP, trust_local=False, outbound=OutboundPolicy(allow))
    try:
        with ServerThread(db_path=tmp_path / "p.sqlite3", demo=False, security=sec) as srv:
            prof = {**demo_profile_dict(), "id": "dairy"}
            key = json.loads(http("POST", srv.url + "/v1/brands", prof, key=OP)[1])["key"]
            srv.app.engine.store.update("dairy", {"llm": {"base_url": f"http://127.0.0.1:{llm.server_port}/v1",
                                                          "model": "m"}})

            async def main():
                async with Client.connect(srv.ws_url) as c:
                    await c.start("employee", brand="dairy", key=key, frames=False)
                    return await c.say("When do your shops close?")

            reply = asyncio.run(main())
    finally:
        llm.shutdown()
        llm.server_close()
    if reaches_llm:
        assert seen == [f"127.0.0.1:{llm.server_port}"] and "eight in the evening" in reply.text
    else:
        assert seen == [] and "8 am to 8 pm" in reply.text  # the FAQ answer, no request sent
