"""``facestage bench browser``: the studio's avatar mode in real Chromium, rendered in the browser (weights
stream, three-vrm) vs on the server (an image per frame), in one run on the same machine.

Per mode, after a warm-up, over ``MEASURE_S`` seconds of the fake webcam playing a real talking face:

* ``updates_fps``: new avatar poses shown per second (weights packets drawn, or server frames drawn);
* ``render_fps``: frames the browser drew (client mode: WebGL frames; it skips frames when nothing moves);
* ``latency_ms``: send → drawn on screen (the camera frame's timestamp is taken right after JPEG encoding,
  a few ms after capture), from the page's own timestamps;
* ``down_bytes_per_frame``: bytes received per update (payload + the 16-byte frame header).

Chromium here renders WebGL with SwiftShader on the CPU, which the server's tracking shares: on a machine with
a GPU the client mode's render cost leaves the CPU. Needs Debian ``chromium`` and ``npm ci`` (three.js).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .stats import summary

CHROMIUM = "/usr/bin/chromium"
WARMUP_S = 4.0
MEASURE_S = 8.0
VIEW = (640, 480)

SAMPLE_JS = """() => ({t: performance.now(), w: fsStudio.weightsIn, wb: fsStudio.weightBytes, f: fsStudio.framesShown,
  ib: fsStudio.imageBytes, r: window.fsAvatar3d ? fsAvatar3d.framesRendered : 0,
  drawn: window.fsAvatar3d ? fsAvatar3d.latencies.length : 0, sent: fsStudio.seq})"""


def _measure(page, mode: str, seconds: float) -> dict:
    if mode == "client":
        lat_js = "window.fsAvatar3d.latencies.slice()"
        page.evaluate("window.fsAvatar3d.latencies.length = 0")
    else:
        lat_js = "window.fsStudio.latencies.slice()"
        page.evaluate("window.fsStudio.latencies.length = 0")
    a = page.evaluate(SAMPLE_JS)
    page.wait_for_timeout(seconds * 1000)
    b = page.evaluate(SAMPLE_JS)
    lat = page.evaluate(lat_js)
    dt = (b["t"] - a["t"]) / 1000.0
    if mode == "client":
        updates, down = b["w"] - a["w"], b["wb"] - a["wb"]
        drawn = len(lat)
    else:
        updates, down = b["f"] - a["f"], b["ib"] - a["ib"]
        drawn = updates
    return {"updates_fps": round(drawn / dt, 1), "render_fps": round((b["r"] - a["r"]) / dt, 1) if mode == "client"
            else round(drawn / dt, 1), "camera_fps_sent": round((b["sent"] - a["sent"]) / dt, 1),
            "latency_ms": summary(lat, 1), "down_bytes_per_frame": round(down / max(updates, 1), 1),
            "down_kb_per_s": round(down / dt / 1024, 2)}


def run(args: argparse.Namespace) -> dict:
    from playwright.sync_api import sync_playwright

    from .. import testdata
    from ..serving import ServerThread
    from ..serving.web_assets import node_modules

    if not Path(CHROMIUM).exists():
        raise SystemExit("bench browser needs Debian's chromium (/usr/bin/chromium)")
    if not (node_modules() / "three").is_dir():
        raise SystemExit(f"bench browser needs the JS packages: run `npm ci --omit=dev` "
                         f"({node_modules()} has no three)")
    import cv2

    measure = MEASURE_S if not args.frames else max(2.0, args.frames / 30.0)
    with tempfile.TemporaryDirectory(prefix="facestage-bench-browser-") as tmp:
        clip = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC) for f in testdata.carphone_frames(150)]
        cam = testdata.write_video(Path(tmp) / "carphone.y4m", clip, fps=30)
        with ServerThread(db_path=Path(tmp) / "p.sqlite3") as srv, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={cam}", "--enable-unsafe-swiftshader",
                "--disable-background-networking", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": VIEW[0], "height": VIEW[1]})
                page.goto(srv.url + "/studio.html")
                page.wait_for_function("window.fsStudio.trackLabel", timeout=60_000)
                page.click("#mode-avatar")
                page.wait_for_function("window.fsAvatar3d && fsAvatar3d.ready && fsAvatar3d.packets > 5",
                                       timeout=120_000)
                gl = page.evaluate("(() => { const g = document.createElement('canvas').getContext('webgl2');"
                                   " const e = g.getExtension('WEBGL_debug_renderer_info');"
                                   " return e ? g.getParameter(e.UNMASKED_RENDERER_WEBGL) : 'unknown'; })()")
                page.wait_for_timeout(WARMUP_S * 1000)
                client = _measure(page, "client", measure)
                page.select_option("#render", "server")
                page.wait_for_function("window.fsStudio.framesShown > 5", timeout=120_000)
                page.wait_for_timeout(WARMUP_S * 1000)
                server = _measure(page, "server", measure)
            finally:
                browser.close()
    ratio = client["updates_fps"] / server["updates_fps"] if server["updates_fps"] else None
    return {"chromium_webgl": gl, "viewport": list(VIEW), "measure_s": measure, "client_rendered": client,
            "server_rendered": server, "client_vs_server_updates_fps": round(ratio, 2) if ratio else None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
