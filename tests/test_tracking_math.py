"""The pure parts of tracking without MediaPipe: geometry, One-Euro filters, the blendshape solver."""

from __future__ import annotations

import numpy as np
import pytest

from facestage.tracking.arkit import ARKIT_NAMES
from facestage.tracking.blendshapes import FEATURES, SPEC, BlendshapeSolver, measure
from facestage.tracking.filters import OneEuroFilter, OneEuroParams
from facestage.tracking.geometry import (
    euler_from_rotation,
    quaternion_from_rotation,
    rotation_from_euler,
    rotation_from_quaternion,
    similarity_align,
)
from facestage.tracking.pose import fit_pose, reference


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (0, -20, 0), (0, 0, 45), (25, 15, -35), (-60, 40, 170)])
def test_euler_quaternion_round_trips(angles):
    rot = rotation_from_euler(*angles)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
    assert euler_from_rotation(rot) == pytest.approx(angles, abs=1e-6)
    q = quaternion_from_rotation(rot)
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
    assert np.allclose(rotation_from_quaternion(q), rot, atol=1e-9)


def test_sign_conventions_on_the_reference_face():
    """Rotate the reference face by known angles (camera frame: x right, y down, z forward)."""
    ref = reference().points
    nose, chin = ref[1], ref[152]
    # yaw +30: the nose swings towards +x (the image's right = the subject's left).
    assert (rotation_from_euler(30, 0, 0) @ nose)[0] > 0.01
    # pitch +20 (looking up): the nose goes up in the image (-y).
    assert (rotation_from_euler(0, 20, 0) @ nose)[1] < nose[1] - 0.005
    # roll +20 (towards the subject's left shoulder): the chin swings towards the image's left
    # while the subject's left eye (image right) goes down.
    assert (rotation_from_euler(0, 0, 20) @ chin)[0] < -0.01
    assert (rotation_from_euler(0, 0, 20) @ ref[473])[1] > ref[473][1] + 0.005


def test_similarity_align_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    rot = rotation_from_euler(20, -10, 35)
    dst = 3.5 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = similarity_align(src, dst)
    assert s == pytest.approx(3.5) and np.allclose(r, rot) and np.allclose(t, [1.0, -2.0, 0.5])


def test_pose_fit_of_the_reference_projected_into_an_image():
    """Reference face placed at a known pose in pixels: the fit reads that pose back."""
    ref = reference().points
    rot = rotation_from_euler(20, -12, 8)
    scale = 2000.0  # pixels per metre
    pts = (scale * ref @ rot.T + np.array([640.0, 360.0, 0.0])).astype(np.float32)
    fit = fit_pose(pts)
    assert euler_from_rotation(fit.rotation) == pytest.approx((20, -12, 8), abs=1e-3)
    assert fit.scale == pytest.approx(scale, rel=1e-4) and fit.residual < 1e-4
    assert np.allclose(fit.to_local(pts.astype(np.float64)), ref, atol=1e-6)


def test_reference_asset_is_small_symmetric_and_metric():
    ref = reference()
    assert ref.points.shape == (478, 3) and ref.partner.shape == (478,)
    assert (ref.partner[ref.partner] == np.arange(478)).all()  # mirror partners pair up
    assert ref.partner[468] == 473 and ref.partner[33] == 263 and ref.partner[1] == 1
    mirrored = ref.points[ref.partner] * np.array([-1, 1, 1])
    assert np.abs(mirrored - ref.points).max() < 1e-6
    assert np.linalg.norm(ref.points[473] - ref.points[468]) == pytest.approx(0.063, abs=1e-6)
    assert 0.12 < np.ptp(ref.points[:, 1]) < 0.2  # forehead to chin, metres


