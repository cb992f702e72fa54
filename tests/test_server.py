"""Server: protocol units, then a real server on 127.0.0.1 driven by real WebSocket/HTTP clients."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
import websockets

from facestage import testdata
from facestage.client import Client, ServerError, decode_image
from facestage.serving import Kind, LatestSlot, ProtocolError, ServerThread, SessionState, pack_frame, parse_message
from facestage.serving.protocol import HEADER_SIZE, MAX_FRAME_BYTES, MAX_JSON_BYTES, unpack_frame
from facestage.serving.vmc import euler_to_quaternion, osc_bundle, osc_message, parse_osc_message, split_bundle
from facestage.tracking import ARKIT_NAMES


# ------------------------------------------------------------------------------------------------ pure parts
def test_frame_header_roundtrip_and_clear_errors():
    data = pack_frame(Kind.JPEG, 7, 1234.5, b"\xff\xd8\xffpayload", flags=1)
    f = unpack_frame(data)
    assert (f.kind, f.seq, f.timestamp, f.flags, f.payload) == (Kind.JPEG, 7, 1234.5, 1, b"\xff\xd8\xffpayload")
    assert len(data) == HEADER_SIZE + 10
    cases = {b"short": "bad_frame", b"\xff\xd8\xff" + b"\0" * 20: "bad_frame",  # raw JPEG without header
             struct.pack(">BBHId", 1, 99, 0, 0, 0.0): "unknown_kind",
             pack_frame(Kind.JPEG, 0, 0, b"x" * (MAX_FRAME_BYTES + 1)): "too_large"}
    for raw, code in cases.items():
        with pytest.raises(ProtocolError) as exc:
            unpack_frame(raw)
        assert exc.value.code == code and exc.value.message


def test_parse_message_names_the_problem():
    assert parse_message('{"type": "start", "session": "effects"}')["session"] == "effects"
    bad = {"{oops": "bad_json", "[1, 2]": "bad_message", '{"kind": 1}': "bad_message",
           '{"type": "launch"}': "unknown_type",
           '{"type": "start", "session": "effects", "sesion": 1}': "unknown_field",
           '{"type": "start"}': "missing_field", '{"type": "say", "text": 5}': "bad_field",
           '{"type": "config", "faces": "yes"}': "bad_field",
           json.dumps({"type": "ping", "pad": "x" * MAX_JSON_BYTES}): "too_large"}
    for text, code in bad.items():
        with pytest.raises(ProtocolError) as exc:
            parse_message(text)
        assert exc.value.code == code, text[:40]
    with pytest.raises(ProtocolError, match="sesion"):
        parse_message('{"type": "start", "session": "effects", "sesion": 1}')


def test_session_state_checkpoint_roundtrip():
    st = SessionState("effects", options={"quality": 70}, effects={"beauty": {"smooth": 0.5}}, frames_in=3)
    d = json.loads(json.dumps(st.to_dict()))  # JSON-able: can cross processes and replicas
    back = SessionState.from_dict(d)
    assert back == st and back.effects is not st.effects
    with pytest.raises(ProtocolError):
        SessionState.from_dict({**d, "version": 99})
    with pytest.raises(ProtocolError):
        SessionState.from_dict({**d, "extra": 1})


def test_latest_slot_keeps_only_the_newest():
    async def main():
        slot: LatestSlot[int] = LatestSlot()
        for i in range(100):
            slot.put(i)
        assert await slot.get() == 99 and slot.replaced == 99
        getter = asyncio.create_task(slot.get())
        await asyncio.sleep(0.01)
        slot.put(5)
        assert await getter == 5
        slot.close()
        assert await slot.get() is None

    asyncio.run(main())


def test_osc_encoding_matches_the_spec():
    msg = osc_message("/VMC/Ext/Blend/Val", "jawOpen", 0.5)
    # address, NUL-padded to 4 bytes; type tags ",sf"; string; big-endian float32
    assert msg == b"/VMC/Ext/Blend/Val\0\0,sf\0jawOpen\0" + struct.pack(">f", 0.5)
    assert len(msg) % 4 == 0
    assert parse_osc_message(msg) == ("/VMC/Ext/Blend/Val", ["jawOpen", 0.5])
    bundle = osc_bundle([msg, osc_message("/VMC/Ext/Blend/Apply")])
    assert bundle.startswith(b"#bundle\0") and [parse_osc_message(m)[0] for m in split_bundle(bundle)] == [
        "/VMC/Ext/Blend/Val", "/VMC/Ext/Blend/Apply"]
    x, y, z, w = euler_to_quaternion(0, 0, 0)
    assert (x, y, z, w) == pytest.approx((0, 0, 0, 1))
    assert np.linalg.norm(euler_to_quaternion(20, -10, 5)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ real server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("srv") / "profiles.sqlite3"
    with ServerThread(db_path=db) as srv:
        yield srv


def http(method: str, url: str, body: bytes | dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                         **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def jpeg(img: np.ndarray, q: int = 92) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()


def face_and_background_diff(inp: np.ndarray, out: np.ndarray, bbox) -> tuple[float, float]:
    """Mean abs difference inside the face box and outside a generous margin around it."""
    diff = np.abs(inp.astype(np.int16) - out.astype(np.int16)).mean(axis=2)
    x0, y0, x1, y1 = (int(v) for v in bbox)
    inside = diff[y0:y1, x0:x1].mean()
    mw, mh = (x1 - x0), (y1 - y0)
    mask = np.ones_like(diff, bool)
    mask[max(0, y0 - mh):y1 + mh, max(0, x0 - mw):x1 + mw] = False
    return float(inside), float(diff[mask].mean())


def test_healthz_pages_and_catalogs(server):
    status, headers, body = http("GET", server.url + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] and health["threads"] > 0 and health["rss_kb"] > 0
    for page in ("studio.html", "output.html", "console.html", "index.html", "fs.js", "fs.css"):
        status, headers, body = http("GET", f"{server.url}/{page}")
        assert status == 200 and len(body) > 500, page
        # offline: nothing loaded from elsewhere (no CDN scripts, fonts or styles)
        assert not re.search(r"""(src|href)=["']?(https?:)?//|from\s+["']https?:|url\(["']?https?:|@import""",
                             body.decode()), page
    assert http("GET", server.url + "/../etc/passwd")[0] == 404
    status, _, body = http("GET", server.url + "/v1/effects")
    cat = json.loads(body)
    assert "beauty" in cat["effects"] and "natural" in cat["presets"]
    assert any(a["name"] == "ava" for a in json.loads(http("GET", server.url + "/v1/avatars")[2])["avatars"])


def sent_image(img: np.ndarray) -> tuple[bytes, np.ndarray]:
    """JPEG bytes to send and the image the server decodes from them (compare outputs with this)."""
    data = jpeg(img, 95)
    return data, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_effects_session_changes_the_face_not_the_background(server):
    data, img = sent_image(testdata.astronaut())

    async def main():
        async with Client.connect(server.ws_url) as c:
            started = await c.start("effects", preset="natural", faces=True, quality=95)
            assert started["effects"]["beauty"]["smooth"] > 0
            for _ in range(3):  # let the tracker's smoothing settle
                out, faces = await c.process(data)
            return out, faces

    out, faces = asyncio.run(main())
    assert out.shape == img.shape and len(faces) == 1
    face_diff, bg_diff = face_and_background_diff(img, out, faces[0]["bbox"])
    assert face_diff > 3.0 and bg_diff < 1.5, (face_diff, bg_diff)
    assert face_diff > 4 * bg_diff
    assert set(faces[0]["blendshapes"]) == set(ARKIT_NAMES)


def test_live_config_change_changes_the_output(server):
    data, img = sent_image(testdata.grace_hopper())

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("effects", effects={}, faces=True, quality=95)
            plain, faces = await c.process(data)
            conf = await c.config(effects={"beauty": {"whiten": 1.0, "smooth": 1.0}})
            assert conf["effects"]["beauty"]["whiten"] == 1.0
            styled, _ = await c.process(data)
            return plain, styled, faces

    plain, styled, faces = asyncio.run(main())
    bbox = faces[0]["bbox"]
    before, _ = face_and_background_diff(img, plain, bbox)
    after, bg = face_and_background_diff(img, styled, bbox)
    assert before < 2.0 and after > 4.0 and bg < 1.5, (before, after, bg)


def test_max_faces_limits_the_faces_tracked_and_is_validated(server):
    # Two real faces side by side: the studio's max_faces 1 tracks one of them, the default (4) both.
    a = testdata.astronaut()
    b = cv2.resize(testdata.grace_hopper(), (a.shape[0] * 512 // 600, a.shape[0]))
    data, _ = sent_image(np.hstack([a, b]))

    async def main():
        counts = {}
        for mf in (None, 1):
            async with Client.connect(server.ws_url) as c:
                opts = {} if mf is None else {"max_faces": mf}
                await c.start("effects", preset="natural", faces=True, **opts)
                for _ in range(2):
                    _, faces = await c.process(data)
                counts[mf] = len(faces)
                state = await c.checkpoint()
                assert state["options"]["max_faces"] == (mf or 4)  # resumable: kept in the session state
        async with Client.connect(server.ws_url) as c:
            codes = []
            for bad in (0, 5, "1", True, 1.5):
                with pytest.raises(ServerError) as exc:
                    await c.start("effects", max_faces=bad)
                codes.append(exc.value.code)
            await c.start("effects", max_faces=2)  # the connection survived every refusal
        return counts, codes

    counts, codes = asyncio.run(main())
    assert counts == {None: 2, 1: 1}, counts
    assert codes == ["bad_field"] * 5


def test_bad_input_gets_an_error_and_the_connection_survives(server):
    good = jpeg(testdata.astronaut())

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.send_frame(good)  # before "start"
            codes = [(await c.recv())["code"]]
            await c.start("effects", effects={})
            bad = [b"\x00garbage", b"x" * 100, pack_frame(Kind.JPEG, 1, 0, b"not a jpeg at all"),
                   pack_frame(Kind.JPEG, 2, 0, good[:200]),  # truncated JPEG
                   pack_frame(Kind.PCM16, 3, 0, b"\0\0"), struct.pack(">BBHId", 1, 77, 0, 0, 0.0) + good,
                   pack_frame(Kind.JPEG, 4, 0, b"\xff\xd8\xff" + b"\0" * (5 * 2**20)),  # 5 MB
                   "not json", '{"type": "warp"}', '{"type": "config", "efects": {}}',
                   '{"type": "config", "effects": {"glitter": {}}}',
                   '{"type": "config", "effects": {"beauty": {"smooth": 7}}}',
                   json.dumps({"type": "ping", "t": 1, "x": "y" * 300_000}), '{"type": "say", "text": "hi"}',
                   '{"type": "start", "session": "teleport"}']
            for msg in bad:
                await c.ws.send(msg)
                reply = await c.recv()
                while reply.get("type") == "stats":
                    reply = await c.recv()
                assert reply["type"] == "error" and reply["message"], msg[:30]
                codes.append(reply["code"])
            assert await c.ping() < 5000
            out, _ = await c.process(good)  # still works after all that
            assert out.shape == (512, 512, 3)
            return codes

    codes = asyncio.run(main())
    assert codes == ["no_session", "bad_frame", "bad_frame", "bad_image", "bad_image", "unsupported", "unknown_kind",
                     "too_large", "bad_json", "unknown_type", "unknown_field", "bad_config", "bad_config",
                     "too_large", "unsupported", "unknown_session"]


def test_render_api_http_and_websocket(server):
    status, headers, body = http("POST", server.url + "/v1/render",
                                 {"avatar": "ava", "size": 160, "blendshapes": {"jawOpen": 0.7}, "yaw": 10})
    assert status == 200 and headers["Content-Type"] == "image/png"
    rgba = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (160, 160, 4)
    assert rgba[0, 0, 3] == 0 and rgba[80, 80, 3] == 255  # transparent around the head, opaque face
    status, headers, body = http("POST", server.url + "/v1/render", {"avatar": "ava", "size": 96, "format": "jpeg",
                                                                     "background": "#00ff00"})
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and img[2, 2, 1] > 200 and img[2, 2, 2] < 60
    for bad, word in [({"blendshapes": {"jawOpn": 1}}, "jawOpn"), ({"size": 99999}, "size"), ({"yaw": "left"}, "yaw"),
                      ({"avatar": "nobody"}, "nobody"), ({"colour": 1}, "colour")]:
        status, _, body = http("POST", server.url + "/v1/render", bad)
        assert status == 400 and word in json.loads(body)["message"], bad
    status, _, body = http("POST", server.url + "/v1/render", b"{not json")
    assert status == 400 and json.loads(body)["error"] == "bad_json"

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("render")
            open_mouth = await c.render(avatar="ava", size=128, format="webp", blendshapes={"jawOpen": 1.0})
            closed = await c.render(avatar="ava", size=128, format="webp")
            return open_mouth, closed

    a, b = asyncio.run(main())
    assert a.shape == (128, 128, 4) and np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_brand_keys_are_required_and_scoped(tmp_path):
    from facestage.serving.security import SecurityConfig

    op = "fso_server-test-operator-0000"
    with ServerThread(db_path=tmp_path / "p.sqlite3", security=SecurityConfig(operator_key=op,
                                                                              trust_local=False)) as srv:
        _brand_keys_are_required_and_scoped(srv, op)


def _brand_keys_are_required_and_scoped(server, op: str):
    def make(bid):
        prof = {"id": bid, "name": "Sam", "role": "helper", "company": bid.upper(), "persona": "Helpful."}
        assert http("POST", server.url + "/v1/brands", prof)[0] == 401  # creating brands is the operator's
        status, _, body = http("POST", server.url + "/v1/brands", prof, headers={"Authorization": f"Bearer {op}"})
        assert status == 201
        return json.loads(body)["key"]

    key_a, key_b = make("brand-a"), make("brand-b")
    dup = {"id": "brand-a", "name": "x", "role": "x", "company": "x", "persona": "x"}
    assert http("POST", server.url + "/v1/brands", dup, headers={"Authorization": f"Bearer {op}"})[0] == 409
    url = server.url + "/v1/brands/brand-a"
    status, _, body = http("GET", url, headers={"Authorization": f"Bearer {key_a}"})
    assert status == 200 and json.loads(body)["profile"]["company"] == "BRAND-A"
    assert "key" not in body.decode().lower().replace("keys", "")  # no key or hash in the profile
    assert http("GET", url)[0] == 401
    assert http("GET", url, headers={"Authorization": f"Bearer {key_b}"})[0] == 403  # B cannot see A
    assert http("GET", url, headers={"Authorization": "Bearer fs_wrong"})[0] == 403
    assert http("PUT", url, {"name": "Eve"}, headers={"Authorization": f"Bearer {key_b}"})[0] == 403
    status, _, body = http("PUT", url, {"name": "Alex"}, headers={"Authorization": f"Bearer {key_a}"})
    assert status == 200 and json.loads(body)["profile"]["name"] == "Alex"
    status, _, body = http("PUT", url, {"languages": "klingon"}, headers={"Authorization": f"Bearer {key_a}"})
    assert status == 400 and "languages" in json.loads(body)["message"]

    async def main():
        async with Client.connect(server.ws_url) as c:
            with pytest.raises(ServerError) as exc:
                await c.start("employee", brand="brand-a", key=key_b, frames=False)
            assert exc.value.code == "forbidden"  # a key, but not this brand's
            with pytest.raises(ServerError):
                await c.start("employee", brand="brand-a", key="", frames=False)
            started = await c.start("employee", brand="brand-a", key=key_a, frames=False)
            assert started["name"] == "Alex"

    asyncio.run(main())


def test_origin_check_for_browsers(server):
    async def main():
        with pytest.raises(websockets.InvalidStatus) as exc:
            async with websockets.connect(server.ws_url, origin="http://evil.example"):
                pass
        assert exc.value.response.status_code == 403
        async with websockets.connect(server.ws_url, origin=server.url) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"

    asyncio.run(main())
    status, _, body = http("POST", server.url + "/v1/brands", {"id": "x"}, headers={"Origin": "http://evil.example"})
    assert status == 403


def test_avatar_weights_only_stream_and_vmc_output(server):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    port = udp.getsockname()[1]

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("avatar", pixels=False, weights="binary", vmc={"host": "127.0.0.1", "port": port})
            await c.send({"type": "tracking", "blendshapes": {"jawOpen": 0.8, "eyeBlinkLeft": 0.4},
                          "pose": {"yaw": 12.0, "pitch": -5.0, "roll": 0.0}, "t": 0.5})
            frame = await c.recv()
            await c.config(weights="json")
            await c.send({"type": "tracking", "blendshapes": {"mouthSmileLeft": 0.6}})
            js = await c.expect("weights")
            return frame, js

    try:
        frame, js = asyncio.run(main())
        datagram = udp.recv(65536)
    finally:
        udp.close()
    assert frame.kind == Kind.WEIGHTS and frame.timestamp == 500.0
    vec = np.frombuffer(frame.payload, "<f2")
    assert len(frame.payload) == 110 and len(vec) == 55  # no pixels: ~0.1 KB per frame
    assert vec[ARKIT_NAMES.index("jawOpen")] == pytest.approx(0.8, abs=1e-3)
    assert vec[-3] == pytest.approx(12.0, abs=0.05)
    assert js["blendshapes"]["mouthSmileLeft"] == pytest.approx(0.6, abs=1e-3)
    msgs = [parse_osc_message(m) for m in split_bundle(datagram)]
    addresses = [a for a, _ in msgs]
    assert addresses[-1] == "/VMC/Ext/Blend/Apply" and "/VMC/Ext/Bone/Pos" in addresses
    vals = {args[0]: args[1] for a, args in msgs if a == "/VMC/Ext/Blend/Val"}
    assert vals["jawOpen"] == pytest.approx(0.8, abs=1e-3) and len(vals) == 52


def test_avatar_session_from_camera_frames_with_alpha(server):
    img = testdata.astronaut()

    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("avatar", avatar="ava", size=192, alpha=True)
            seq = await c.send_frame(img)
            frame, _ = await c.next_frame(seq)
            state = await c.checkpoint()
            return frame, state

    frame, state = asyncio.run(main())
    assert frame.kind == Kind.WEBP and frame.flags & 1
    rgba = decode_image(frame)
    assert rgba.shape == (192, 192, 4) and rgba[0, 0, 3] == 0 and rgba[96, 96, 3] == 255
    assert state["session"] == "avatar" and state["frames_out"] == 1 and state["options"]["avatar"] == "ava"


def test_checkpoint_and_resume_on_a_new_connection(server):
    async def main():
        async with Client.connect(server.ws_url) as c:
            await c.start("effects", effects={"beauty": {"smooth": 0.3}}, quality=70)
            state = await c.checkpoint()
        async with Client.connect(server.ws_url) as c2:  # e.g. another replica after a failover
            started = await c2.start("effects", resume=state)
            again = await c2.checkpoint()
            return state, started, again

    state, started, again = asyncio.run(main())
    assert started["effects"]["beauty"]["smooth"] == 0.3 and started["session_id"] == state["session_id"]
    assert again["options"]["quality"] == 70


def test_watchers_receive_the_published_channel(server):
    img = jpeg(testdata.astronaut())

    small = socket.socket()
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # tiny kernel buffer: it fills at once
    small.connect(("127.0.0.1", server.port))

    async def main():
        async with Client.connect(server.ws_url) as watcher, Client.connect(server.ws_url) as studio, \
                websockets.connect(server.ws_url, sock=small, max_queue=1, close_timeout=0.5) as stalled:
            await stalled.recv()
            await stalled.send(json.dumps({"type": "start", "session": "watch", "options": {"channel": "test-ch"}}))
            await stalled.recv()  # ... and never reads again
            await watcher.start("watch", channel="test-ch")
            await studio.start("effects", effects={}, channel="test-ch", quality=100)
            t0 = time.perf_counter()
            for _ in range(40):  # ~4 MB: far more than the stalled watcher's socket buffers hold
                seq = await studio.send_frame(img)
                await studio.next_frame(seq)
            elapsed = time.perf_counter() - t0
            frame, _ = await watcher.next_frame(seq, timeout=30)
            health = json.loads(http("GET", server.url + "/healthz")[2])
            return frame, elapsed, health

    frame, elapsed, health = asyncio.run(main())
    assert frame.kind == Kind.JPEG and decode_image(frame).shape == (512, 512, 3)
    assert health["frames_dropped"] > 0  # the stalled watcher lost frames; the studio did not wait for it
    print(f"40 frames published with a stalled watcher in {elapsed:.1f} s")


def test_employee_answers_with_time_aligned_audio_visemes_and_frames(server):
    async def main():
        async with Client.connect(server.ws_url) as c:
            status, _, body = http("GET", server.url + "/v1/demo")
            demo = json.loads(body)
            await c.start("employee", brand=demo["brand"], key=demo["key"], size=128, fps=20)
            t0 = time.perf_counter()
            reply = await c.say("Do you deliver to Easton?")
            state = await c.checkpoint()
            return reply, time.perf_counter() - t0, state

    reply, elapsed, state = asyncio.run(main())
    assert "deliver" in reply.text.lower() or "easton" in reply.text.lower()
    assert reply.sample_rate > 8000 and reply.duration_s > 1.0
    assert np.abs(reply.pcm.astype(float)).max() > 1000  # real speech, not silence
    assert reply.visemes and reply.visemes[-1][1] <= reply.duration_s + 0.05
    assert {v for _, _, v in reply.visemes} - {"sil"}
    ts = [f.timestamp / 1000 for f in reply.frames]
    assert abs(len(ts) - reply.duration_s * 20) <= 3 * len(reply.sentences)  # one frame per 50 ms of audio
    assert all(b >= a for a, b in zip(ts, ts[1:], strict=False)) and ts[0] >= 0 and ts[-1] <= reply.duration_s
    assert state["dialogue"]["turns"][0]["content"] == "Do you deliver to Easton?"


def test_employee_hears_a_spoken_question(server):
    from facestage.speech import TTSClient

    with TTSClient() as tts:
        question = tts.synthesize_all("What are your opening hours?")

    async def main():
        demo = json.loads(http("GET", server.url + "/v1/demo")[2])
        async with Client.connect(server.ws_url) as c:
            await c.start("employee", brand=demo["brand"], key=demo["key"], frames=False)
            await c.ws.send(pack_frame(Kind.PCM16, 0, 0, b"\0\0"))  # audio without "listen" first
            assert (await c.recv())["code"] == "unsupported"
            return await c.listen(question.audio, question.sample_rate)

    heard, reply = asyncio.run(main())
    assert "opening hours" in heard.lower()
    assert "8 am" in reply.text.lower() and reply.duration_s > 1.0


def test_brand_avatar_upload(server, tmp_path):
    prof = {"id": "brand-up", "name": "Grace", "role": "guide", "company": "Upload Co", "persona": "Kind."}
    key = json.loads(http("POST", server.url + "/v1/brands", prof)[2])["key"]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}
    url = server.url + "/v1/brands/brand-up/avatar?filename="
    status, _, body = http("POST", url + "fake.glb", b"this is not a model", headers=auth)
    assert status == 400 and "glTF" in json.loads(body)["message"]
    status, _, body = http("POST", url + "notes.txt", b"hello", headers=auth)
    assert status == 400 and ".glb" in json.loads(body)["message"]
    photo = testdata.grace_hopper_path().read_bytes()
    assert http("POST", url + "me.jpg", photo, headers={**auth, "Authorization": "Bearer fs_nope"})[0] == 403
    status, _, body = http("POST", url + "me.jpg", photo, headers=auth)
    assert status == 200, body
    assert json.loads(body)["profile"]["avatar"] == "upload:photo.jpg"

    async def main():
        async with Client.connect(server.ws_url) as c:
            started = await c.start("employee", brand="brand-up", key=key, size=96, fps=10)
            await c.send({"type": "greet"})
            while True:
                msg = await c.recv()
                if not isinstance(msg, dict) and msg.kind in (Kind.JPEG, Kind.WEBP):
                    return started, decode_image(msg)

    started, frame = asyncio.run(main())
    assert started["name"] == "Grace" and frame.shape[:2] == (96, 96)

    # A GLB with ARKit morph targets (a built-in avatar exported by our own exporter) works the same way.
    from facestage.avatar import load_avatar
    from facestage.avatar.gltf_io import export_glb

    glb = export_glb(load_avatar("kai"), tmp_path / "kai.glb").read_bytes()
    status, _, body = http("POST", url + "kai.glb", glb, headers=auth)
    assert status == 200 and json.loads(body)["avatar"] == "upload:model.glb"


def test_raw_http_edge_cases_get_clear_answers(server):
    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(request)
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)

    chunked = raw(b"POST /v1/render HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411") and b"Content-Length" in chunked
    huge = raw(b"POST /v1/brands/x/avatar HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 413")
    extra = raw(b"POST /v1/render HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}{}")
    assert extra.startswith(b"HTTP/1.1 400")
    bad = raw(b"BREW\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400")
    unknown = raw(b"PATCH /v1/render HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert unknown.startswith(b"HTTP/1.1 404") or unknown.startswith(b"HTTP/1.1 405")
    assert http("GET", server.url + "/healthz")[0] == 200  # and the server is fine


def test_connection_limit_answers_busy(tmp_path):
    with ServerThread(db_path=tmp_path / "p.sqlite3", demo=False, max_connections=2) as srv:
        async def main():
            async with websockets.connect(srv.ws_url) as a, websockets.connect(srv.ws_url) as b:
                await a.recv()
                await b.recv()
                with pytest.raises(websockets.InvalidStatus) as exc:
                    async with websockets.connect(srv.ws_url):
                        pass
                assert exc.value.response.status_code == 503
            async with websockets.connect(srv.ws_url) as c:  # a freed slot is usable again
                assert json.loads(await c.recv())["type"] == "hello"

        asyncio.run(main())
