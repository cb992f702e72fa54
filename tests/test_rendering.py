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


def _premultiplied(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32)
    return np.concatenate([x[..., :3] * x[..., 3:] / 255.0, x[..., 3:]], axis=-1)


def test_fxaa_moves_edges_towards_a_supersampled_reference(ava):
    """The measurable form of "anti-aliased": on the pixels where the aliased scene differs from a 4×4
    supersampled render (box-filtered 2048² → 512²), the FXAA output is clearly closer to the reference."""
    from facestage.rendering.gl_renderer import GLRenderer

    w = np.zeros(52, np.float32)
    w[17] = 0.4  # jaw a little open: lips and teeth edges too
    r = GLRenderer(msaa=0)
    try:
        big = r.render(ava, w, (20.0, 5.0, 0.0), (5.0, 2.0, 0.0), 2048, 2048)
        out = r.render(ava, w, (20.0, 5.0, 0.0), (5.0, 2.0, 0.0), 512, 512)
        aliased = np.frombuffer(r.fbo.read(components=4), np.uint8).reshape(512, 512, 4)[::-1]
    finally:
        r.close()
    ref = _premultiplied(big).reshape(512, 4, 512, 4, 4).mean(axis=(1, 3))
    err_aliased = np.abs(_premultiplied(aliased) - ref).max(axis=-1)
    err_fxaa = np.abs(_premultiplied(out) - ref).max(axis=-1)
    edges = err_aliased > 24  # an aliased step: about a tenth of full scale
    assert edges.sum() > 1000, edges.sum()
    # Measured: 74.8 → 51.0 (mean over the edge pixels, 0..255).
    assert err_fxaa[edges].mean() < 0.8 * err_aliased[edges].mean(), (err_fxaa[edges].mean(),
                                                                      err_aliased[edges].mean())


def test_spatial_order_is_a_permutation_that_keeps_neighbours_together(ava):
    from facestage.rendering.gl_renderer import spatial_order

    skin = next(p for p in ava.parts if p.name == "skin")
    tris = skin.indices.reshape(-1, 3)
    order = spatial_order(skin.positions, tris)
    assert np.array_equal(np.sort(order), np.arange(len(tris)))
    c = skin.positions[tris].mean(axis=1)

    def step(t: np.ndarray) -> float:  # median distance between consecutively drawn triangles
        return float(np.median(np.linalg.norm(np.diff(c[t], axis=0), axis=1)))

    assert step(order) < 0.5 * step(np.arange(len(tris)))


def test_each_material_combination_gets_its_own_program(ava):
    """Material switches are compile-time (llvmpipe runs both sides of a uniform ``if``): opaque skin,
    cut-out hair and blended lashes are drawn by different programs, and a part without morphs has none."""
    from facestage.rendering.gl_renderer import GLRenderer

    r = GLRenderer(msaa=0)
    try:
        r.render(ava, np.zeros(52, np.float32), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 64, 64)
        parts = {gp.part.name: gp for gp in r._gpu(ava)}
        assert parts["skin"].prog is not parts["hair"].prog is not parts["lashes"].prog
        assert "u_tex" not in set(parts["skin"].prog) and "u_tex" in set(parts["hair"].prog)
        assert "u_cutoff" in set(parts["hair"].prog) and "u_cutoff" not in set(parts["skin"].prog)
        assert "u_nactive" not in set(parts["eye_l"].prog)  # eyes turn by bone: no morph loop
    finally:
        r.close()
