"""``facestage effects``: apply an effect chain to an image or a video (audio kept), or list effects."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ConfigError, InputError
from ..mediaio import IMAGE_SUFFIXES

VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "effects", help="apply face effects to an image or video",
        description="Apply an effect chain (preset, JSON config and/or --set values) to an image or a "
                    "video; a video's audio track is kept. 'facestage effects --list' lists effects.")
    p.add_argument("input", nargs="?", help="input image or video")
    p.add_argument("-o", "--output", help="output image or video file")
    p.add_argument("--preset", help="start from a shipped preset (see --list)")
    p.add_argument("--config", help="JSON file with a chain {effect: {param: value}}")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="EFFECT.PARAM=VALUE",
                   help="set one parameter (repeatable), e.g. --set beauty.smooth=0.6")
    p.add_argument("--max-faces", type=int, default=4, help="faces to track (default 4)")
    p.add_argument("--list", action="store_true", help="list every effect, parameter, range and default")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p.set_defaults(func=run)


def parse_sets(sets: list[str]) -> dict:
    """['beauty.smooth=0.5', ...] -> {'beauty': {'smooth': 0.5}} (typed by the parameter declaration)."""
    from ..effects.base import REGISTRY, load_builtin

    load_builtin()
    out: dict[str, dict] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        effect, dot, param = key.strip().partition(".")
        if not sep or not dot or not effect or not param:
            raise ConfigError(f"--set {item!r}: expected EFFECT.PARAM=VALUE, e.g. beauty.smooth=0.6")
        if effect not in REGISTRY:
            raise ConfigError(f"unknown effect {effect!r}; available: {', '.join(sorted(REGISTRY))}")
        decl = REGISTRY[effect].params
        if param not in decl:
            raise ConfigError(f"effect {effect!r} has no parameter {param!r}; parameters: {', '.join(decl)}")
        out.setdefault(effect, {})[param] = decl[param].parse(value.strip(), f"{effect}.{param}")
    return out


def build_config(preset: str | None, config_path: str | None, sets: list[str]) -> dict:
    from ..effects import load_preset, merge_configs, normalize_config

    parts = []
    if preset:
        parts.append(load_preset(preset))
    if config_path:
        p = Path(config_path)
        if not p.is_file():
            raise InputError(f"no such config file: {p}")
        try:
            parts.append(json.loads(p.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p} is not valid JSON: {exc}") from None
        if not isinstance(parts[-1], dict):
            raise ConfigError(f"{p}: an effect chain is a JSON object {{effect: {{param: value}}}}")
    parts.append(parse_sets(sets))
    config = merge_configs(*parts)
    normalize_config(config)
    if not config:
        raise ConfigError("no effects chosen: give --preset, --config or --set (see facestage effects --list)")
    return config


def print_list(as_json: bool) -> None:
    from ..effects import list_effects, list_presets
    from ..effects.chain import effect_descriptions

    effects = list_effects()
    if as_json:
        print(json.dumps({"effects": effects, "presets": list_presets()}, indent=2))
        return
    desc = effect_descriptions()
    for name, params in effects.items():
        print(f"{name}: {desc[name]}")
        for pname, spec in params.items():
            if spec["type"] in ("float", "int"):
                rng = f"[{spec['min']:g}, {spec['max']:g}]"
            elif spec["type"] == "choice":
                rng = "{" + ", ".join(spec["choices"]) + "}"
            else:
                rng = spec["type"]
            print(f"  {name + '.' + pname:<26} {rng:<26} default {spec['default']!r:<10} {spec['description']}")
    print("presets: " + ", ".join(list_presets()))


def run(args: argparse.Namespace) -> int:
    if args.list:
        print_list(args.json)
        return 0
    if not args.input:
        raise InputError("give an INPUT image or video (or --list)")
    if not args.output:
        raise InputError("give an output file with -o OUTPUT")
    if not 1 <= args.max_faces <= 16:
        raise ConfigError("--max-faces must be between 1 and 16")
    config = build_config(args.preset, args.config, args.sets)

    from ..mediaio import open_source

    if args.input.isdigit():
        raise InputError("camera input is live: use 'facestage serve' for live effects")
    source = open_source(args.input)
    out = Path(args.output)
    suffix = out.suffix.lower()
    if source.is_still and suffix not in IMAGE_SUFFIXES:
        raise InputError(f"output {out} must be an image ({', '.join(sorted(IMAGE_SUFFIXES))}) for an image input")
    if not source.is_still and suffix not in VIDEO_OUT_SUFFIXES:
        raise InputError(f"output {out} must be a video ({', '.join(sorted(VIDEO_OUT_SUFFIXES))})")
    if out.resolve() == Path(args.input).resolve():
        raise InputError("output would overwrite the input; choose another -o path")

    from ..effects import EffectChain
    from ..effects_pipeline import EffectsPipeline
    from ..tracking import FaceTracker

    chain = EffectChain(config)
    if source.is_still:
        import cv2

        with FaceTracker(max_faces=args.max_faces, static=True) as tracker:
            _, t, frame = next(source.frames())
            result = EffectsPipeline(tracker, chain).process(frame, t).image
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), result):
            raise InputError(f"could not write {out}")
        print(f"wrote {out}", file=sys.stderr)
        return 0
    process_video(source, Path(args.input), out, chain, args.max_faces)
    return 0


def process_video(source, input_path: Path, out: Path, chain, max_faces: int,  # noqa: ANN001
                  on_pipeline=None) -> None:  # noqa: ANN001
    """Run every frame through one EffectsPipeline with the container's timestamps (``on_pipeline``, if
    given, receives the pipeline before the first frame: tests read its recorded timestamps)."""
    from tqdm import tqdm

    from ..effects_pipeline import EffectsPipeline
    from ..mediaio import VideoWriter
    from ..tracking import FaceTracker

    has_audio = _has_audio(input_path)
    ffmpeg = shutil.which("ffmpeg")
    if has_audio and not ffmpeg:
        print("facestage: warning: ffmpeg not found, the audio track is dropped", file=sys.stderr)
    tmpdir = tempfile.mkdtemp(prefix="facestage-fx-", dir=str(out.parent) if out.parent.exists() else None)
    try:
        video_path = Path(tmpdir) / f"video{out.suffix}" if has_audio and ffmpeg else out
        writer = None
        count = 0
        with FaceTracker(max_faces=max_faces, static=False) as tracker:
            flow = EffectsPipeline(tracker, chain)
            if on_pipeline is not None:
                on_pipeline(flow)
            frames = ((frame, t) for _, t, frame in tqdm(source.frames(), total=source.frame_count, unit="frame",
                                                         desc=out.name, file=sys.stderr, disable=None))
            for res in flow.run(frames):
                if writer is None:
                    w, h = res.size
                    writer = VideoWriter(video_path, source.fps, (w, h))
                writer.write(res.image)
                count += 1
        if writer is None:
            raise InputError(f"{input_path} contains no video frames")
        writer.close()
        if video_path != out:
            _mux_audio(ffmpeg, video_path, input_path, out)
        print(f"wrote {out} ({count} frames{', audio kept' if video_path != out else ''})", file=sys.stderr)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _has_audio(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as c:
            return len(c.streams.audio) > 0
    except (av.error.FFmpegError, OSError):
        return False


def _mux_audio(ffmpeg: str, video: Path, source: Path, out: Path) -> None:
    """Copy the processed video stream and the source's first audio track into ``out``."""
    audio_codec = "copy" if out.suffix.lower() in (".mkv", ".mov") else "aac"
    cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(video), "-i", str(source),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", audio_codec, "-shortest", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise InputError(f"could not mux the audio track into {out}: {res.stderr.strip()[-300:]}")
