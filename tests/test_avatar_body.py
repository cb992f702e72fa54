"""The body-model built-ins in a closed loop with our own tracker, and their skeleton/skin.

Each built-in is rendered (real GL, skinned in the vertex shader) at known head angles and expressions,
and ``FaceTracker`` reads the render back: yaw within 7 degrees over −45…45, pitch changes within 7 degrees
at ±20 (see MIN_PITCH), jawOpen 0.8 reads ≥ 0.5, eyeBlink 1 reads ≥ 0.6. Head turns move
the head and leave the shoulders where they are.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from facestage.avatar import load_avatar
from facestage.avatar.builtin import BUILTIN_SPECS
from facestage.avatar.skeleton import skin_points
from facestage.avatar.store import load_avatar_file, save_avatar
from facestage.rendering import RenderThread
from facestage.rendering.scene import skin_matrices
from facestage.tracking import FaceTracker

SIZE = 448
BACKGROUND = (0.55, 0.6, 0.65)
YAWS = (-45, -30, -15, 15, 30, 45)
# Per-avatar yaw caps: none. (kai's sweep once stopped at 35 degrees; the current kai tracks to 45 in static
# and video mode, yaw read back within 4.8 degrees.)
MAX_YAW: dict[str, int] = {}
LIMIT_DEG = 7.0
# Measured (head framing, change from rest): ±20 reads within 6.7 degrees on every built-in. (walter looking
# down 20 degrees was once capped at -15: MediaPipe finds his face, but its mesh fitted the rigid reference
# as badly as an upside-down face's does; the tracker now asks the face detector which way up it is, see
# facestage/tracking/upright.py.)
PITCHES = (-20, 20)
MIN_PITCH: dict[str, int] = {}


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(static=True, max_faces=1) as t:
        yield t


def _track(rt, tracker, avatar, state=None, yaw=0.0, pitch=0.0, framing="head"):
    rgba = rt.render(avatar, state, yaw=yaw, pitch=pitch, background=BACKGROUND, framing=framing)
    faces = tracker.track(np.ascontiguousarray(rgba[:, :, 2::-1]))
    assert faces, f"{avatar.name}: no face found at yaw {yaw}, pitch {pitch} ({framing})"
    return faces[0]


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_tracker_reads_back_the_pose_and_expressions_of_each_builtin(rt, tracker, name):
    av = load_avatar(name)
    limit = MAX_YAW.get(name, 45)
    errors = {}
    for yaw in (y for y in YAWS if abs(y) <= limit):
        errors[yaw] = _track(rt, tracker, av, yaw=yaw).pose.yaw - yaw
    assert max(abs(e) for e in errors.values()) <= LIMIT_DEG, errors
    # Pitch: the tracker's absolute pitch carries a per-face offset (its reference face is not this face),
    # so the change from rest is compared.
    rest = _track(rt, tracker, av).pose.pitch
    for pitch in (max(p, MIN_PITCH.get(name, -90)) for p in PITCHES):
        read = _track(rt, tracker, av, pitch=pitch).pose.pitch - rest
        assert abs(read - pitch) <= LIMIT_DEG, (pitch, read)
    jaw = _track(rt, tracker, av, {"jawOpen": 0.8}).blendshapes
    assert jaw["jawOpen"] >= 0.5, jaw["jawOpen"]
    shut = _track(rt, tracker, av, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}).blendshapes
    assert min(shut["eyeBlinkLeft"], shut["eyeBlinkRight"]) >= 0.6, shut
    neutral = _track(rt, tracker, av).blendshapes
    assert neutral["jawOpen"] < 0.2 and max(neutral["eyeBlinkLeft"], neutral["eyeBlinkRight"]) < 0.4


def test_head_turn_moves_the_head_and_leaves_the_shoulders_still(rt):
    av = load_avatar("lin")
    skel, skins = av.skinning()
    w = np.zeros(52, np.float32)
    skin = skin_matrices(av, w, (28.0, 10.0, 5.0), (12.0, 4.0, 2.0))
    i = [p.name for p in av.parts].index("clothing")
    part = av.parts[i]
    moved, _ = skin_points(skin, *skins[i], part.positions.astype(float))
    d = np.linalg.norm(moved - part.positions, axis=1)
    neck_y = skel.joint_position(skel.bone("neck"))[1]
    shoulders = part.positions[:, 1] < neck_y - 0.06
    assert shoulders.sum() > 100
    # The shoulders do not follow the head: at most the collar near the neck moves a couple of millimetres.
    assert d[shoulders].max() < 0.003 and np.median(d[shoulders]) < 1e-4
    j = [p.name for p in av.parts].index("skin")
    face = av.parts[j]
    fm, _ = skin_points(skin, *skins[j], face.positions.astype(float))
    eye_y = np.mean([e[1] for e in av.eye_centers])
    z = np.where(np.abs(face.positions[:, 1] - eye_y) < 0.06, face.positions[:, 2], -np.inf)
    nose = int(np.argmax(z))
    assert np.linalg.norm(fm[nose] - face.positions[nose]) > 0.03  # the nose tip swings by centimetres

    # In pixels: the bottom of a bust shot (shirt and shoulders) is the same picture at any head turn.
    a = rt.render(av, framing="bust", background=BACKGROUND)
    b = rt.render(av, yaw=35, framing="bust", background=BACKGROUND)
    band = slice(int(SIZE * 0.88), SIZE)
    assert np.abs(a[band].astype(int) - b[band].astype(int)).mean() < 1.5
    top = slice(0, int(SIZE * 0.5))
    assert np.abs(a[top].astype(int) - b[top].astype(int)).mean() > 6


def test_builtins_are_skinned_with_four_weights_and_a_humanoid_skeleton():
    av = load_avatar("walter")
    skel = av.skeleton
    assert skel.parents[0] == -1 and all(p < i for i, p in enumerate(skel.parents))
    np.testing.assert_allclose(skel.inverse_bind @ skel.rest, np.broadcast_to(np.eye(4), skel.rest.shape), atol=1e-9)
    np.testing.assert_allclose(skel.skin_matrices(), np.broadcast_to(np.eye(4), skel.rest.shape), atol=1e-9)
    skin = av.part("skin")
    used = np.unique(skin.skin_joints[skin.skin_weights > 0.01])
    names = {skel.names[k] for k in used}
    assert {"head", "neck_01", "spine_03", "clavicle_l", "clavicle_r"} <= names
    eye = av.part("eye_l")
    assert set(np.unique(eye.skin_joints[:, 0])) == {skel.bone("leftEye")}
    # Every one of the 52 ARKit shapes moves some vertex (Face Units, CC0): tongueOut moves the tongue only.
    moving = np.max([np.abs(p.deltas.reshape(52, -1, 6)[:, :, :3]).max(axis=(1, 2)) for p in av.parts
                     if p.deltas is not None], axis=0)
    assert (moving > 1e-4).all()


def test_built_avatars_round_trip_through_the_disk_cache(tmp_path):
    av = load_avatar("kenji")
    path = tmp_path / "kenji.npz"
    save_avatar(av, path)
    t0 = time.perf_counter()
    back = load_avatar_file(path)
    assert time.perf_counter() - t0 < 5.0  # vs ~2 s to build; ~0.02 s on an idle machine
    assert back.skeleton.names == av.skeleton.names
    np.testing.assert_allclose(back.skeleton.rest, av.skeleton.rest)
    for a, b in zip(av.parts, back.parts, strict=True):
        assert a.name == b.name and a.material.alpha_mode == b.material.alpha_mode
        np.testing.assert_array_equal(a.skin_joints, b.skin_joints)
        np.testing.assert_allclose(a.positions, b.positions)
        if a.deltas is not None:
            np.testing.assert_allclose(a.deltas, b.deltas, atol=2e-5, rtol=1e-3)  # float16 on disk (11-bit mantissa)
