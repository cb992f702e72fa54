"""The developer examples run as written against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import cv2
import pytest

from facestage.serving import ServerThread

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(db_path=tmp_path_factory.mktemp("ex") / "p.sqlite3") as srv:
        yield srv


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_effects_client_example(server, tmp_path):
    out = run_example("effects_client.py", "--url", server.ws_url, "--preset", "glam", "--output", "glam.jpg",
                      cwd=tmp_path)
    assert "1 face(s)" in out
    assert cv2.imread(str(tmp_path / "glam.jpg")).shape == (512, 512, 3)


def test_render_api_example(server, tmp_path):
    run_example("render_api.py", "--url", server.url, "--avatar", "kai", "--expression", "happy", "--size", "128",
                "--output", "kai.png", cwd=tmp_path)
    assert cv2.imread(str(tmp_path / "kai.png"), cv2.IMREAD_UNCHANGED).shape == (128, 128, 4)
    r = subprocess.run([sys.executable, str(EXAMPLES / "render_api.py"), "--url", server.url, "--avatar", "zed"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown avatar 'zed'" in r.stderr  # a clear message, not a traceback


def test_employee_chat_example(server, tmp_path):
    out = run_example("employee_chat.py", "--url", server.ws_url, "Where are your stores?", cwd=tmp_path)
    assert "Mia" in out and "audio" in out
    with wave.open(str(tmp_path / "reply.wav")) as w:
        assert w.getnframes() / w.getframerate() > 1.0


def test_xr_weights_example(server, tmp_path):
    out = run_example("xr_weights_stream.py", "--url", server.ws_url, "--frames", "8", cwd=tmp_path)
    assert out.count("jawOpen") == 8
    per_frame = int(out.strip().splitlines()[-1].split()[0])
    assert per_frame == 110 + 16  # 55 float16 values + the frame header: no pixels
