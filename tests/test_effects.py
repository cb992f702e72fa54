"""Effect engine API, validation, presets and the ``facestage effects`` CLI (real processes, real media)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from facestage import testdata
from facestage.effects import EffectChain, list_effects, list_presets, load_preset
from facestage.errors import ConfigError

EXPECTED = {
    "beauty": {"smooth", "whiten", "ruddy", "slim", "vchin", "eyes", "nose", "teeth", "sharpen"},
    "makeup": {"lipstick", "lipstick_color", "blush", "brows", "eyeshadow", "eyeliner"},
    "age": {"years"},
    "sticker": {"glasses", "hat", "ears"},
    "background": {"mode", "blur", "color", "image"},
    "paint": {"amount", "design", "image"},
}


def test_list_effects_declares_every_param_with_range_and_default() -> None:
    effects = list_effects()
    assert set(EXPECTED) <= set(effects)
    for name, params in EXPECTED.items():
        assert params <= set(effects[name]), name
        for pname, spec in effects[name].items():
            assert {"type", "min", "max", "default", "description"} <= set(spec), (name, pname)
            assert spec["description"]
            if spec["type"] == "float":
                assert spec["min"] <= spec["default"] <= spec["max"], (name, pname)
    assert effects["age"]["years"]["min"] == -20 and effects["age"]["years"]["max"] == 50


def test_config_is_validated_with_clear_messages() -> None:
    chain = EffectChain.from_config({"beauty": {"smooth": 0.6, "eyes": 0.3}, "age": {"years": 30}})
    cfg = chain.config
    assert cfg["beauty"]["smooth"] == 0.6 and cfg["beauty"]["whiten"] == 0.0  # defaults filled
    assert cfg["age"]["years"] == 30.0
    bad = [
        ({"glitter": {}}, "unknown effect 'glitter'"),
        ({"beauty": {"smoth": 1}}, "no parameter 'smoth'"),
        ({"beauty": {"smooth": 1.5}}, "out of range [0, 1]"),
        ({"age": {"years": -30}}, "out of range [-20, 50]"),
        ({"beauty": {"smooth": "high"}}, "expected a number"),
        ({"makeup": {"lipstick_color": "#12345"}}, "expected a colour"),
        ({"background": {"mode": "sparkle"}}, "not one of blur, replace"),
        (["beauty"], "JSON object"),
    ]
    for config, message in bad:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            EffectChain.from_config(config)
    # Colours are normalised.
    assert EffectChain({"makeup": {"lipstick_color": [200, 40, 60]}}).config["makeup"]["lipstick_color"] == "#c8283c"


def test_merge_configs_overrides_and_switches_off() -> None:
    from facestage.effects import merge_configs

    merged = merge_configs(load_preset("glam"), {"beauty": {"smooth": 0.1}, "makeup": False}, {"age": True})
    assert merged["beauty"]["smooth"] == 0.1 and merged["beauty"]["eyes"] == load_preset("glam")["beauty"]["eyes"]
    assert "makeup" not in merged and EffectChain(merged).config["age"]["years"] == 0.0
    assert "beauty" not in EffectChain({"beauty": False, "age": {}}).config
    for bad in (["x"], {"beauty": 3}):
        with pytest.raises(ConfigError):
            merge_configs(bad)


def test_update_keeps_state_and_rejects_bad_config_atomically() -> None:
    chain = EffectChain({"beauty": {"smooth": 0.5}, "background": {}})
    state = chain._states["background"]
    state["marker"] = 1
    chain.update({"beauty": {"smooth": 0.9}, "background": {"blur": 0.2}})
    assert chain._states["background"] is state and chain.config["beauty"]["smooth"] == 0.9
    before = chain.config
    with pytest.raises(ConfigError):
        chain.update({"beauty": {"smooth": 2}})
    assert chain.config == before


def test_presets_load_and_validate() -> None:
    names = list_presets()
    assert {"natural", "glam", "old-70", "young"} <= set(names)
    for name in names:
        EffectChain(load_preset(name))
    assert load_preset("old-70")["age"]["years"] >= 40
    assert load_preset("young")["age"]["years"] < 0
    for bad in ("nope", "../natural", ""):
        with pytest.raises(ConfigError, match="unknown preset"):
            load_preset(bad)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facestage", "effects", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_list_prints_ranges_and_defaults() -> None:
    res = _cli("--list")
    assert res.returncode == 0, res.stderr
    assert "beauty.smooth" in res.stdout and "[-20, 50]" in res.stdout and "presets:" in res.stdout
    data = json.loads(_cli("--list", "--json").stdout)
    assert data["effects"]["makeup"]["lipstick"]["max"] == 1.0


def test_cli_image_and_errors(tmp_path) -> None:  # noqa: ANN001
    src = tmp_path / "astronaut.png"
    cv2.imwrite(str(src), testdata.astronaut())
    out = tmp_path / "out.jpg"
    res = _cli(str(src), "-o", str(out), "--preset", "glam", "--set", "age.years=10")
    assert res.returncode == 0, res.stderr
    img = cv2.imread(str(out))
    assert img.shape == (512, 512, 3)
    assert np.abs(img.astype(int) - testdata.astronaut()).mean() > 0.5  # something changed
    for args, message in [
        ((str(src), "-o", str(out), "--set", "beauty.smooth=3"), "out of range"),
        ((str(src), "-o", str(out), "--set", "beauty.smoth=1"), "no parameter"),
        ((str(src), "-o", str(out), "--set", "beauty"), "EFFECT.PARAM=VALUE"),
        ((str(src), "-o", str(out), "--preset", "nope"), "unknown preset"),
        ((str(tmp_path / "missing.png"), "-o", str(out), "--preset", "natural"), "no such file"),
        ((str(src), "-o", str(tmp_path / "x.mp4"), "--preset", "natural"), "must be an image"),
        ((str(src), "-o", str(out)), "no effects chosen"),
    ]:
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr, (message, res.stderr)
    (tmp_path / "bad.json").write_text("{not json")
    res = _cli(str(src), "-o", str(out), "--config", str(tmp_path / "bad.json"))
    assert res.returncode == 2 and "not valid JSON" in res.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to make a clip with audio")
def test_cli_video_keeps_audio(tmp_path) -> None:  # noqa: ANN001
    frames = testdata.carphone_frames(limit=24)
    silent = testdata.write_video(tmp_path / "silent.avi", frames, fps=12)
    clip = tmp_path / "talk.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-shortest", str(clip)], check=True, timeout=60)
    cfg = tmp_path / "chain.json"
    cfg.write_text(json.dumps({"beauty": {"smooth": 0.8}, "makeup": {"lipstick": 0.6}}))
    out = tmp_path / "out.mp4"
    res = _cli(str(clip), "-o", str(out), "--config", str(cfg), "--set", "age.years=20")
    assert res.returncode == 0, res.stderr
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        n = sum(1 for _ in c.decode(video=0))
    assert n == 24


def test_bench_reports_every_effect_and_chain() -> None:
    import argparse

    from facestage.bench.effects import run

    result = run(argparse.Namespace(frames=3, json=True))
    assert set(result["effects"]) == {"beauty", "makeup", "age", "sticker", "paint", "background", "lut", "lut_skin",
                                      "props", "props_all"}
    assert result["faces4"] == 4
    assert result["chain_wall_ms"] == result["chain_wall"]["median"]
    for key in ("tracking_ms", "chain_ms", "chain_wall_ms", "faces4_chain_ms", "natural_old70_ms"):
        assert result[key] > 0, key
    assert 200 < result["face_width_px"] < 400  # a real 720p face was tracked (timing itself is not asserted)
    assert result["threads"] == 1  # cv2 and the BLAS pinned to one core while timing
    for key in ("chain_cpu_ms", "faces4_chain_cpu_ms", "natural_old70_cpu_ms"):
        assert result[key] > 0, key
    assert set(result["effects_cpu"]) == set(result["effects"])


def test_unreadable_image_parameters_raise_config_errors_naming_the_parameter(tmp_path) -> None:  # noqa: ANN001
    from facestage.effects.background import Background
    from facestage.effects.paint import load_design
    from facestage.effects.sticker import Sticker

    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    rgb = tmp_path / "rgb.png"
    cv2.imwrite(str(rgb), np.zeros((8, 8, 3), np.uint8))
    frame = np.zeros((16, 16, 3), np.uint8)
    for bad in (junk, tmp_path / "missing.png", tmp_path):
        with pytest.raises(ConfigError, match="sticker.image: cannot read"):
            Sticker._custom(str(bad), {})
        with pytest.raises(ConfigError, match="paint.image: cannot read"):
            load_design(str(bad))
        with pytest.raises(ConfigError, match="background.image: cannot read"):
            Background._background(frame, {"mode": "replace", "image": str(bad), "color": "#00ff00"}, {})
    with pytest.raises(ConfigError, match="not an RGBA PNG"):  # readable, but no alpha for a UV design
        load_design(str(rgb))
    bgra = Sticker._custom(str(rgb), {})  # stickers accept plain colour images, made opaque
    assert bgra.shape == (8, 8, 4) and (bgra[..., 3] == 255).all()


def test_path_parameters_resolve_local_files_only_through_the_trusted_resolver(tmp_path) -> None:  # noqa: ANN001
    """The library/CLI reads a local user's files (TRUSTED_FILES); the server's resolver takes names only,
    with one message for a readable file, a missing one and a folder (nothing learnt about the disk)."""
    from facestage.effects.base import TRUSTED_FILES, read_param_image
    from facestage.serving.assets import NamedAssets

    rgb = tmp_path / "rgb.png"
    cv2.imwrite(str(rgb), np.zeros((8, 8, 3), np.uint8))
    assert read_param_image("background.image", str(rgb), cv2.IMREAD_COLOR, TRUSTED_FILES).shape == (8, 8, 3)
    named = NamedAssets(tmp_path / "uploads", brand=None)
    messages = set()
    for value in (str(rgb), str(tmp_path / "missing.png"), str(tmp_path), "../rgb.png", "upload:rgb.png"):
        with pytest.raises(ConfigError) as exc:
            read_param_image("background.image", value, cv2.IMREAD_COLOR, named)
        assert str(tmp_path) not in str(exc.value)
        messages.add(str(exc.value).replace("'upload:rgb.png'", "this value"))
    assert len(messages) == 1
    glasses = read_param_image("sticker.image", "glasses", cv2.IMREAD_UNCHANGED, named)
    assert glasses.ndim == 3 and glasses.shape[2] == 4
