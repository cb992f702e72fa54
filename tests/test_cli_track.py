"""``facestage track`` as a real process: JSON shape, JSONL output, previews, bad inputs (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.tracking import ARKIT_NAMES


def facestage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facestage", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("track_media")
    grace = d / "grace.png"
    cv2.imwrite(str(grace), testdata.grace_hopper())
    clip = testdata.write_video(d / "talk.avi", testdata.carphone_frames(limit=12), fps=15)
    text = d / "notes.png"
    text.write_text("this is not an image")
    empty = d / "empty.avi"  # a valid AVI with a video stream and no frames
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 64))
    writer.release()
    return {"dir": d, "grace": grace, "clip": clip, "text": text, "empty": empty}


def check_record(record: dict, index: int) -> None:
    assert set(record) == {"frame", "time", "faces"}
    assert record["frame"] == index
    assert isinstance(record["time"], float)
    for face in record["faces"]:
        assert set(face) == {"id", "bbox", "landmarks", "pose", "blendshapes"}
        assert isinstance(face["id"], int) and len(face["bbox"]) == 4
        lm = np.array(face["landmarks"])
        assert lm.shape == (478, 3)
        assert set(face["pose"]) == {"yaw", "pitch", "roll", "quaternion", "translation"}
        assert len(face["pose"]["quaternion"]) == 4 and len(face["pose"]["translation"]) == 3
        assert np.linalg.norm(face["pose"]["quaternion"]) == pytest.approx(1.0, abs=1e-4)
        assert list(face["blendshapes"]) == list(ARKIT_NAMES)
        assert all(0.0 <= v <= 1.0 for v in face["blendshapes"].values())


def test_image_json_and_preview(media):
    preview = media["dir"] / "grace_preview.jpg"
    proc = facestage("track", str(media["grace"]), "--json", "--preview", str(preview))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    check_record(record, 0)
    assert len(record["faces"]) == 1
    out = cv2.imread(str(preview))
    src = cv2.imread(str(media["grace"]))
    assert out is not None and out.shape == src.shape
    x0, y0, x1, y1 = (int(v) for v in record["faces"][0]["bbox"])
    changed = np.abs(out.astype(int) - src.astype(int)).sum(axis=2) > 30
    assert changed[y0:y1, x0:x1].mean() > 0.1  # the mesh is drawn over the face
    assert changed.mean() < 0.2  # ... and not over the whole picture


def test_video_jsonl_summary_and_preview(media):
    out = media["dir"] / "talk.jsonl"
    preview = media["dir"] / "talk_preview.mp4"
    proc = facestage("track", str(media["clip"]), "--out", str(out), "--preview", str(preview), "--max-faces", "2")
    assert proc.returncode == 0, proc.stderr
    assert "12 frame(s), a face in 12" in proc.stdout  # human summary when --json is not given
    assert "12/12" in proc.stderr  # tqdm progress bar on stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12
    for i, r in enumerate(records):
        check_record(r, i)
        assert [f["id"] for f in r["faces"]] == [0]
    assert records[3]["time"] == pytest.approx(3 / 15, abs=1e-3)
    cap = cv2.VideoCapture(str(preview))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 12


def test_frames_limit(media):
    proc = facestage("track", str(media["clip"]), "--json", "--frames", "3")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 3


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("text", "is not a readable image"),
    ("empty", "no video frames"),
    ("camera", "camera 7 is not available"),
    ("max_faces", "--max-faces must be at least 1"),
    ("preview_suffix", "the preview must end in"),
])
def test_bad_input_exits_2_with_one_line(media, case, message):
    args = {
        "missing": [str(media["dir"] / "nope.jpg")],
        "text": [str(media["text"])],
        "empty": [str(media["empty"])],
        "camera": ["7"],
        "max_faces": [str(media["grace"]), "--max-faces", "0"],
        "preview_suffix": [str(media["grace"]), "--preview", str(media["dir"] / "out.mp4")],
    }[case]
    proc = facestage("track", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("facestage: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
