"""The speed-ups keep the result: carried UV maps match a fresh raster, the resized warp field moves
pixels where the landmarks say, and the cv2 rewrites of the colour formulas equal the numpy originals."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects.agetexture import age_texture
from facestage.effects.makeup import _lab_of, lab_tint, multiply_tint
from facestage.effects.regions import Roi, face_roi
from facestage.effects.skin import skin_likeness
from facestage.effects.uvspace import UVMapper, cached_mapper
from facestage.effects.warp import WarpField
from facestage.tracking import FaceTracker


@pytest.fixture(scope="module")
def astro_lm() -> tuple[np.ndarray, np.ndarray]:
    img = cv2.resize(testdata.astronaut(), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    with FaceTracker(max_faces=1, static=True) as t:
        faces = t.track(img)
    assert len(faces) == 1
    return img, faces[0].landmarks


def _similarity(lm: np.ndarray, scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    c = lm[:, :2].mean(axis=0)
    out = lm.copy()
    out[:, :2] = (lm[:, :2] - c) @ rot.T + c + np.float32(shift)
    out[:, 2] *= scale
    return out


def test_uv_maps_follow_a_rigid_move_and_rebuild_on_expression(astro_lm) -> None:  # noqa: ANN001
    img, lm = astro_lm
    cache: dict = {}
    roi = face_roi(lm, img.shape, margin=0.03, top=0.03, bottom=0.03)
    first = cached_mapper(cache, 1, lm, roi)
    moved_lm = _similarity(lm, 1.08, 4.0, (23.0, -11.0))
    roi2 = face_roi(moved_lm, img.shape, margin=0.03, top=0.03, bottom=0.03)
    carried = cached_mapper(cache, 1, moved_lm, roi2)
    assert carried is not first and cache[1][4] is first  # carried from the raster, no new raster
    fresh = UVMapper(moved_lm, roi2)
    tex = age_texture(0.8, 1.0)
    a, b = carried.sample(tex, roi2.work_size), fresh.sample(tex, roi2.work_size)
    inside = cv2.erode(((carried.maps(roi2.work_size)[0] >= 0) & (fresh.maps(roi2.work_size)[0] >= 0))
                       .astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    shade_range = np.abs(b[..., 0][inside]).max()
    assert shade_range > 0.1  # the wrinkles are there to compare
    # Same wrinkles in the same places: mean error < 1 % of the shading range (measured 0.12 %).
    assert np.abs(a - b)[..., 0][inside].mean() < 0.01 * shade_range
    # An expression (mouth opens by 6 % of the face) is not a rigid move: a fresh raster.
    talk = moved_lm.copy()
    talk[[13, 14, 17, 0, 78, 308, 14, 87, 178, 88, 95, 317, 402, 318, 324], 1] += 0.06 * np.ptp(lm[:, 0])
    rebuilt = cached_mapper(cache, 1, talk, roi2)
    assert cache[1][4] is rebuilt and rebuilt is not carried


def test_warp_at_half_work_resolution_moves_pixels_where_the_landmarks_go() -> None:
    # A bright dot on a 512x512 ROI warped at work scale 1/2 (a large face): after a local translation
    # the dot's centroid must be where ``move_points`` puts the landmark that sat on it.
    img = np.zeros((512, 512, 3), np.uint8)
    cv2.circle(img, (250, 260), 6, (255, 255, 255), -1, cv2.LINE_AA)
    roi = Roi(0, 0, 512, 512, 0.5)
    wf = WarpField(roi)
    wf.translate(np.float32([250, 260]), np.float32([262, 252]), 90.0)
    wf.scale(np.float32([300, 200]), 60.0, 0.3)  # a second, overlapping warp in the same field
    out = wf.apply(img)
    moved = wf.move_points(np.float32([[250, 260, 0]]))[0, :2]
    g = out[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:512, :512]
    centroid = np.array([(xs * g).sum() / g.sum(), (ys * g).sum() / g.sum()])
    assert np.abs(moved - [250, 260]).max() > 5  # it did move
    assert np.abs(centroid - moved).max() < 0.6


def test_cv2_colour_rewrites_equal_the_numpy_formulas() -> None:
    rng = np.random.default_rng(5)
    sub = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    alpha = rng.random((37, 53)).astype(np.float32)
    # lab_tint: a/b pulled to the colour, L shifted around the region's own mean.
    color = _lab_of("#b4283c")
    lab = cv2.cvtColor(sub, cv2.COLOR_BGR2LAB).astype(np.float32)
    mean_l = (lab[..., 0] * alpha).sum() / alpha.sum()
    target = lab.copy()
    target[..., 0] += color[0] - mean_l
    target[..., 1:] = color[1:]
    ref = lab + alpha[..., None] * np.float32([0.6, 1, 1]) * (target - lab)
    ref = cv2.cvtColor(np.clip(ref, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)
    assert np.abs(lab_tint(sub, alpha, color, 0.6).astype(int) - ref).max() <= 1
    # multiply_tint: f + alpha (f k - f), rounded instead of truncated.
    f = sub.astype(np.float32)
    ref = f + alpha[..., None] * (f * (np.float32([25, 20, 20]) / 255.0) - f)
    assert np.abs(multiply_tint(sub, alpha, (25, 20, 20)).astype(np.float32) - ref).max() <= 1.0
    # skin_likeness: logistic of the Lab distance to the skin colour.
    skin = np.float32([160, 140, 145])
    d = np.sqrt(((cv2.cvtColor(sub, cv2.COLOR_BGR2LAB).astype(np.float32) - skin) ** 2).sum(axis=2))
    ref = 1.0 / (1.0 + np.exp((d - 28.0) / 6.0))
    assert np.abs(skin_likeness(sub, skin) - ref).max() < 1e-4