def test_one_euro_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.01))
    noisy = 10 + rng.normal(0, 0.5, 300)
    out = np.array([f(np.array([v]), i / 30)[0] for i, v in enumerate(noisy)])
    assert np.std(out[30:]) < 0.4 * np.std(noisy[30:])
    # A fast ramp: beta opens the cut-off, so the lag stays small.
    g = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.5))
    ramp = np.arange(60) * 5.0
    lagged = np.array([g(np.array([v]), i / 30)[0] for i, v in enumerate(ramp)])
    assert ramp[-1] - lagged[-1] < 10  # under two frames' worth of motion
    h = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    slow = np.array([h(np.array([v]), i / 30)[0] for i, v in enumerate(ramp)])
    assert ramp[-1] - slow[-1] > ramp[-1] - lagged[-1]
    # Repeated or backwards timestamps do not divide by zero.
    assert np.isfinite(f(np.array([1.0]), 0.0)).all()


def test_solver_reads_zero_on_the_neutral_reference_and_responds_to_known_edits():
    ref = reference().points
    solver = BlendshapeSolver(ref)
    assert tuple(SPEC) == ARKIT_NAMES
    assert np.allclose(solver.solve(ref), 0.0)
    # Jaw: drop the chin and the lower lip 2 cm.
    opened = ref.copy()
    lower = ref[:, 1] > ref[14, 1] + 0.002
    lower[[14, 87, 178, 88, 95, 317, 402, 318, 324, 17, 84, 181, 91, 146, 314, 405, 321, 375]] = True
    opened[lower, 1] += 0.02
    opened[[61, 291], 1] += 0.007  # lip corners follow the jaw about a third of the way
    scores = dict(zip(ARKIT_NAMES, solver.solve(opened), strict=True))
    assert scores["jawOpen"] > 0.5 and scores["eyeBlinkLeft"] == 0 and scores["mouthSmileLeft"] == 0
    # Blink: move the right eye's upper lid onto the lower lid.
    blink = ref.copy()
    for up, lo in ((160, 144), (159, 145), (158, 153)):
        blink[up, 1] = blink[lo, 1] - 0.0003
    scores = dict(zip(ARKIT_NAMES, solver.solve(blink), strict=True))
    assert scores["eyeBlinkRight"] > 0.9 and scores["eyeBlinkLeft"] == 0
    # Smile: raise both lip corners 1 cm.
    smile = ref.copy()
    smile[[61, 291], 1] -= 0.01
    scores = dict(zip(ARKIT_NAMES, solver.solve(smile), strict=True))
    assert scores["mouthSmileLeft"] > 0.7 and scores["mouthSmileRight"] > 0.7
    assert scores["mouthFrownLeft"] == 0
    # Gaze: move the left iris 4 mm towards the ear.
    look = ref.copy()
    look[473:478, 0] += 0.004
    scores = dict(zip(ARKIT_NAMES, solver.solve(look), strict=True))
    assert scores["eyeLookOutLeft"] > 0.3 and scores["eyeLookInLeft"] == 0


def test_features_are_invariant_to_pose_and_scale():
    """Measured after pose removal: a rotated, scaled, moved face gives the same features."""
    ref = reference().points
    rot = rotation_from_euler(35, -20, 25)
    pts = (1500 * ref @ rot.T + np.array([300.0, 200.0, 10.0])).astype(np.float32)
    fit = fit_pose(pts)
    assert np.allclose(measure(fit.to_local(pts.astype(np.float64))), measure(ref), atol=1e-5)
    assert len(measure(ref)) == len(FEATURES)


def test_plausible_rejects_a_mesh_whose_eyes_are_below_its_mouth():
    from facestage.tracking.tracker import plausible

    ref = reference().points
    upright = (2000 * ref + np.array([300.0, 300.0, 0.0])).astype(np.float32)
    assert plausible(upright)
    rolled = (2000 * ref @ rotation_from_euler(0, 0, 80).T + 300).astype(np.float32)
    assert plausible(rolled)  # lying on a side is fine
    flipped = upright.copy()
    flipped[:, 1] = 600 - flipped[:, 1]  # same mesh, eyes now below the mouth
    assert not plausible(flipped)
