"""The shared per-face context and the fused write-back: computed once per face per frame, the fused
chain matches the effects applied one after the other, and nothing outside the face's ROIs changes."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects import EffectChain, load_preset, merge_configs, normalize_config, regions
from facestage.effects import context as context_mod
from facestage.effects.base import REGISTRY, apply_warps
from facestage.effects.context import FaceContext
from facestage.tracking import FaceTracker

MAKEUP = {"makeup": {"lipstick": 0.7, "blush": 0.5, "brows": 0.5, "eyeshadow": 0.5, "eyeliner": 0.6}}
FULL = normalize_config(merge_configs(load_preset("natural"), MAKEUP, load_preset("old-70")))


@pytest.fixture(scope="module")
def faces_of():  # noqa: ANN201
    with FaceTracker(max_faces=2, static=True) as t:
        yield t.track


@pytest.fixture(scope="module")
def grace(faces_of):  # noqa: ANN001, ANN201
    img = testdata.grace_hopper()
    faces = faces_of(img)
    assert len(faces) == 1
    return img, faces


def test_one_context_and_one_mask_fill_per_face_per_frame(grace, monkeypatch) -> None:  # noqa: ANN001
    """beauty, age and makeup share one context: one ROI, one region-mask fill, one write-back."""
    img, faces = grace
    made, masks, flushes = [], [], []
    create, region_masks, flush = FaceContext.create, context_mod.region_masks, FaceContext.flush

    def counting_create(*a, **k):  # noqa: ANN002, ANN003, ANN202
        ctx = create(*a, **k)
        made.append(ctx)
        return ctx

    def counting_masks(*a, **k):  # noqa: ANN002, ANN003, ANN202
        masks.append(1)
        return region_masks(*a, **k)

    def counting_flush(self):  # noqa: ANN001, ANN202
        flushes.append(self.delta is not None)
        return flush(self)

    monkeypatch.setattr(FaceContext, "create", staticmethod(counting_create))
    monkeypatch.setattr(context_mod, "region_masks", counting_masks)
    monkeypatch.setattr(FaceContext, "flush", counting_flush)
    chain = EffectChain(FULL)
    for _ in range(2):
        chain.apply(img, faces)
    assert len(made) == 2  # one per face per frame
    assert len(masks) == 2
    assert flushes.count(True) == 2  # beauty's and age's deltas written back once per frame
    # The shared ROI holds every effect's own: age's hair margin is the widest.
    ctx = made[-1]
    own = regions.face_roi(ctx.lm, img.shape, margin=0.35, top=0.6, bottom=0.1)
    assert (ctx.roi.x0, ctx.roi.y0, ctx.roi.x1, ctx.roi.y1) == (own.x0, own.y0, own.x1, own.y1)


def test_fused_chain_matches_effects_one_after_the_other(grace) -> None:  # noqa: ANN001
    """The chain's fused pass against each effect applied alone in turn (own context, own write-back):
    visually the same. Both use the same stabilised, warped landmarks (the chain's first frame is exact)."""
    img, faces = grace
    fused = EffectChain(FULL).apply(img, faces)
    out = img.copy()
    work = [replace(f, landmarks=f.landmarks.copy()) for f in faces]

    items = [(REGISTRY[n](), FULL[n]) for n in ("beauty", "age", "makeup")]
    apply_warps(out, work, [(e, p) for e, p in items if e.warps(p)])
    for effect, params in items:
        out = effect.render(out, work, params, {})
    d = np.abs(fused.astype(np.int16) - out.astype(np.int16))
    assert d.mean() < 0.15  # measured 0.04
    assert np.percentile(d, 99.9) <= 4  # measured 2
    # And the chain really did something on the face.
    assert np.abs(fused.astype(np.int16) - img.astype(np.int16)).mean() > 0.5


def test_fused_chain_leaves_pixels_outside_the_rois_alone(faces_of) -> None:  # noqa: ANN001
    """Two faces side by side: every pixel outside the faces' shared and warp ROIs is bit-identical."""
    face = testdata.grace_hopper()
    img = np.hstack([face, cv2.flip(face, 1)])
    faces = faces_of(img)
    assert len(faces) == 2
    out = EffectChain(FULL).apply(img, faces)
    inside = np.zeros(img.shape[:2], bool)
    for f in faces:
        for m in ((0.35, 0.6, 0.1), (0.3, 0.1, 0.3)):  # context ROI (age's margins), warp ROI
            roi = regions.face_roi(f.landmarks, img.shape, margin=m[0], top=m[1], bottom=m[2])
            inside[roi.slice()] = True
    assert inside.mean() < 0.9
    assert np.array_equal(out[~inside], img[~inside])
    for f in faces:  # each face changed
        roi = regions.face_roi(f.landmarks, img.shape, margin=0.0, top=0.0, bottom=0.0)
        assert np.abs(out[roi.slice()].astype(np.int16) - img[roi.slice()].astype(np.int16)).mean() > 1.0
