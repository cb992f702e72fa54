"""3D props and perspective stickers on tracked faces: a real photo frontal, and the photo avatar made from
it rendered at known yaw ±30° (real GL, real tracking), since no package photo shows a turned head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects import EffectChain
from facestage.effects.anchor3d import BRIDGE, face_frame
from facestage.effects.propmodels import PROPS, load_glb, prop_mesh, prop_path
from facestage.effects.props import light_from_face, prop_layer
from facestage.effects.regions import face_width
from facestage.effects.sticker import Sticker, custom_anchors, face_anchors_3d
from facestage.tracking import FaceTracker

SIZE = 448


@pytest.fixture(scope="module", autouse=True)
def prop_cache(tmp_path_factory):  # noqa: ANN201 - the GLBs are built into a fresh cache, as on a new machine
    mp = pytest.MonkeyPatch()
    mp.setenv("FACESTAGE_CACHE", str(tmp_path_factory.mktemp("cache")))
    prop_mesh.cache_clear()
    yield
    prop_mesh.cache_clear()
    mp.undo()


@pytest.fixture(scope="module")
def scenes():  # noqa: ANN201
    """{yaw: (BGR image, [face])} for the real photo (yaw 'photo') and the photo avatar at -30/+30."""
    from facestage.avatar import load_avatar
    from facestage.rendering import RenderThread

    out = {}
    with FaceTracker(static=True, max_faces=1) as tracker:
        img = testdata.grace_hopper()
        out["photo"] = (img, tracker.track(img))
        avatar = load_avatar("photo:grace_hopper")
        with RenderThread(size=SIZE, msaa=4) as rt:
            for yaw in (-30, 30):
                rgba = rt.render(avatar, yaw=yaw, size=SIZE, background=(0.55, 0.6, 0.65), framing="head")
                img = np.ascontiguousarray(rgba[:, :, 2::-1])
                out[yaw] = (img, tracker.track(img))
    for key, (_, faces) in out.items():
        assert len(faces) == 1, key
    assert out[30][1][0].pose.yaw > 20 and out[-30][1][0].pose.yaw < -20  # the tracker sees the turn
    return out


def part_pixels(img: np.ndarray, face, part: str, occlude: bool = True) -> np.ndarray:  # noqa: ANN001
    """Boolean frame-sized mask of one prop part's visible pixels."""
    layer, (x0, y0, x1, y1) = prop_layer(img.shape, face, prop_mesh("glasses"), occlude=occlude, parts={part})
    mask = np.zeros(img.shape[:2], bool)
    mask[y0:y1, x0:x1] = layer[..., 3] > 128
    return mask


def test_props_are_glb_files_built_by_code() -> None:
    for kind in PROPS:
        path = prop_path(kind)
        assert path.read_bytes()[:4] == b"glTF" and path.stat().st_size < 200_000
        mesh = load_glb(path)
        assert len(mesh.triangles) > 100 and np.isfinite(mesh.positions).all()
    assert set(prop_mesh("glasses").parts) == {"rim", "lens", "bridge", "arm_left", "arm_right", "tip_left",
                                               "tip_right"}


@pytest.mark.parametrize("view", ["photo", -30, 30])
def test_glasses_bridge_sits_on_the_nose_bridge(scenes, view) -> None:  # noqa: ANN001
    img, faces = scenes[view]
    lm = faces[0].landmarks
    ys, xs = np.nonzero(part_pixels(img, faces[0], "bridge"))
    assert len(xs) > 10
    centre = np.array([xs.mean(), ys.mean()])
    err = np.linalg.norm(centre - lm[BRIDGE, :2]) / face_width(lm)
    assert err < 0.05, (view, err)


@pytest.mark.parametrize("yaw", [-30, 30])
def test_the_far_arm_is_hidden_behind_the_head(scenes, yaw) -> None:  # noqa: ANN001
    img, faces = scenes[yaw]
    # Turning to their left (yaw > 0) takes the subject's left side away from the camera.
    far, near = ("left", "right") if yaw > 0 else ("right", "left")
    seen = {part: (part_pixels(img, faces[0], part).sum(), part_pixels(img, faces[0], part, occlude=False).sum())
            for part in (f"arm_{far}", f"tip_{far}", f"arm_{near}")}
    (far_vis, far_all), (tip_vis, tip_all), (near_vis, near_all) = seen.values()
    assert far_all > 50 and tip_all > 10 and near_all > 50  # all on screen without the occluder
    # The head hides the far arm: all of its hook behind the ear, all but the stretch next to the hinge.
    assert tip_vis <= 0.05 * tip_all, seen
    assert far_vis < 0.3 * far_all, seen
    assert near_vis > 0.7 * near_all, seen  # and leaves the near one alone


