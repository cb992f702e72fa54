"""Photo avatars and the closed loop with the real tracker: render → track → compare."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.avatar import load_avatar
from facestage.avatar.drive import drive_video, mouth_open_ratio
from facestage.avatar.photo import photo_avatar
from facestage.errors import InputError
from facestage.rendering import RenderThread
from facestage.tracking import ARKIT_NAMES, FaceTracker


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=256, msaa=4)
    yield r
    r.close()


@pytest.fixture(scope="module")
def astro():
    return load_avatar("photo:astronaut")


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(max_faces=1, static=True) as t:
        yield t


def _bgr(rgba: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgba[:, :, 2::-1])


def test_photo_avatar_has_face_eyes_mouth_and_head(astro):
    names = {p.name for p in astro.parts}
    assert {"face", "eye_l", "eye_r", "mouth_patch", "teeth_upper", "teeth_lower", "tongue", "mouth_cavity",
            "head_shell", "neck"} <= names
    face = astro.part("face")
    assert face.material.texture is not None and face.vertex_count > 4 * 468  # densified
    assert face.uvs.min() >= 0 and face.uvs.max() <= 1


def test_every_blendshape_moves_the_photo_avatar(astro):
    with RenderThread(size=160, msaa=0) as r:
        base = r.render(astro, background=(0.5, 0.5, 0.5)).astype(int)
        weak = [k for k in ARKIT_NAMES
                if (np.abs(r.render(astro, {k: 1.0}, background=(0.5, 0.5, 0.5)).astype(int) - base)
                    .max(axis=2) > 12).sum() < 4]
    assert not weak, weak


def test_talking_photo_reproduces_the_photo_and_opens_the_mouth(rt, astro, tracker):
    photo = testdata.astronaut()
    small = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    bg = np.ascontiguousarray(small[:, :, ::-1])
    neutral = _bgr(rt.render(astro, framing="photo", size=(256, 256), background=bg))
    face = tracker.track(small)[0]
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    diff = np.abs(neutral[y0:y1, x0:x1].astype(int) - small[y0:y1, x0:x1].astype(int)).mean()
    assert diff < 8, diff  # at neutral the textured face re-renders the photo
    talking = _bgr(rt.render(astro, {"jawOpen": 0.8, "eyeBlinkLeft": 1.0}, framing="photo", size=(256, 256),
                             background=bg))
    before = mouth_open_ratio(face.landmarks)
    after = tracker.track(talking)
    assert after, "the talking photo is still a face"
    assert mouth_open_ratio(after[0].landmarks) > before + 0.05


def test_faceless_photo_is_an_input_error():
    with pytest.raises(InputError):
        photo_avatar(np.full((240, 320, 3), 127, np.uint8))


def test_cli_create_from_photo(tmp_path):
    out = tmp_path / "grace.glb"
    r = subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", "create", "--from-photo",
                        str(testdata.grace_hopper_path()), "-o", str(out)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr
    av = load_avatar(out)
    face = next(p for p in av.parts if p.name == "face")
    assert face.material.texture is not None and face.deltas is not None
    r = subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", "create", "--from-photo",
                        str(tmp_path / "none.jpg"), "-o", str(out)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_closed_loop_pose_and_jaw_read_back_by_the_tracker(rt, astro, tracker):
    errors = []
    for yaw in (-30, -15, 0, 15, 30):
        for pitch in (-15, 0, 15):
            img = _bgr(rt.render(astro, yaw=yaw, pitch=pitch, background=(0.55, 0.55, 0.58)))
            faces = tracker.track(img)
            assert faces, (yaw, pitch)
            p = faces[0].pose
            errors.append((yaw, pitch, p.yaw - yaw, p.pitch - pitch))
    worst = max(max(abs(e[2]), abs(e[3])) for e in errors)
    assert worst <= 7.0, errors
    img = _bgr(rt.render(astro, {"jawOpen": 0.8}, background=(0.55, 0.55, 0.58)))
    assert tracker.track(img)[0].blendshapes["jawOpen"] > 0.4


def test_drive_on_the_talking_clip_follows_the_mouth(tmp_path):
    av = load_avatar("ava")
    out = tmp_path / "drive.mp4"
    stats = drive_video(testdata.carphone_path(), av, out, size=160, keep_frames=True)
    n = stats["frames"]
    assert n >= 100 and stats["tracked"] > 0.9 * n
    assert out.exists() and out.stat().st_size > 10_000
    src = np.array([r["mouth_open"] for r in stats["records"]])
    rendered = []
    with FaceTracker(max_faces=1, static=True) as t:
        for frame in stats["frames_bgr"]:
            faces = t.track(frame)
            rendered.append(mouth_open_ratio(faces[0].landmarks) if faces else np.nan)
    rendered = np.array(rendered)
    ok = np.isfinite(src) & np.isfinite(rendered)
    assert ok.sum() > 0.8 * n
    corr = np.corrcoef(src[ok], rendered[ok])[0, 1]
    assert corr > 0.6, corr


def test_cli_drive_side_by_side(tmp_path):
    out = tmp_path / "side.mp4"
    r = subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", "drive", str(testdata.carphone_path()),
                        "--avatar", "kai", "-o", str(out), "--side-by-side", "--size", "144", "--max-frames", "12"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "12 frames" in r.stdout and "frame" in r.stderr  # the tqdm progress bar writes to stderr
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 12
    h, w = frames[0].shape[:2]
    assert h == 144 and w > 144 + 150  # input (176x144 scaled) beside the 144x144 avatar
