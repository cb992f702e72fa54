"""Photo avatars and the closed loop with the real tracker: render → track → compare."""

from __future__ import annotations

import dataclasses
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
from facestage.tracking import FaceTracker

SIZE = 448
BACKGROUND = (0.55, 0.6, 0.65)
YAWS = (-45, -30, -15, 0, 15, 30, 45)
PITCHES = (-20, 20)
# Per-avatar pitch caps: none. (grace_hopper's avatar looking down 20 degrees was once capped at -15: its mesh
# fitted the rigid reference as badly as an upside-down face's does; the tracker now asks the face detector
# which way up it is, see facestage/tracking/upright.py.)
MIN_PITCH: dict[str, int] = {}
LIMIT_DEG = 7.0
# Frontal render vs photo, mean landmark distance / inter-ocular distance after a 2-D similarity
# alignment. Measured 0.017 (astronaut) and 0.021 (grace_hopper); the limit leaves room for noise.
LANDMARK_LIMIT = 0.07


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(max_faces=1, static=True) as t:
        yield t


@pytest.fixture(scope="module", params=["astronaut", "grace_hopper"])
def photo(request):
    return request.param, load_avatar(f"photo:{request.param}")


def _bgr(rgba: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgba[:, :, 2::-1])


def _track(rt, tracker, av, state=None, yaw=0.0, pitch=0.0):
    rgba = rt.render(av, state, yaw=yaw, pitch=pitch, background=BACKGROUND)
    faces = tracker.track(_bgr(rgba))
    assert faces, f"{av.name}: no face found at yaw {yaw}, pitch {pitch}"
    return faces[0]


def test_photo_avatar_is_a_skinned_body_model_avatar(photo):
    _, av = photo
    names = {p.name for p in av.parts}
    assert {"skin", "hair", "clothing", "eye_l", "eye_r", "teeth_upper", "teeth_lower", "tongue", "lashes"} <= names
    skin = av.part("skin")
    assert skin.material.texture is not None and skin.material.texture.shape == (1024, 1024, 3)
    assert skin.deltas is not None and av.skeleton is not None and av.skeleton.bone("head") is not None
    fit = av.meta["photo_fit"]
    assert fit["rms_px"] < 5 and fit["targets"] > 0, fit  # the identity targets were used
    # The baked face is the photo's, not the fill colour: the texture varies where the face is.
    assert skin.material.texture.reshape(-1, 3).std(axis=0).max() > 10


def test_closed_loop_pose_expressions_and_no_holes(rt, tracker, photo):
    from scipy.ndimage import binary_fill_holes

    name, av = photo
    pitches = [max(p, MIN_PITCH.get(name, -90)) for p in PITCHES]
    errors = {}
    for yaw in YAWS:
        errors[yaw] = _track(rt, tracker, av, yaw=yaw).pose.yaw - yaw
    assert max(abs(e) for e in errors.values()) <= LIMIT_DEG, errors
    rest = _track(rt, tracker, av).pose.pitch
    for pitch in pitches:
        read = _track(rt, tracker, av, pitch=pitch).pose.pitch - rest
        assert abs(read - pitch) <= LIMIT_DEG, (pitch, read)
    assert _track(rt, tracker, av, {"jawOpen": 0.8}).blendshapes["jawOpen"] >= 0.5
    shut = _track(rt, tracker, av, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}).blendshapes
    assert min(shut["eyeBlinkLeft"], shut["eyeBlinkRight"]) >= 0.6, shut
    # Holes are looked for in the head without its hair: gaps between hair strands are meant to be there.
    bald = dataclasses.replace(av, parts=[p for p in av.parts if not p.name.startswith("hair")],
                               uid=10**9 + av.uid)  # its own GPU buffers
    for yaw, pitch in [(y, 0) for y in YAWS] + [(0, p) for p in pitches]:  # every angle tested above
        rgba = rt.render(bald, yaw=yaw, pitch=pitch)  # transparent background
        alpha = rgba[:, :, 3] > 0
        holes = binary_fill_holes(alpha) & ~alpha
        # Inside the face's outline (the tracked landmarks' hull) no background may show. Outside it the
        # background shows through the real gap behind an ear.
        faces = tracker.track(_bgr(rt.render(av, yaw=yaw, pitch=pitch, background=BACKGROUND)))
        assert faces, (yaw, pitch)
        hull = np.zeros(alpha.shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(faces[0].landmarks[:468, :2].astype(np.int32)), 1)
        assert not (holes & (hull > 0)).any(), (yaw, pitch, int((holes & (hull > 0)).sum()))


def _similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = (sig * np.diag(d)).sum() / (a ** 2).sum()
    return s * a @ r.T + md


def test_frontal_render_matches_the_photos_landmarks(rt, tracker, photo):
    name, av = photo
    img = testdata.astronaut() if name == "astronaut" else testdata.grace_hopper()
    src = tracker.track(img)[0].landmarks[:468, :2].astype(float)
    out = _track(rt, tracker, av).landmarks[:468, :2].astype(float)
    aligned = _similarity_2d(out, src)
    iod = np.linalg.norm(src[33] - src[263])
    err = float(np.linalg.norm(aligned - src, axis=1).mean() / iod)
    print(f"{name}: mean landmark error {err:.3f} of the inter-ocular distance")
    assert err < LANDMARK_LIMIT, err


def test_photo_avatar_exports_a_valid_vrm(tmp_path, photo):
    from test_avatar_import import _khronos_validate

    from facestage.avatar.gltf_export import export_glb

    _, av = photo
    path = export_glb(av, tmp_path / "photo.vrm")
    report = _khronos_validate(path)
    assert report["errors"] == 0, report


def _big_png(path, w: int, h: int) -> None:
    """A real w×h greyscale PNG, written row by row (a 100 MP file without a 100 MP array)."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * w
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_bad_photos_are_clear_errors_and_write_nothing(tmp_path):
    from facestage.avatar.photo import read_photo

    with pytest.raises(InputError, match="no face"):
        photo_avatar(np.full((240, 320, 3), 127, np.uint8))
    astro = testdata.astronaut()
    grace = cv2.resize(testdata.grace_hopper(), (512, 600))[44:556]
    with pytest.raises(InputError, match="faces"):
        photo_avatar(np.hstack([astro, grace]))
    tiny = np.full((720, 960, 3), 120, np.uint8)
    tiny[300:364, 400:464] = cv2.resize(astro, (64, 64), interpolation=cv2.INTER_AREA)
    with pytest.raises(InputError, match="small|no face"):
        photo_avatar(tiny)
    with pytest.raises(InputError, match="colour image"):
        photo_avatar(np.zeros((10, 10), np.uint8))
    big = tmp_path / "big.png"
    _big_png(big, 10_000, 10_000)
    with pytest.raises(InputError, match="MP"):
        read_photo(big)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for bad in (big, text, tmp_path / "none.jpg"):
        out = tmp_path / "me.vrm"
        r = subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", "create", "--from-photo", str(bad),
                            "-o", str(out)], capture_output=True, text=True, timeout=240)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()


def test_cli_create_from_photo_writes_a_vrm(tmp_path):
    out = tmp_path / "grace.vrm"
    r = subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", "create", "--from-photo",
                        str(testdata.grace_hopper_path()), "-o", str(out)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr
    av = load_avatar(out)
    assert av.skeleton is not None and len(av.meta["arkit_shapes"]) == 52
    assert next(p for p in av.parts if p.name == "skin").material.texture is not None


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
