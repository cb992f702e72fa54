"""The web apps in real Chromium (Debian package, driven by Playwright) against a real server, with a fake
webcam made from a real face photo. Screenshots go to $FACESTAGE_SHOTS (default /tmp/facestage-shots)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.serving import ServerThread

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]
SHOTS = Path(os.environ.get("FACESTAGE_SHOTS", "/tmp/facestage-shots"))

# Page-side helper: the last (sent input, received output) pair of the studio as base64, plus face boxes.
PAIR_JS = """() => {
  const p = window.fsStudio.lastPair; if (!p) return null;
  const b64 = (buf) => { const u = new Uint8Array(buf); let s = "";
    for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
    return btoa(s); };
  return { seq: p.seq, kind: p.kind, mode: p.mode, input: b64(p.input), output: b64(p.output), faces: p.faces };
}"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web")
    cam = testdata.write_video(tmp / "astronaut-cam.y4m", testdata.zoompan_clip(size=(640, 480), frames=45), fps=30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with ServerThread(db_path=tmp / "profiles.sqlite3") as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={cam}", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--autoplay-policy=no-user-gesture-required"])
        try:
            yield srv, browser, cam
        finally:
            browser.close()


@pytest.fixture(scope="module")
def studio(env):
    srv, browser, cam = env
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/studio.html")
    page.wait_for_function("window.fsStudio.framesShown > 3 && window.fsStudio.lastPair", timeout=90_000)
    yield page, errors
    page.close()


def decode(b64: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), flags)


def pair_after(page, seq_after: int, mode: str = "effects", timeout: float = 60_000) -> dict:
    page.wait_for_function(f"(() => {{ const p = window.fsStudio.lastPair; return p && p.seq > {seq_after} "
                           f"&& p.mode === '{mode}' && (p.faces || '{mode}' === 'avatar'); }})()", timeout=timeout)
    return page.evaluate(PAIR_JS)


def face_vs_background(pair: dict) -> tuple[float, float]:
    inp, out = decode(pair["input"]), decode(pair["output"])
    assert inp.shape == out.shape
    diff = np.abs(inp.astype(np.int16) - out.astype(np.int16)).mean(axis=2)
    x0, y0, x1, y1 = (int(v) for v in pair["faces"]["faces"][0]["bbox"])
    w, h = x1 - x0, y1 - y0
    mask = np.ones_like(diff, bool)
    mask[max(0, y0 - h):y1 + h, max(0, x0 - w):x1 + w] = False
    return float(diff[y0:y1, x0:x1].mean()), float(diff[mask].mean())


def test_studio_shows_processed_webcam_frames(studio, env):
    page, errors = studio
    label = page.evaluate("window.fsStudio.trackLabel")
    assert "astronaut-cam.y4m" in label  # the fake webcam plays our face video, not Chromium's test pattern
    pair = pair_after(page, 0)
    face, background = face_vs_background(pair)
    assert face > 2.5 and background < 2.0 and face > 2.5 * background, (face, background)
    page.wait_for_function("document.querySelector('#lat').textContent.endsWith(' ms')", timeout=30_000)
    assert page.locator("#fps").inner_text().endswith("fps")
    page.screenshot(path=str(SHOTS / "studio-effects.png"))
    assert not errors