def test_props_in_the_chain_are_lit_like_the_face(scenes) -> None:  # noqa: ANN001
    img, faces = scenes["photo"]
    out = EffectChain({"props": {"glasses": 1.0, "hat": 1.0, "ears": 1.0}}).apply(img, faces)
    lm = faces[0].landmarks
    eyes = np.zeros(img.shape[:2], np.uint8)
    cv2.circle(eyes, tuple(int(v) for v in lm[BRIDGE, :2]), int(face_width(lm) * 0.4), 1, -1)
    assert np.abs(out.astype(int) - img)[eyes > 0].mean() > 10  # the glasses are there
    assert np.array_equal(out[-60:], img[-60:])  # nothing below the chin changes
    # A darker room: the same props come out darker (ambient from the face's own colour).
    dark = (img * 0.4).astype(np.uint8)
    (amb_b, _), (amb_d, _) = light_from_face(img, lm), light_from_face(dark, lm)
    assert sum(amb_d) < 0.8 * sum(amb_b)
    lit = {name: prop_layer(im.shape, faces[0], prop_mesh("hat"), light=light_from_face(im, lm))[0]
           for name, im in (("bright", img), ("dark", dark))}
    solid = lit["bright"][..., 3] == 255
    assert lit["dark"][solid][:, :3].mean() < 0.85 * lit["bright"][solid][:, :3].mean()


def test_degenerate_faces_do_not_crash(scenes) -> None:  # noqa: ANN001
    img, faces = scenes["photo"]
    chain = EffectChain({"props": {"glasses": 1.0, "hat": 1.0}, "sticker": {"glasses": 1.0}})
    lm = faces[0].landmarks
    for bad in (np.full_like(lm, 100.0), lm + np.float32([3000, 0, 0]), lm * np.float32([0.01, 0.01, 0.01])):
        out = chain.apply(img, [replace(faces[0], landmarks=bad)])
        assert out.shape == img.shape
    assert np.array_equal(chain.apply(img, []), img)


@pytest.mark.parametrize("view", ["photo", 30])
def test_sticker_corners_follow_the_projected_3d_anchors(scenes, view, tmp_path: Path) -> None:  # noqa: ANN001
    img, faces = scenes[view]
    w, h = 240, 80
    card = np.full((h, w, 4), 255, np.uint8)  # an opaque white card: its corners are easy to find
    cv2.imwrite(str(tmp_path / "card.png"), card)
    canvas = np.zeros_like(img)
    Sticker().render(canvas, faces, {"glasses": 0, "hat": 0, "ears": 0, "scale": 1.0,
                                     "image": str(tmp_path / "card.png")}, {})
    mask = (canvas[..., 0] > 128).astype(np.uint8)
    contour = max(cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea)
    quad = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True).reshape(-1, 2).astype(np.float64)
    assert len(quad) == 4
    # The card's own anchors (lens centres) mapped through the drawn quad land on the projected 3D anchors.
    ordered = sorted(quad.tolist(), key=lambda p: p[1])
    top, bottom = sorted(ordered[:2]), sorted(ordered[2:])
    drawn = np.float32([top[0], top[1], bottom[0], bottom[1]])
    hmg = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [0, h], [w, h]]), drawn)
    anchors = cv2.perspectiveTransform(np.float32([custom_anchors(w, h)]), hmg)[0]
    ff = face_frame(faces[0].landmarks, img.shape)
    expected = ff.project(np.array(face_anchors_3d("glasses")) * ff.width_ratio)
    fw = face_width(faces[0].landmarks)
    assert np.abs(anchors - expected).max() < 0.02 * fw + 1.5, (anchors, expected)
    left_edge, right_edge = bottom[0][1] - top[0][1], bottom[1][1] - top[1][1]
    ratio = max(left_edge, right_edge) / min(left_edge, right_edge)
    if view == 30:  # perspective: the far side of the card is shorter (a similarity keeps both equal)
        assert ratio > 1.04, ratio
    else:
        lm = faces[0].landmarks
        eyes = np.array([lm[[33, 133, 159, 145], :2].mean(axis=0), lm[[263, 362, 386, 374], :2].mean(axis=0)])
        assert np.abs(anchors - eyes).max() < 0.05 * fw  # frontal: on the tracked eye centres
