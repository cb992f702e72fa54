"""glTF / VRM import with skeletons on real files made by others (../shared/models, licences in its README):
Khronos RiggedSimple and RiggedFigure (CC BY 4.0, Cesium) and the VRM 1.0 specification samples (VRM Public
License 1.0). Import, pose a joint, render with real GL, check that the skinned part moved and the rest did not.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from facestage.avatar import load_avatar
from facestage.avatar.gltf_io import import_gltf
from facestage.avatar.skeleton import skin_points
from facestage.errors import ConfigError, InputError
from facestage.rendering import RenderThread
from facestage.rendering.scene import skin_matrices

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
if not MODELS.exists():
    MODELS = Path("/work/shared/models")
SIMPLE = MODELS / "RiggedSimple" / "RiggedSimple.gltf"
FIGURE = MODELS / "RiggedFigure" / "RiggedFigure.gltf"
VRM_MTOON = MODELS / "vrm1" / "VRMC_materials_mtoon_UV_Animation_Test.vrm"
VRM_EXPR = MODELS / "vrm1" / "VRMC_vrm_expressions_isBinary_Overrides.vrm"
pytestmark = pytest.mark.skipif(not SIMPLE.exists(), reason="shared test models missing")
SIZE = 160


@pytest.fixture(scope="module")
def rt():
    r = RenderThread(size=SIZE, msaa=0)
    yield r
    r.close()


def _load(path: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        av = import_gltf(path)
    return av, [str(w.message) for w in caught]


def _moved(av, pose: dict) -> list[np.ndarray]:
    skel, skins = av.skinning()
    skin = skin_matrices(av, np.zeros(52, np.float32), (0, 0, 0), (0, 0, 0), pose=pose)
    out = []
    for p, (j, w) in zip(av.parts, skins, strict=True):
        q, _ = skin_points(skin, j, w, p.positions.astype(float))
        out.append(np.linalg.norm(q - p.positions, axis=1))
    return out


def _subtree_influence(skel, joints, weights, j: int) -> np.ndarray:
    below = {j}
    for i, p in enumerate(skel.parents):
        if p in below:
            below.add(i)
    return np.where(np.isin(joints, list(below)), weights, 0).sum(axis=1)


@pytest.mark.parametrize("path", [SIMPLE, FIGURE])
def test_skinned_khronos_models_pose_a_joint_and_only_its_part_moves(rt, path):
    av, warned = _load(path)
    assert any("animation" in w for w in warned)  # animations are listed as ignored, not a crash
    skel, skins = av.skinning()
    assert av.skeleton is skel and skel.joint_count >= 2
    joints, weights = skins[0]
    assert joints.shape == (av.parts[0].vertex_count, 4)
    # The joint that owns the largest part of the mesh while leaving another part alone (a limb).
    best = None
    for j in range(skel.joint_count):
        inf = _subtree_influence(skel, joints, weights, j)
        owned = int((inf > 0.99).sum())
        if (inf == 0).sum() > 10 and owned > 10 and (best is None or owned > best[1]):
            best = (j, owned)
    assert best is not None, "no joint moves part of the mesh only"
    j = best[0]
    influence = _subtree_influence(skel, joints, weights, j)
    d = _moved(av, {j: (0.0, 0.0, 50.0)})[0]
    assert d[influence > 0.99].max() > 0.05 * np.ptp(av.parts[0].positions, axis=0).max()
    assert d[influence == 0].max() < 1e-6

    rest = rt.render(av, framing="head")
    posed = rt.render(av, framing="head", pose={j: (0.0, 0.0, 50.0)})
    assert rest[:, :, 3].sum() > 0
    changed = np.abs(rest.astype(int) - posed.astype(int)).max(axis=2) > 30
    assert changed.sum() > 50  # the posed limb moved on screen ...
    # ... and the pixels of vertices nothing moves stayed (their projections, away from the moved part).
    from facestage.rendering.scene import project

    still = av.parts[0].positions[influence == 0]
    moving_px = np.array([project(av, q, SIZE, SIZE) for q in av.parts[0].positions[influence > 0]])
    for q in still[:: max(1, len(still) // 40)]:
        x, y = project(av, q, SIZE, SIZE)
        if np.min(np.hypot(*(moving_px - (x, y)).T)) < 12:
            continue  # next to the moving part: its new position may cover this pixel
        xi, yi = int(round(x)), int(round(y))
        if 1 <= xi < SIZE - 1 and 1 <= yi < SIZE - 1:
            assert not changed[yi - 1:yi + 2, xi - 1:xi + 2].all(), (q, x, y)


def test_vrm1_humanoid_bones_mtoon_and_alpha_modes_are_read():
    av, warned = _load(VRM_MTOON)
    skel = av.skeleton
    for bone in ("head", "neck", "leftEye", "rightEye", "hips"):
        assert skel.bone(bone) is not None, bone
    assert all(p.material.toon > 0 for p in av.parts)  # VRMC_materials_mtoon → toon shading
    ex, warned = _load(VRM_EXPR)
    assert any("KHR_texture_transform" in w for w in warned)
    modes = {p.material.alpha_mode for p in ex.parts}
    assert "MASK" in modes
    assert any(p.material.texture is not None and p.material.texture.shape[2] == 4 for p in ex.parts)
    assert set(ex.meta["arkit_missing"]) | set(ex.meta["arkit_shapes"]) == set(ex.meta["arkit_missing"]) | set(
        ex.meta["arkit_shapes"])
    assert len(ex.meta["arkit_missing"]) + len(ex.meta["arkit_shapes"]) == 52
    # Rigid meshes ride on their nodes: turning the VRM's head moves only what hangs under the head.
    d = _moved(av, {"head": (30.0, 0.0, 0.0)})
    assert all(x.max() < 1e-6 for x in d)  # these sample meshes hang under the root, not the head


def test_vrm_renders_with_mtoon_and_textures(rt):
    av, _ = _load(VRM_MTOON)
    img = rt.render(av, framing="bust", background=(0, 0, 0))
    assert img[:, :, :3].max() > 80 and img[:, :, :3].std() > 10


def test_bad_files_and_joints_are_clear_errors(tmp_path, rt):
    bad = tmp_path / "x.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(InputError):
        import_gltf(bad)
    req = tmp_path / "req.gltf"
    req.write_text('{"asset": {"version": "2.0"}, "extensionsRequired": ["KHR_draco_mesh_compression"], '
                   '"extensionsUsed": ["KHR_draco_mesh_compression"], "meshes": [{"primitives": []}]}')
    with pytest.raises(InputError, match="draco"):
        import_gltf(req)
    av, _ = _load(SIMPLE)
    with pytest.raises(ConfigError):
        rt.render(av, pose={"no-such-bone": (10, 0, 0)})
    with pytest.raises(InputError):
        load_avatar(str(tmp_path / "missing.glb"))


REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / "node_modules" / "gltf-validator"
VALIDATE_JS = """
const v = require('gltf-validator'); const fs = require('fs');
v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])), {maxIssues: 100}).then(r => {
  console.log(JSON.stringify({errors: r.issues.numErrors, warnings: r.issues.numWarnings,
    messages: r.issues.messages.filter(m => m.severity <= 1).slice(0, 10).map(m => [m.code, m.pointer])}));
}).catch(e => { console.error(String(e)); process.exit(2); });
"""


def _khronos_validate(path: Path) -> dict:
    import json
    import os
    import shutil
    import subprocess

    if shutil.which("node") is None or not VALIDATOR.exists():
        pytest.skip("Khronos glTF validator not installed: run `npm ci` at the repository root")
    env = {**os.environ, "NODE_PATH": str(REPO / "node_modules")}
    out = subprocess.run(["node", "-e", VALIDATE_JS, str(path)], capture_output=True, text=True, timeout=120,
                         env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name,suffix", [("lin", ".vrm"), ("photo:astronaut", ".vrm")])
def test_export_passes_the_khronos_validator_and_round_trips(rt, tmp_path, name, suffix):
    from facestage.avatar.gltf_export import VRM_PRESETS, export_glb

    av = load_avatar(name)
    path = export_glb(av, tmp_path / f"out{suffix}")
    report = _khronos_validate(path)
    assert report["errors"] == 0, report
    back, _ = _load(path)
    a_skel, a_skins = av.skinning()
    b_skel, b_skins = back.skinning()
    assert b_skel.names == a_skel.names and list(b_skel.parents) == list(a_skel.parents)
    np.testing.assert_allclose(b_skel.rest, a_skel.rest, atol=1e-5)
    assert b_skel.humanoid == a_skel.humanoid
    for pa, pb, (ja, wa), (jb, wb) in zip(av.parts, back.parts, a_skins, b_skins, strict=True):
        np.testing.assert_allclose(pb.positions, pa.positions, atol=1e-6)
        np.testing.assert_allclose(wb, wa, atol=1e-6)
        np.testing.assert_array_equal(np.where(wa > 0, jb, 0), np.where(wa > 0, ja, 0))
        assert (pa.deltas is None) == (pb.deltas is None)
        if pa.deltas is not None:
            np.testing.assert_allclose(pb.deltas, pa.deltas, atol=1e-6)
    assert back.meta["arkit_shapes"] == av.meta.get("arkit_shapes", back.meta["arkit_shapes"])
    state = {"jawOpen": 0.6, "eyeBlinkLeft": 1.0}
    a = rt.render(av, state, yaw=25, pitch=-10)
    b = rt.render(back, state, yaw=25, pitch=-10)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
    if suffix == ".vrm":
        import pygltflib

        vrm = pygltflib.GLTF2.load_binary(str(path)).extensions["VRMC_vrm"]
        assert vrm["specVersion"] == "1.0" and vrm["lookAt"]["type"] == "bone"
        assert set(VRM_PRESETS) <= set(vrm["expressions"]["preset"])
        assert len(vrm["expressions"]["custom"]) == 52  # perfect sync: all ARKit shapes by name
        if not name.startswith("photo:"):  # a photo avatar's texture is the photographed person's, not CC0
            assert vrm["meta"]["otherLicenseUrl"].startswith("https://creativecommons.org/publicdomain/zero")
        else:
            assert "otherLicenseUrl" not in vrm["meta"]
        assert {"hips", "head", "neck", "leftEye", "rightEye"} <= set(vrm["humanoid"]["humanBones"])
        assert len(back.meta["arkit_shapes"]) == 52


def test_vrm_export_of_an_avatar_without_a_humanoid_skeleton_is_a_clear_error(tmp_path):
    from facestage.avatar.gltf_export import export_glb
    from facestage.avatar.model import Avatar, Material, MeshPart

    tri = MeshPart("tri", np.eye(3, dtype=np.float32), np.tile(np.float32([0, 0, 1]), (3, 1)),
                   np.array([[0, 1, 2]], np.uint32), Material("m"))
    with pytest.raises(InputError, match="humanoid"):
        export_glb(Avatar("bare", [tri]), tmp_path / "bare.vrm")  # no skeleton: a made-up three-joint skin
    assert not (tmp_path / "bare.vrm").exists()


ASSIMP = Path("/usr/share/assimp/models/glTF2")  # Debian's assimp-testmodels (Khronos glTF samples)


@pytest.mark.skipif(not (ASSIMP / "simple_skin").exists(), reason="apt-get install assimp-testmodels")
def test_assimp_testmodels_skin_and_morph_samples(rt):
    skin, warned = _load(ASSIMP / "simple_skin" / "simple_skin.gltf")
    assert any("animation" in w for w in warned)
    skel, skins = skin.skinning()
    joints, weights = skins[0]
    leaf = skel.joint_count - 1  # the skin's last joint bends the strip's upper half
    inf = _subtree_influence(skel, joints, weights, leaf)
    assert (inf > 0.5).any() and (inf == 0).any()
    d = _moved(skin, {leaf: (0.0, 0.0, 40.0)})[0]
    assert d[inf > 0.5].min() > 1e-3 and d[inf == 0].max() < 1e-6
    a = rt.render(skin, framing="head")
    b = rt.render(skin, framing="head", pose={leaf: (0.0, 0.0, 40.0)})
    assert (np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 30).sum() > 20
    cube, warned = _load(ASSIMP / "glTF-Sample-Models" / "AnimatedMorphCube-glTF" / "AnimatedMorphCube.gltf")
    assert len(cube.meta["arkit_missing"]) == 52  # its two targets are not ARKit shapes: reported, not guessed
    assert rt.render(cube, framing="head")[:, :, 3].sum() > 0


@pytest.mark.parametrize("axis", [(1, 1, 0), (0, 1, 1), (1, 0, 0), (1, -2, 3)])
@pytest.mark.parametrize("angle_deg", [30.0, 179.0, 180.0])
def test_joint_transforms_survive_export_and_import_near_a_half_turn(axis, angle_deg) -> None:
    """A joint's local matrix → glTF TRS → node matrix is the identity map, 180° turns included (the exporter's
    own matrix→quaternion code took the axis from the largest diagonal entry and broke there)."""
    from types import SimpleNamespace

    import cv2

    from facestage.avatar.gltf_export import _trs
    from facestage.avatar.gltf_io import _node_matrix

    rvec = np.asarray(axis, float) / np.linalg.norm(axis) * np.deg2rad(angle_deg)
    m = np.eye(4)
    m[:3, :3] = cv2.Rodrigues(rvec)[0] @ np.diag([1.0, 1.2, 0.9])
    m[:3, 3] = [0.1, -0.2, 0.3]
    t, q, s = _trs(m)
    back = _node_matrix(SimpleNamespace(matrix=None, translation=t, rotation=q, scale=s))
    np.testing.assert_allclose(back, m, atol=1e-6)
