"""Built-in avatars, their 52 shapes, glTF/VRM import-export, the rig and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facestage.avatar import list_avatars, load_avatar
from facestage.avatar.builtin import BUILTIN_SPECS
from facestage.avatar.gltf_io import export_glb, import_gltf
from facestage.avatar.rig import EXPRESSIONS, AvatarState, Rig
from facestage.errors import ConfigError, InputError
from facestage.rendering import RenderThread
from facestage.rendering.scene import project
from facestage.tracking import ARKIT_NAMES, Face, HeadPose

SIZE = 128
BUILTINS = sorted(BUILTIN_SPECS)


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


def _box(img: np.ndarray, cx: float, cy: float, half: int) -> np.ndarray:
    return img[int(cy) - half:int(cy) + half + 1, int(cx) - half:int(cx) + half + 1, :3].astype(float)


def test_at_least_five_skinned_builtins_are_listed_and_load():
    names = [a["name"] for a in list_avatars() if a["kind"] == "builtin"]
    assert len(names) >= 5 and {"ava", "kai", "mira"} <= set(names)
    for n in names:
        av = load_avatar(n)
        kinds = {p.name for p in av.parts}
        assert {"skin", "hair", "clothing", "lashes", "teeth_upper", "teeth_lower", "tongue", "eye_l", "eye_r"} <= kinds
        assert 10_000 < av.triangle_count < 60_000
        skel = av.skeleton
        assert skel is not None and skel.joint_count >= 50
        for bone in ("hips", "upperChest", "neck", "head", "leftEye", "rightEye", "leftUpperArm"):
            assert skel.bone(bone) is not None, (n, bone)
        for p in av.parts:
            assert p.skin_joints.shape == (p.vertex_count, 4)
            np.testing.assert_allclose(p.skin_weights.sum(axis=1), 1.0, atol=1e-5)
        assert av.meta["licence"] == "CC0-1.0"


@pytest.mark.parametrize("name", BUILTINS)
def test_each_of_the_52_blendshapes_changes_the_render(rt, name):
    av = load_avatar(name)
    base = rt.render(av).astype(int)
    weak = []
    for shape in ARKIT_NAMES:
        img = rt.render(av, {shape: 1.0}).astype(int)
        changed = int((np.abs(img - base).max(axis=2) > 12).sum())
        if changed < 4:
            weak.append((shape, changed))
    assert not weak, weak


@pytest.mark.parametrize("name", BUILTINS)
def test_jaw_open_darkens_the_mouth_and_blink_closes_the_eyes(rt, name):
    av = load_avatar(name)
    size = 192
    mx, my = project(av, av.meta["mouth"], size, size)
    closed = _box(rt.render(av, size=size), mx, my, 5).mean()
    opened = _box(rt.render(av, {"jawOpen": 1.0}, size=size), mx, my, 5).mean()
    assert opened < 0.75 * closed, (closed, opened)  # the dark interior shows

    for side, centre in (("Left", av.eye_centers[0]), ("Right", av.eye_centers[1])):
        ex, ey = project(av, centre, size, size)
        # The upper half of the eye: pupil and iris when open, the lid's skin when shut.
        rows, cols = slice(int(ey) - 4, int(ey)), slice(int(ex) - 3, int(ex) + 4)
        open_eye = rt.render(av, size=size)[rows, cols, :3].astype(float)
        shut = rt.render(av, {f"eyeBlink{side}": 1.0}, size=size)[rows, cols, :3].astype(float)
        assert open_eye.sum(axis=2).min() < 0.5 * shut.sum(axis=2).mean()
        assert open_eye.mean() < 0.85 * shut.mean(), (side, open_eye.mean(), shut.mean())


def test_gaze_moves_the_irises(rt):
    av = load_avatar("ava")  # blue irises are easy to find

    def iris_x(img):
        rgb = img[:, :, :3].astype(int)
        m = rgb[:, :, 2] > rgb[:, :, 0] + 40
        m[int(0.6 * len(m)):] = False  # the eye band only: ava's teal top shows at the bottom of the frame
        return np.nonzero(m)[1].mean()

    centre = iris_x(rt.render(av, size=256))
    left = iris_x(rt.render(av, {"eyeLookOutLeft": 1, "eyeLookInRight": 1}, size=256))
    right = iris_x(rt.render(av, {"eyeLookInLeft": 1, "eyeLookOutRight": 1}, size=256))
    assert left > centre + 2 and right < centre - 2


def test_glb_round_trip_keeps_vertices_and_morph_targets(rt, tmp_path):
    av = load_avatar("mira")
    path = export_glb(av, tmp_path / "mira.glb")
    assert path.stat().st_size < 12_000_000
    back = import_gltf(path)
    assert [p.name for p in back.parts] == [p.name for p in av.parts]
    for a, b in zip(av.parts, back.parts, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.colors, b.colors, atol=1e-6)
        np.testing.assert_allclose(a.head_weight, b.head_weight, atol=1e-6)
        assert (a.deltas is None) == (b.deltas is None)
        if a.deltas is not None:
            np.testing.assert_allclose(a.deltas, b.deltas, atol=1e-6)
        assert (a.material.texture is None) == (b.material.texture is None)
    assert back.head_pivot == pytest.approx(av.head_pivot)
    state = {"jawOpen": 0.7, "eyeBlinkLeft": 1.0, "mouthSmileRight": 0.5}
    assert np.abs(rt.render(av, state).astype(int) - rt.render(back, state).astype(int)).max() <= 2


def _vrm_fixture(path, version: int) -> np.ndarray:
    """A small VRM-style head: a sphere with three morph targets and VRM 0.x or 1.0 expressions."""
    import pygltflib as g
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    pos = sphere.vertices.astype(np.float32)
    idx = sphere.faces.astype(np.uint32).reshape(-1)
    mouth = np.zeros_like(pos)
    mouth[pos[:, 1] < -0.05] = (0, -0.02, 0)
    blink = np.zeros_like(pos)
    blink[pos[:, 1] > 0.05] = (0, -0.01, 0.005)
    joy = np.zeros_like(pos)
    joy[:, 1] = 0.01 * np.abs(pos[:, 0])
    blobs = [pos, idx, mouth, blink, joy]
    data, views, accs = b"", [], []
    for arr in blobs:
        raw = np.ascontiguousarray(arr).tobytes()
        views.append(g.BufferView(buffer=0, byteOffset=len(data), byteLength=len(raw)))
        kind, ctype = ("SCALAR", 5125) if arr.dtype == np.uint32 else ("VEC3", 5126)
        acc = g.Accessor(bufferView=len(views) - 1, componentType=ctype, count=len(arr), type=kind)
        if kind == "VEC3":
            acc.min, acc.max = arr.min(axis=0).tolist(), arr.max(axis=0).tolist()
        accs.append(acc)
        data += raw
    prim = g.Primitive(attributes=g.Attributes(POSITION=0), indices=1,
                       targets=[g.Attributes(POSITION=2), g.Attributes(POSITION=3), g.Attributes(POSITION=4)])
    names = ["Fcl_MTH_A", "Fcl_EYE_Close", "Fcl_ALL_Joy"]
    gltf = g.GLTF2(scenes=[g.Scene(nodes=[0])], scene=0, nodes=[g.Node(mesh=0)],
                   meshes=[g.Mesh(primitives=[prim], extras={"targetNames": names})],
                   accessors=accs, bufferViews=views, buffers=[g.Buffer(byteLength=len(data))])
    if version == 0:
        groups = [{"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": 0, "weight": 100}]},
                  {"name": "Blink", "presetName": "blink", "binds": [{"mesh": 0, "index": 1, "weight": 100}]},
                  {"name": "Joy", "presetName": "joy", "binds": [{"mesh": 0, "index": 2, "weight": 50}]}]
        gltf.extensions = {"VRM": {"specVersion": "0.0", "blendShapeMaster": {"blendShapeGroups": groups}}}
    else:
        preset = {"aa": {"morphTargetBinds": [{"node": 0, "index": 0, "weight": 1.0}]},
                  "blinkLeft": {"morphTargetBinds": [{"node": 0, "index": 1, "weight": 1.0}]},
                  "happy": {"morphTargetBinds": [{"node": 0, "index": 2, "weight": 0.5}]}}
        gltf.extensions = {"VRMC_vrm": {"specVersion": "1.0", "expressions": {"preset": preset}}}
    gltf.set_binary_blob(data)
    gltf.save_binary(str(path))
    return np.stack([mouth, blink, joy])


@pytest.mark.parametrize("version", [0, 1])
def test_vrm_expressions_import_as_arkit_shapes(rt, tmp_path, version):
    path = tmp_path / f"head{version}.vrm"
    mouth, blink, joy = _vrm_fixture(path, version)
    av = load_avatar(path)
    part = av.parts[0]
    flip = np.array([-1.0, 1.0, -1.0]) if version == 0 else np.ones(3)  # VRM 0.x faces -Z: turned round
    np.testing.assert_allclose(part.shape_delta("jawOpen"), mouth * flip, atol=1e-6)
    x = part.positions[:, 0]
    left = (x > 0)[:, None]
    np.testing.assert_allclose(part.shape_delta("eyeBlinkLeft"), blink * flip * (left if version == 0 else 1),
                               atol=1e-6)
    if version == 0:  # "blink" is split by side; VRM 1.0's blinkLeft maps whole
        np.testing.assert_allclose(part.shape_delta("eyeBlinkRight"), blink * flip * ~left, atol=1e-6)
    np.testing.assert_allclose(part.shape_delta("mouthSmileLeft"), 0.5 * joy * flip * left, atol=1e-6)
    assert not np.any(part.shape_delta("browDownLeft"))
    img = rt.render(av, {"jawOpen": 1.0})
    assert img[:, :, 3].max() == 255 and not np.array_equal(img, rt.render(av))


def test_bad_avatar_names_and_files_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        load_avatar("nobody")
    with pytest.raises(InputError):
        load_avatar(tmp_path / "missing.glb")
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"glTF" + b"\x00" * 40)
    with pytest.raises(InputError):
        load_avatar(junk)
    text = tmp_path / "x.gltf"
    text.write_text("not json")
    with pytest.raises(InputError):
        load_avatar(text)


def _face(bs: dict[str, float], yaw=0.0, pitch=0.0, roll=0.0) -> Face:
    full = dict.fromkeys(ARKIT_NAMES, 0.0)
    full.update(bs)
    return Face(id=0, landmarks=np.zeros((478, 3), np.float32), confidence=1.0, bbox=(0, 0, 1, 1),
                pose=HeadPose(yaw=yaw, pitch=pitch, roll=roll), blendshapes=full)


def test_rig_calibration_gains_and_head_neck_split():
    rig = Rig(neck_share=0.3)
    rig.calibrate(_face({"jawOpen": 0.2, "browInnerUp": 0.1}, yaw=4.0, pitch=-2.0))
    s = rig.from_face(_face({"jawOpen": 0.2, "browInnerUp": 0.1}, yaw=4.0, pitch=-2.0))
    assert s.blendshapes["jawOpen"] == pytest.approx(0.0) and s.total_rotation == pytest.approx((0, 0, 0))
    s = rig.from_face(_face({"jawOpen": 0.6}, yaw=24.0, pitch=-2.0, roll=10.0))
    assert s.blendshapes["jawOpen"] == pytest.approx(0.5)
    assert s.total_rotation == pytest.approx((20.0, 0.0, 10.0))
    assert s.neck_rotation == pytest.approx((6.0, 0.0, 3.0)) and s.head_rotation == pytest.approx((14.0, 0.0, 7.0))
    rig.set_gains({"jawOpen": 1.5})
    assert rig.from_face(_face({"jawOpen": 0.6})).blendshapes["jawOpen"] == pytest.approx(0.75)
    assert rig.from_face(_face({"jawOpen": 1.0})).blendshapes["jawOpen"] == 1.0  # clipped
    g = rig.from_face(_face({"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5})).gaze
    assert g[0] > 5 and abs(g[1]) < 1e-6
    restored = Rig.restore(rig.checkpoint())  # e.g. a session moved to another replica
    face = _face({"jawOpen": 0.6, "browInnerUp": 0.5}, yaw=10.0)
    assert restored.from_face(face).blendshapes == rig.from_face(face).blendshapes
    assert restored.idle(3.3).blendshapes == rig.idle(3.3).blendshapes
    with pytest.raises(ConfigError):
        rig.set_gains({"jawOpen": -1})
    with pytest.raises(ConfigError):
        rig.set_gains({"notAShape": 1})


def test_idle_motion_blinks_at_human_rates_with_saccades_and_sway():
    rig = Rig(seed=3)
    ts = np.arange(0, 120, 1 / 30)
    states = [rig.idle(t) for t in ts]
    blink = np.array([s.blendshapes["eyeBlinkLeft"] for s in states])
    onsets = int(((blink[1:] > 0.5) & (blink[:-1] <= 0.5)).sum())
    per_minute = onsets / 2
    assert 8 <= per_minute <= 35, per_minute  # people blink ~15-20 times a minute at rest
    assert blink.max() == pytest.approx(1.0)
    gaze = np.array([s.gaze for s in states])
    jumps = int((np.abs(np.diff(gaze[:, 0])) > 0.5).sum())
    assert jumps > 30  # saccades every ~0.6-2.4 s
    assert np.abs(gaze).max() < 20
    yaw = np.array([s.total_rotation[0] for s in states])
    pitch = np.array([s.total_rotation[1] for s in states])
    assert 0.5 < yaw.std() < 4 and 0.3 < pitch.std() < 3  # alive, but no wobbling
    again = Rig(seed=3).idle(ts[900])
    assert again.blendshapes == states[900].blendshapes  # a pure function of t for a seed
    assert len(str(states[0].to_json())) < 1500


def test_named_expressions_render_distinctly(rt):
    av = load_avatar("kai")
    rig = Rig(av)
    imgs = {n: rt.render(av, rig.expression_state(n)).astype(int) for n in EXPRESSIONS}
    names = list(imgs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(imgs[a] - imgs[b]).max(axis=2).astype(bool).sum() > 30, (a, b)
    rig.set_expression("happy", 0.5)
    st = rig.idle(1.0)
    assert st.blendshapes["mouthSmileLeft"] == pytest.approx(0.425)
    assert isinstance(st, AvatarState)
    with pytest.raises(ConfigError):
        rig.set_expression("smug")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facestage.cli", "avatar", *args], capture_output=True,
                          text=True, timeout=240)


def test_cli_list_render_export(tmp_path):
    import cv2

    out = _cli("list")
    assert out.returncode == 0 and "ava" in out.stdout and "photo:astronaut" in out.stdout
    png = tmp_path / "kai.png"
    r = _cli("render", "--avatar", "kai", "--set", "jawOpen=0.8", "--yaw", "15", "--size", "160", "-o", str(png))
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert img.shape == (160, 160, 4) and img[0, 0, 3] == 0 and img[80, 80, 3] == 255
    glb = tmp_path / "kai.glb"
    assert _cli("export", "kai", "-o", str(glb)).returncode == 0
    png2 = tmp_path / "kai2.png"
    r = _cli("render", "--avatar", str(glb), "--renderer", "pyrender", "--expression", "surprised",
             "--framing", "bust", "--background", "#203040", "--size", "128", "-o", str(png2))
    assert r.returncode == 0, r.stderr
    img2 = cv2.imread(str(png2), cv2.IMREAD_UNCHANGED)
    assert (img2[:, :, 3] == 255).all() and tuple(img2[0, 0, :3]) == pytest.approx((64, 48, 32), abs=2)
    bad = _cli("render", "--avatar", "kai", "--set", "jawOpen=3", "-o", str(png))
    assert bad.returncode == 2 and "0..1" in bad.stderr
    bad = _cli("render", "--avatar", "nobody", "-o", str(png))
    assert bad.returncode == 2 and "unknown avatar" in bad.stderr


def test_visemes_drive_the_mouth(rt):
    from facestage.avatar.rig import VISEMES, viseme_blendshapes

    assert len(VISEMES) == 15
    av = load_avatar("ava")
    rig = Rig(av, seed=1)
    imgs = {v: rt.render(av, rig.speak({v: 1.0}, 0.5)).astype(int) for v in ("sil", "PP", "aa", "oh", "ou", "SS")}
    for v in ("aa", "oh", "ou", "SS"):
        assert np.abs(imgs[v] - imgs["sil"]).max(axis=2).astype(bool).sum() > 20, v
    assert rig.speak({"aa": 1.0}, 0.5).blendshapes["jawOpen"] == pytest.approx(0.7)
    mix = viseme_blendshapes({"aa": 0.5, "oh": 0.5})
    assert mix["jawOpen"] == pytest.approx(0.6) and mix["mouthFunnel"] == pytest.approx(0.275)
    # One viseme table: the rig's mouth for a held viseme is what the speech timeline computes for it.
    from facestage.speech.visemes import viseme_frames

    for v in ("aa", "PP", "ou"):
        frames = viseme_frames([(0.0, 1.0, v)], 10, 1.0)
        spoken = rig.frame(0.5, mouth=frames[5]).blendshapes
        held = rig.speak({v: 1.0}, 0.5).blendshapes
        for k, w in frames[5].items():
            assert spoken[k] == pytest.approx(max(w, 0.0), abs=1e-3)
            assert held[k] == pytest.approx(w, abs=0.05), (v, k)
    with pytest.raises(ConfigError):
        viseme_blendshapes({"zz": 1.0})
