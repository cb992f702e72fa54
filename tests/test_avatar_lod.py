"""The realtime level of detail of the built-ins: fewer triangles, same shapes, same silhouette."""

from __future__ import annotations

import numpy as np
import pytest

from facestage.avatar import load_avatar
from facestage.avatar.lod import realtime_lod, with_lod
from facestage.errors import ConfigError
from facestage.rendering import RenderThread
from facestage.tracking import ARKIT_NAMES

SIZE = 128


@pytest.fixture(scope="module")
def ava():
    return load_avatar("ava")


def test_realtime_copy_halves_the_triangles_and_keeps_every_shape(ava):
    lod = realtime_lod(ava)
    assert lod is realtime_lod(ava)  # cached
    assert lod.triangle_count < 0.55 * ava.triangle_count
    assert [p.name for p in lod.parts] == [p.name for p in ava.parts]
    for full, low in zip(ava.parts, lod.parts, strict=True):
        if full.deltas is None:
            assert low.deltas is None
            continue
        for name in ARKIT_NAMES:
            moves_full = np.abs(full.shape_delta(name)).max() > 0
            moves_low = np.abs(low.shape_delta(name)).max() > 0
            assert moves_full == moves_low, (full.name, name)
    # Photo avatars and imported files are never decimated.
    assert with_lod(ava, "full") is ava


def test_realtime_and_full_renders_match_in_silhouette_and_expression(ava):
    with RenderThread(size=SIZE) as fast, RenderThread(size=SIZE, lod="full") as hq:
        assert fast.lod == "realtime"
        for state in (None, {"jawOpen": 1.0}, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}):
            a = fast.render(ava, state, yaw=20)
            b = hq.render(ava, state, yaw=20)
            ma, mb = a[:, :, 3] > 0, b[:, :, 3] > 0
            assert (ma & mb).sum() / (ma | mb).sum() > 0.95
            assert np.abs(a[:, :, :3].astype(int) - b[:, :, :3].astype(int))[ma & mb].mean() < 12
        # jawOpen shows the mouth interior on the realtime copy too (dark pixels appear).
        dark = (fast.render(ava, {"jawOpen": 1.0})[:, :, :3].max(axis=2) < 70).sum()
        assert dark > (fast.render(ava)[:, :, :3].max(axis=2) < 70).sum() + 10


def test_unknown_lod_is_a_config_error():
    with pytest.raises(ConfigError, match="level of detail"):
        RenderThread(lod="ultra")
