"""The pages resume by themselves: the OBS output page (fs.js Connection) in real Chromium loses its
WebSocket, reconnects with ?session=ID, resumes its watch session from the server's checkpoint and keeps
drawing the studio's frames."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import cv2
import pytest

from facestage import testdata
from facestage.client import Client
from facestage.serving import ServerThread

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]


def test_output_page_resumes_its_watch_session_after_a_drop(tmp_path):
    from playwright.sync_api import sync_playwright

    face = cv2.resize(testdata.astronaut(), (256, 256))
    stop = threading.Event()

    with ServerThread(db_path=tmp_path / "p.sqlite3") as srv, sync_playwright() as p:
        def produce() -> None:  # a studio publishing on channel "main" at ~10 fps
            async def main() -> None:
                async with Client.connect(srv.ws_url) as c:
                    await c.start("effects", max_faces=1, channel="main")
                    while not stop.is_set():
                        await c.process(face)
                        await asyncio.sleep(0.1)

            asyncio.run(main())

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            urls: list[str] = []
            page.on("websocket", lambda ws: urls.append(ws.url))
            page.goto(srv.url + "/output.html")
            page.wait_for_function("window.fsOutput.frames > 2", timeout=60_000)
            sid = page.evaluate("window.fsOutput.conn.sessionId")
            assert sid
            page.evaluate("window.fsOutput.conn.ws.close()")  # the network drops (not the user closing)
            page.wait_for_function("window.fsOutput.conn.resumes === 1", timeout=10_000)
            frames = page.evaluate("window.fsOutput.frames")
            page.wait_for_function(f"window.fsOutput.frames > {frames + 2}", timeout=30_000)
            assert page.evaluate("window.fsOutput.conn.sessionId") == sid
            assert page.evaluate("window.fsOutput.reconnects") == 1
            assert urls[-1].endswith(f"/v1/ws?session={sid}")  # sticky routing in a cluster
            assert not errors
        finally:
            browser.close()
            stop.set()
            producer.join(10)