def test_moving_a_slider_changes_the_output(studio):
    page, _ = studio
    page.click("[data-preset='none']")
    seq = page.evaluate("window.fsStudio.seq") + 2
    plain = face_vs_background(pair_after(page, seq))[0]
    page.eval_on_selector("[data-param='beauty.whiten']",
                          "e => { e.value = e.max; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.eval_on_selector("[data-param='beauty.smooth']",
                          "e => { e.value = e.max; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    seq = page.evaluate("window.fsStudio.seq") + 2
    styled = face_vs_background(pair_after(page, seq))[0]
    assert plain < 3.0 and styled > plain + 3.0, (plain, styled)
    assert page.is_checked("input[data-effect='beauty']")


def test_recording_a_clip(studio):
    page, _ = studio
    page.click("#rec")
    page.wait_for_timeout(1500)
    page.click("#rec")
    page.wait_for_function("window.fsStudio.clipBytes > 0", timeout=15_000)
    assert page.evaluate("window.fsStudio.clipBytes") > 2000
    assert page.locator("#download").is_visible()


def test_obs_output_page_shows_only_the_studio_output(studio, env):
    srv, browser, _ = env
    page, _ = studio
    out = browser.new_page(viewport={"width": 640, "height": 480})
    out.goto(srv.url + "/output.html?channel=main")
    out.wait_for_function("window.fsOutput.frames > 2", timeout=60_000)
    assert out.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert out.evaluate("document.querySelectorAll('button, input, header, nav').length") == 0
    out.close()


def test_avatar_mode_shows_the_avatar(studio, env):
    srv, browser, _ = env
    page, _ = studio
    page.click("#mode-avatar")
    page.select_option("#render", "server")  # this test is about server rendering; tests/test_web3d.py: the default
    pair = pair_after(page, 0, mode="avatar")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "studio-avatar.png"))
    assert pair["kind"] == 2  # WebP with alpha
    rgba = decode(pair["output"], cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4
    alpha = rgba[:, :, 3]
    assert (alpha == 0).mean() > 0.1 and (alpha == 255).mean() > 0.2  # a head on a transparent background
    # The avatar's skin tone where the face is: the built-in "ava" has light skin and a dark bob.
    centre = rgba[alpha.shape[0] // 2 - 20:alpha.shape[0] // 2 + 20, alpha.shape[1] // 2 - 20:alpha.shape[1] // 2 + 20]
    b, g, r = centre[:, :, 0].mean(), centre[:, :, 1].mean(), centre[:, :, 2].mean()
    assert r > g > b and r > 150, (r, g, b)
    # The OBS page gets the avatar with its transparency too.
    out = browser.new_page(viewport={"width": 480, "height": 480})
    out.goto(srv.url + "/output.html")
    out.wait_for_function("window.fsOutput.frames > 1", timeout=60_000)
    corner = out.evaluate("(() => { const c = document.querySelector('canvas');"
                          " return Array.from(c.getContext('2d').getImageData(1, 1, 1, 1).data); })()")
    assert corner[3] == 0
    out.screenshot(path=str(SHOTS / "output-avatar.png"), omit_background=True)
    out.close()
    page.click("#mode-effects")


def test_console_creates_a_brand_and_the_employee_answers_with_audio(env):
    srv, browser, _ = env
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/console.html")
    page.fill("#new-id", "harbor-bakery")
    page.fill("#new-company", "Harbor Bakery")
    page.fill("#new-name", "Robin")
    page.click("#create")
    page.wait_for_function("window.fsConsole.started", timeout=90_000)
    key = page.inner_text("#newkey-value")
    assert key.startswith("fs_")
    page.click("#faq-add")
    row = page.locator("#faq tr").last
    row.locator("textarea").nth(0).fill("Do you sell sourdough bread?")
    row.locator("textarea").nth(1).fill("Yes, our sourdough bread is baked fresh every morning at six.")
    page.fill("#f-persona", "Robin is the cheerful baker's assistant of Harbor Bakery and answers briefly.")
    page.click("#save")
    page.wait_for_function("document.querySelector('#save-status').textContent.startsWith('saved')", timeout=30_000)
    page.wait_for_function("window.fsConsole.started", timeout=60_000)
    page.fill("#question", "Do you sell sourdough bread?")
    page.click("#send")
    # the employee is drawn in the page (three-vrm on SwiftShader WebGL), not from server frames
    page.wait_for_function("window.fsConsole.replyEnded > 0 && window.fsAvatar3d && window.fsAvatar3d.ready "
                           "&& window.fsAvatar3d.framesRendered > 5", timeout=120_000)
    state = page.evaluate("({replies: fsConsole.replies, chunks: fsConsole.audioChunks, "
                          "seconds: fsConsole.audioSeconds, frames: fsAvatar3d.framesRendered, "
                          "serverFrames: fsConsole.framesShown, errors: fsConsole.errors})")
    assert state["serverFrames"] == 0  # weights and visemes only: no JPEG per frame
    assert any("sourdough" in r.lower() for r in state["replies"]), state["replies"]
    assert state["chunks"] >= 1 and state["seconds"] > 1.0
    assert not state["errors"] and not errors
    page.screenshot(path=str(SHOTS / "console.png"))
    # the profile really is stored, and only this brand's key opens it
    page.evaluate("localStorage.clear()")
    page.close()
    from urllib.request import Request, urlopen

    with urlopen(Request(srv.url + "/v1/brands/harbor-bakery", headers={"Authorization": f"Bearer {key}"})) as r:
        assert b"sourdough" in r.read()
