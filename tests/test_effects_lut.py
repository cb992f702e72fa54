"""The lut effect: .cube files change colours as their tables say, strength mixes, skin-only stays on the skin."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects import EffectChain
from facestage.effects.lut import LOOKS, builtin_luts, read_cube, write_cube
from facestage.effects.regions import FACE_OVAL
from facestage.errors import ConfigError
from facestage.tracking import FaceTracker


def grid(n: int) -> np.ndarray:
    v = np.linspace(0.0, 1.0, n)
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1)


def swap_curve(rgb: np.ndarray) -> np.ndarray:
    """A table we can predict by hand: R' = B, G' = R², B' = 1 - G."""
    return np.stack([rgb[..., 2], rgb[..., 0] ** 2, 1.0 - rgb[..., 1]], axis=-1)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.resize(testdata.astronaut(), (640, 640), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def grace():  # noqa: ANN201
    img = testdata.grace_hopper()
    with FaceTracker(max_faces=1, static=True) as t:
        faces = t.track(img)
    assert len(faces) == 1
    return img, faces


def test_identity_lut_leaves_the_frame_unchanged(tmp_path: Path, frame: np.ndarray) -> None:
    path = write_cube(tmp_path / "identity.cube", grid(17), "identity")
    out = EffectChain({"lut": {"lut": str(path)}}).apply(frame, [])
    assert np.abs(out.astype(int) - frame).max() <= 1


def test_lut_maps_known_colours_to_the_table_values(tmp_path: Path) -> None:
    # Size 6: nodes at multiples of 51, so these 8-bit colours sit exactly on table entries.
    n = 6
    table = swap_curve(grid(n))
    path = write_cube(tmp_path / "swap.cube", table, "swap")
    rng = np.random.default_rng(3)
    idx = rng.integers(0, n, size=(64, 3))
    rgb_in = idx * 51
    img = rgb_in[None, :, ::-1].astype(np.uint8)  # BGR, one row of 64 colours
    out = EffectChain({"lut": {"lut": str(path)}}).apply(img, [])[0, :, ::-1].astype(float)
    expected = table[idx[:, 0], idx[:, 1], idx[:, 2]] * 255.0
    # By hand for one entry: (255, 102, 0) -> (B, R², 1 - G) = (0, 255, 153).
    assert np.allclose(swap_curve(np.array([1.0, 0.4, 0.0])) * 255, [0, 255, 153])
    assert np.abs(out - expected).max() <= 2.0
    # Between the nodes it agrees with colour-science's own tetrahedral evaluation of the file.
    from colour.algebra import table_interpolation_tetrahedral

    colours = rng.integers(0, 256, size=(500, 3))
    ours = EffectChain({"lut": {"lut": str(path)}}).apply(colours[None, :, ::-1].astype(np.uint8), [])
    ref = read_cube(path).apply(colours / 255.0, interpolator=table_interpolation_tetrahedral) * 255.0
    assert np.abs(ours[0, :, ::-1].astype(float) - ref).max() <= 2.5


def test_strength_mixes_and_zero_is_off(frame: np.ndarray) -> None:
    full = EffectChain({"lut": {"lut": "mono"}}).apply(frame, [])
    half = EffectChain({"lut": {"lut": "mono", "strength": 0.5}}).apply(frame, [])
    off = EffectChain({"lut": {"lut": "mono", "strength": 0.0}}).apply(frame, [])
    assert np.array_equal(off, frame)
    # Mono: every pixel grey at full strength, half-way at 0.5.
    assert np.abs(full[..., 0].astype(int) - full[..., 2]).max() <= 1
    mid = (full.astype(float) + frame) / 2
    assert np.abs(half - mid).max() <= 1.0


def test_shipped_looks_are_read_back_from_their_cube_files(frame: np.ndarray) -> None:
    assert set(builtin_luts()) == set(LOOKS)
    for name in LOOKS:
        text = builtin_luts()[name].read_text()
        assert "Apache-2.0" in text.splitlines()[1]
        out = EffectChain({"lut": {"lut": name}}).apply(frame, [])
        assert np.abs(out.astype(int) - frame).mean() > 3, name  # each look visibly changes the frame
    warm = EffectChain({"lut": {"lut": "warm"}}).apply(frame, []).astype(float)
    assert warm[..., 2].mean() - warm[..., 0].mean() > frame[..., 2].mean() - frame[..., 0].mean() + 5


def test_skin_only_leaves_the_background_untouched(grace) -> None:  # noqa: ANN001
    img, faces = grace
    out = EffectChain({"lut": {"lut": "mono", "region": "skin"}}).apply(img, faces)
    lm = faces[0].landmarks
    oval = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(oval, [np.round(lm[FACE_OVAL, :2]).astype(np.int32)], 1)
    outside = cv2.dilate(oval, np.ones((9, 9), np.uint8)) == 0
    assert np.array_equal(out[outside], img[outside])
    cheeks = np.zeros(img.shape[:2], np.uint8)
    for c in (50, 280):
        cv2.circle(cheeks, tuple(int(v) for v in lm[c, :2]), 6, 1, -1)
    sat_in = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 1][cheeks > 0].mean()
    sat_out = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)[..., 1][cheeks > 0].mean()
    assert sat_out < sat_in * 0.3  # the skin went grey


def test_bad_lut_files_are_refused_clearly(tmp_path: Path, frame: np.ndarray) -> None:
    cases = {
        "binary.cube": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
        "garbage.cube": b"LUT_3D_SIZE 4\n0.1 0.2\nhello\n",
        "huge.cube": b"LUT_3D_SIZE 300\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match="lut.lut"):
            EffectChain({"lut": {"lut": str(tmp_path / name)}}).apply(frame, [])
    with pytest.raises(ConfigError, match="neither a shipped look"):
        EffectChain({"lut": {"lut": "sepia-nope"}}).apply(frame, [])
    with pytest.raises(ConfigError, match="not one of frame, skin"):
        EffectChain({"lut": {"lut": "warm", "region": "hair"}})
