"""Close-up faces looking down: kept (the face detector says which way up), upside-down faces still rejected.

A real face looking down ~20 degrees, filling the frame, gives a mesh that fits the rigid reference as badly
as an upside-down face's squeezed mesh (tracker.MAX_FIT_RESIDUAL); ``upright.py`` asks the short-range
detector about the face as it is and turned 180 degrees. Media: the shipped photos and carphone frames, and
the built-in ``walter`` rendered with real GL looking down 20 degrees.
"""

from __future__ import annotations

import numpy as np
import pytest

from facestage import testdata
from facestage.avatar import load_avatar
from facestage.rendering import RenderThread
from facestage.tracking import FaceTracker
from facestage.tracking.pose import fit_pose
from facestage.tracking.tracker import MAX_ASKED_RESIDUAL, MAX_FIT_RESIDUAL
from facestage.tracking.upright import UprightCheck

SIZE = 448
BACKGROUND = (0.55, 0.6, 0.65)


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


def _render(rt, av, pitch: float) -> np.ndarray:
    return np.ascontiguousarray(rt.render(av, yaw=0.0, pitch=pitch, background=BACKGROUND)[:, :, 2::-1])


def _flip_box(box, w, h):
    return (w - box[2], h - box[3], w - box[0], h - box[1])


def test_the_detector_tells_upright_faces_from_upside_down_ones():
    images = [testdata.astronaut(), testdata.grace_hopper()] + testdata.carphone_frames()[::15]
    check = UprightCheck()
    with FaceTracker(static=True, max_faces=1) as tracker:
        for img in images:
            box = tracker.track(img)[0].bbox
            h, w = img.shape[:2]
            assert check.upright(img, box)
            # The same face turned 180 degrees, at the same place turned with it.
            assert not check.upright(np.ascontiguousarray(img[::-1, ::-1]), _flip_box(box, w, h))
    assert check.asked == 2 * len(images)
    check.close()


def test_a_close_up_face_looking_down_is_kept_and_reads_its_pitch(rt):
    av = load_avatar("walter")
    down = _render(rt, av, -20.0)
    with FaceTracker(static=True, max_faces=1) as tracker:
        rest = tracker.track(_render(rt, av, 0.0))[0]
        assert tracker._upright.asked == 0  # a well-fitting face costs nothing extra
        faces = tracker.track(down)
        assert len(faces) == 1
        # The path under test: the mesh fits worse than MAX_FIT_RESIDUAL, so the detector was asked.
        assert MAX_FIT_RESIDUAL < fit_pose(faces[0].landmarks).residual <= MAX_ASKED_RESIDUAL
        assert tracker._upright.asked == 1
        assert abs(faces[0].pose.pitch - rest.pose.pitch - (-20.0)) <= 7.0


def test_video_asks_once_per_face_while_it_keeps_looking_down(rt):
    av = load_avatar("walter")
    for pitches, most in (([-20.0] * 10, 1),  # seen looking down from the first frame: asked once
                          (list(np.linspace(0.0, -20.0, 8)) + [-20.0] * 6, 0)):  # tilts down while followed
        with FaceTracker(max_faces=1) as tracker:
            found = [len(tracker.track(_render(rt, av, p), i / 30)) for i, p in enumerate(pitches)]
            last = tracker.track(_render(rt, av, -20.0), len(pitches) / 30)[0]
            asked = tracker._upright.asked
        assert found == [1] * len(pitches)
        assert fit_pose(last.landmarks).residual > MAX_FIT_RESIDUAL  # the band where the detector decides
        # The same face at the same place as on the previous frame is not asked again.
        assert asked == most, (pitches, asked)


def test_video_still_rejects_upside_down_faces():
    flipped = [np.ascontiguousarray(f[::-1, ::-1]) for f in testdata.carphone_frames(limit=60)]
    with FaceTracker(max_faces=1) as tracker:
        assert sum(len(tracker.track(f, i / 30)) for i, f in enumerate(flipped)) == 0
