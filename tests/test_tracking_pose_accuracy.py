"""Head-pose accuracy against true 3-D geometry: render avatars at known angles, track, compare.

The renderer and the tracker share one sign convention (docs/avatar.md, docs/tracking.md): yaw > 0
turns towards the subject's left, pitch > 0 looks up, roll > 0 tilts towards the left shoulder.
Measured error tables: docs/tracking.md, "Head pose accuracy".
"""

from __future__ import annotations

import numpy as np
import pytest

from facestage.avatar import load_avatar
from facestage.rendering import RenderThread
from facestage.tracking import FaceTracker

SIZE = 448  # head framing: the face spans ~250 px, like a webcam close-up
BACKGROUND = (0.55, 0.6, 0.65)  # neutral grey-blue, no face-like texture

Angles = tuple[float, float, float]


def measure_pose(rt: RenderThread, tracker: FaceTracker, avatar, angles: list[Angles], size: int = SIZE
                 ) -> dict[Angles, np.ndarray | None]:
    """Render ``avatar`` at each (yaw, pitch, roll) and track it: the read (yaw, pitch, roll), or None
    when no face is found. Reusable for sweeps (see docs/tracking.md for the full tables)."""
    out: dict[Angles, np.ndarray | None] = {}
    for yaw, pitch, roll in angles:
        rgba = rt.render(avatar, yaw=yaw, pitch=pitch, roll=roll, size=size, background=BACKGROUND,
                         framing="head")
        faces = tracker.track(np.ascontiguousarray(rgba[:, :, 2::-1]))
        out[(yaw, pitch, roll)] = (np.array([faces[0].pose.yaw, faces[0].pose.pitch, faces[0].pose.roll])
                                   if faces else None)
    return out


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=4)
    yield r
    r.close()


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker(static=True, max_faces=1) as t:
        yield t


def _errors(readings: dict[Angles, np.ndarray | None]) -> dict[Angles, np.ndarray]:
    missing = [a for a, r in readings.items() if r is None]
    assert not missing, f"no face found at {missing}"
    return {a: r - np.array(a) for a, r in readings.items() if r is not None}


def test_renderer_and_tracker_share_the_sign_convention(rt, tracker):
    av = load_avatar("mira")
    r = measure_pose(rt, tracker, av, [(0, 0, 0), (20, 0, 0), (-20, 0, 0), (0, 10, 0), (0, -10, 0),
                                      (0, 0, 20), (0, 0, -20)])
    _errors(r)
    rest = r[(0, 0, 0)]
    assert r[(20, 0, 0)][0] > rest[0] + 12 and r[(-20, 0, 0)][0] < rest[0] - 12
    assert r[(0, 10, 0)][1] > rest[1] + 6 and r[(0, -10, 0)][1] < rest[1] - 6
    assert r[(0, 0, 20)][2] > 15 and r[(0, 0, -20)][2] < -15


def test_photo_avatar_pose_reads_back_on_each_axis(rt, tracker):
    """grace_hopper's photo avatar (human proportions; the closed loop in test_avatar_photo.py uses
    the astronaut): yaw ±30 and pitch ±15, one axis at a time. Yaw is compared as read; pitch as the change
    from rest, like the avatar closed loops: the absolute pitch carries a per-face offset (the tracker's
    reference face is not this face; the body-model photo avatar reads 3.4 degrees at rest). Measured worst
    error 3.4 degrees (the pitch change at -15), yaw within 2.3."""
    av = load_avatar("photo:grace_hopper")
    angles = [(0, 0, 0), (-30, 0, 0), (-15, 0, 0), (15, 0, 0), (30, 0, 0), (0, -15, 0), (0, 15, 0)]
    r = measure_pose(rt, tracker, av, angles)
    err = _errors(r)
    rest = r[(0, 0, 0)][1]
    worst = {a: max(abs(float(e[0])), abs(float(r[a][1] - rest - a[1]))) for a, e in err.items()}
    assert max(worst.values()) <= 6.0, worst
    assert max(abs(float(e[2])) for e in err.values()) <= 5.0  # roll stays put (grace's own tilt ~3)


@pytest.mark.parametrize("name", ["ava", "kai", "mira"])
def test_builtin_avatar_pose_reads_back(rt, tracker, name):
    """Stylized heads: yaw within 7 degrees at ±20, roll within 5 at ±20, and pitch changes within 5
    degrees of the true change at ±10. The built-ins' absolute pitch reads ~10 degrees high at rest
    (their cartoon proportions; real photos read ~0): see docs/tracking.md."""
    av = load_avatar(name)
    angles = [(0, 0, 0), (-20, 0, 0), (20, 0, 0), (0, -10, 0), (0, 10, 0), (0, 0, -20), (0, 0, 20)]
    r = measure_pose(rt, tracker, av, angles)
    err = _errors(r)
    for a in [(-20, 0, 0), (20, 0, 0)]:
        assert abs(err[a][0]) <= 7.0, (a, err[a])
    for a, e in err.items():
        assert abs(e[2]) <= 5.0, (a, e)
    rest = r[(0, 0, 0)][1]
    for a in [(0, -10, 0), (0, 10, 0)]:
        assert abs((r[a][1] - rest) - a[1]) <= 5.0, (a, r[a], rest)
