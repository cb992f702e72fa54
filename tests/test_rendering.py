"""Offscreen rendering: real EGL contexts (moderngl and pyrender), threads, backgrounds, framing."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facestage.avatar import load_avatar
from facestage.errors import ConfigError, InputError
from facestage.rendering import RenderThread

SIZE = 128


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


@pytest.fixture(scope="module")
def ava():
    return load_avatar("ava")


def test_render_is_non_black_with_transparent_background(rt, ava):
    img = rt.render(ava)
    assert img.shape == (SIZE, SIZE, 4) and img.dtype == np.uint8
    alpha = img[:, :, 3]
    assert alpha[0, 0] == 0 and alpha[0, -1] == 0  # corners: no avatar, no background
    assert alpha[SIZE // 2, SIZE // 2] == 255
    covered = alpha > 0
    assert 0.3 < covered.mean() < 0.95
    assert img[covered][:, :3].mean() > 60  # lit, not the black of a context used off its thread


def test_render_from_another_thread_matches_creator_thread(rt, ava):
    here = rt.render(ava, {"jawOpen": 0.5})
    with ThreadPoolExecutor(2) as pool:
        there = pool.submit(rt.render, ava, {"jawOpen": 0.5}).result()
        many = list(pool.map(lambda y: rt.render(ava, yaw=y), [0, 10, 20, 30]))
    assert np.array_equal(here, there)
    assert there[:, :, :3].max() > 0
    assert len({m.tobytes() for m in many}) == 4
    assert threading.active_count() < 50


def test_render_async_matches_sync(rt, ava):
    sync = rt.render(ava, {"mouthSmileLeft": 1.0})
    out = asyncio.run(rt.render_async(ava, {"mouthSmileLeft": 1.0}))
    assert np.array_equal(sync, out)


def test_background_colour_and_image(rt, ava):
    col = rt.render(ava, background=(0.2, 0.4, 0.6))
    assert (col[:, :, 3] == 255).all()
    assert np.allclose(col[0, 0, :3], (51, 102, 153), atol=2)
    bg = np.zeros((64, 64, 3), np.uint8)
    bg[:, :, 1] = 200  # green, resized to the output size by the renderer
    img = rt.render(ava, background=bg)
    assert (img[:, :, 3] == 255).all()
    assert np.allclose(img[0, 0, :3], (0, 200, 0), atol=3)
    assert np.abs(img[SIZE // 2, SIZE // 2, :3].astype(int) - (0, 200, 0)).sum() > 60  # avatar in front


def test_bust_framing_shows_brand_clothing(rt, ava):
    bust = rt.render(ava, framing="bust")
    head = rt.render(ava, framing="head")
    brand = np.array(ava.meta["brand_color"]) * 255
    lower = bust[int(SIZE * 0.8):, :, :3].reshape(-1, 3).astype(float)
    lower_alpha = bust[int(SIZE * 0.8):, :, 3].reshape(-1) > 0
    px = lower[lower_alpha]
    cos = (px @ brand) / (np.linalg.norm(px, axis=1) * np.linalg.norm(brand) + 1e-9)
    assert np.median(cos) > 0.95  # the shirt is the brand colour (shading changes brightness, not hue)
    head_px = head[int(SIZE * 0.8):, :, :3].reshape(-1, 3).astype(float)[head[int(SIZE * 0.8):, :, 3].reshape(-1) > 0]
    head_cos = (head_px @ brand) / (np.linalg.norm(head_px, axis=1) * np.linalg.norm(brand) + 1e-9)
    assert np.median(head_cos) < 0.9  # the head framing ends at the neck: skin, not shirt


def test_every_renderer_path_antialiases_edges(ava):
    """MSAA when asked for, FXAA otherwise: no path gives hard, jagged silhouettes."""
    with RenderThread(size=SIZE, msaa=4) as smooth:
        a = smooth.render(ava)
        assert smooth.info()["antialiasing"] == "msaa4"
    with RenderThread(size=SIZE, msaa=0) as fxaa:
        b = fxaa.render(ava)
        assert fxaa.info()["antialiasing"] == "fxaa"
    for img in (a, b):
        alpha = img[:, :, 3]
        partial = (alpha > 0) & (alpha < 255)
        assert partial.sum() > 50, partial.sum()  # partial coverage along the silhouette
    ma, mb = a[:, :, 3] > 127, b[:, :, 3] > 127
    assert (ma & mb).sum() / (ma | mb).sum() > 0.97  # the same picture either way


def test_yaw_turns_towards_the_avatars_left(rt, ava):
    def iris_x(img: np.ndarray) -> float:
        rgb = img[:, :, :3].astype(int)
        blue = (rgb[:, :, 2] > rgb[:, :, 0] + 40) & (img[:, :, 3] > 0)  # ava's blue irises
        blue[int(0.6 * len(blue)):] = False  # the eye band only: her teal top shows at the bottom
        assert blue.sum() > 5
        return float(np.nonzero(blue)[1].mean())

    centre, left, right = (iris_x(rt.render(ava, yaw=y, size=192)) for y in (0, 30, -30))
    # HeadPose convention: yaw > 0 turns to the avatar's own left, which the camera sees on its right.
    assert left > centre + 10 and right < centre - 10


def test_pyrender_renders_the_same_scene():
    # kenji's short hair is one dense strand shell; the sparse outer strand layers of full hair are cut per
    # fragment by moderngl but only per triangle by pyrender (no alpha MASK), which frays the silhouettes
    # apart by design (IoU 0.93 on ava).
    kenji = load_avatar("kenji")
    with RenderThread(size=SIZE, msaa=0) as gl, RenderThread(size=SIZE, backend="pyrender") as pr:
        a = gl.render(kenji, {"jawOpen": 0.6}, yaw=15)
        b = pr.render(kenji, {"jawOpen": 0.6}, yaw=15)
        assert pr.info()["backend"] == "pyrender"
        photo = load_avatar("photo:astronaut")  # a baked photo texture
        pa = gl.render(photo, {"jawOpen": 0.5})
        pb = pr.render(photo, {"jawOpen": 0.5})
    ma, mb = a[:, :, 3] > 0, b[:, :, 3] > 0
    iou = (ma & mb).sum() / (ma | mb).sum()
    assert iou > 0.95, iou
    assert b[mb][:, :3].mean() > 60
    ma, mb = pa[:, :, 3] > 0, pb[:, :, 3] > 0
    assert (ma & mb).sum() / (ma | mb).sum() > 0.9
    assert np.abs(pa[ma & mb][:, :3].astype(int) - pb[ma & mb][:, :3].astype(int)).mean() < 60


def test_bad_arguments_are_clear_errors(rt, ava):
    with pytest.raises(ConfigError):
        RenderThread(backend="vulkan")
    with pytest.raises(ConfigError):
        rt.render(ava, framing="feet")
    with pytest.raises(ConfigError):
        rt.render(ava, size=4)
    with pytest.raises(ConfigError):
        rt.render(ava, framing="photo")  # a built-in has no photo
    with pytest.raises(ConfigError):
        rt.render(ava, background="purple")
    with pytest.raises(InputError):
        rt.render("ava")
    with pytest.raises(InputError):
        rt.render(ava, np.zeros(7))
    assert rt.render(ava)[:, :, 3].max() == 255  # still alive after the errors


def test_egl_device_selection(ava):
    with RenderThread(size=64) as auto:
        info = auto.info()
        assert info["renderer"]  # the first hardware device, or Mesa's software one on this machine
        assert auto.render(ava)[:, :, 3].max() == 255
    with RenderThread(size=64, device_index=0) as first:
        assert first.info()["renderer"] == info["renderer"] or "llvmpipe" not in info["renderer"]
    with RenderThread(size=64, device_index=99) as missing, pytest.raises(ConfigError, match="device 99"):
        missing.render(ava)



def test_morph_texture_wraps_past_4096_moving_vertices_and_matches_the_cpu():
    """A 90x90 grid (8,100 vertices, all moved by one shape and skinned to two joints): the morph texture
    needs two bands. GPU skinning + morphing must match the CPU path (pyrender) pixel for pixel in shape."""
    from facestage.avatar.model import NUM_SHAPES, Avatar, Material, MeshPart
    from facestage.avatar.skeleton import Skeleton, translation
    from facestage.tracking.arkit import ARKIT_INDEX

    n = 90
    u, v = np.meshgrid(np.linspace(-0.1, 0.1, n), np.linspace(-0.1, 0.1, n))
    pos = np.stack([u.ravel(), v.ravel(), np.zeros(n * n)], axis=1)
    q = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).ravel()
    tris = np.concatenate([np.stack([q, q + 1, q + n], 1), np.stack([q + 1, q + n + 1, q + n], 1)])
    nrm = np.tile([0.0, 0.0, 1.0], (n * n, 1))
    d = np.zeros((NUM_SHAPES, n * n, 6), np.float32)
    d[ARKIT_INDEX["jawOpen"], :, 1] = -0.04 * (pos[:, 0] + 0.1) / 0.2  # a shear: the right side drops
    joints = np.zeros((n * n, 4), np.int32)
    joints[:, 0] = (pos[:, 1] > 0).astype(np.int32)  # the upper half on joint 1
    weights = np.zeros((n * n, 4), np.float32)
    weights[:, 0] = 1.0
    part = MeshPart("grid", pos, nrm, tris, Material("m", double_sided=True), deltas=d.reshape(NUM_SHAPES, -1),
                    skin_joints=joints, skin_weights=weights)
    skel = Skeleton(["root", "upper"], [-1, 0], np.stack([np.eye(4), translation((0.0, 0.0, 0.0))]),
                    humanoid={"head": "upper"})
    av = Avatar("grid", [part], frame_center={"head": (0.0, 0.0, 0.0)}, frame_height={"head": 0.3},
                skeleton=skel)
    state = {"jawOpen": 1.0}
    with RenderThread(size=SIZE, msaa=0) as gl, RenderThread(size=SIZE, backend="pyrender") as pr:
        a = gl.render(av, state, pose={"upper": (0.0, 0.0, 25.0)})
        b = pr.render(av, state, pose={"upper": (0.0, 0.0, 25.0)})
        rest = gl.render(av)
    ma, mb, mr = a[:, :, 3] > 127, b[:, :, 3] > 127, rest[:, :, 3] > 127
    assert (ma & mb).sum() / (ma | mb).sum() > 0.97
    assert (ma ^ mr).sum() > 0.05 * mr.sum()  # the morph and the joint really moved the grid
