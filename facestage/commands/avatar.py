"""``facestage avatar list|render|create|export|drive``: digital humans from the command line."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("avatar", help="list, render, create, export and drive avatars",
                       description="3D digital humans with 52 ARKit blendshapes.")
    asub = p.add_subparsers(dest="avatar_command", metavar="ACTION")

    ls = asub.add_parser("list", help="list the available avatars")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)

    r = asub.add_parser("render", help="render one still to PNG (RGBA, transparent background by default)")
    r.add_argument("--avatar", default="ava", help="built-in name, photo:NAME or a .glb/.gltf/.vrm file")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="ARKit blendshape value 0..1, repeatable (e.g. --set jawOpen=0.8)")
    r.add_argument("--expression", default=None, help="happy, surprised, sad, angry, thinking or neutral")
    _pose_args(r)
    r.add_argument("-o", "--output", required=True, help="output .png (or .jpg)")
    r.set_defaults(func=_render)

    c = asub.add_parser("create", help="make a photo avatar from one frontal photo and save it as GLB")
    c.add_argument("--from-photo", required=True, dest="photo", help="a frontal face photo")
    c.add_argument("-o", "--output", required=True, help="output .glb")
    c.set_defaults(func=_create)

    e = asub.add_parser("export", help="export an avatar as skinned GLB or VRM 1.0 with its 52 morph targets")
    e.add_argument("name", help="built-in name, photo:NAME or a model file")
    e.add_argument("-o", "--output", required=True, help="output .glb, or .vrm for VRM 1.0")
    e.set_defaults(func=_export)

    d = asub.add_parser("drive", help="make the avatar perform what the face in a video does")
    d.add_argument("input", help="input video (or image)")
    d.add_argument("--avatar", default="ava", help="built-in name, photo:NAME or a model file")
    d.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    d.add_argument("--side-by-side", action="store_true", help="put the input frame beside the avatar")
    d.add_argument("--size", type=int, default=384, help="avatar frame size in pixels (default 384)")
    d.add_argument("--framing", default="head", choices=("head", "bust"))
    d.add_argument("--renderer", default="moderngl", choices=("moderngl", "pyrender"))
    d.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    d.add_argument("--background", default="#1e2230", help="colour (#rrggbb) or image path")
    d.set_defaults(func=_drive)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _pose_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("--yaw", type=float, default=0.0, help="degrees, + turns to the avatar's left")
    r.add_argument("--pitch", type=float, default=0.0, help="degrees, + looks up")
    r.add_argument("--roll", type=float, default=0.0, help="degrees, + tilts to the avatar's left")
    r.add_argument("--size", type=int, default=512, help="image size in pixels (default 512)")
    r.add_argument("--framing", default="head", choices=("head", "bust", "photo"))
    r.add_argument("--renderer", default="moderngl", choices=("moderngl", "pyrender"))
    r.add_argument("--msaa", type=int, default=4, help="MSAA samples for moderngl (0 = off)")
    r.add_argument("--background", default=None, help="none (transparent), a colour #rrggbb or an image path")


def _list(args: argparse.Namespace) -> int:
    from ..avatar import list_avatars

    items = list_avatars()
    if args.json:
        print(json.dumps(items, indent=2))
    else:
        for it in items:
            print(f"{it['name']:<20} {it['kind']:<8} {it['description']}")
    return 0


def parse_sets(items: list[str]) -> dict[str, float]:
    from ..tracking.arkit import ARKIT_INDEX

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects NAME=VALUE, got {item!r}")
        if name not in ARKIT_INDEX:
            raise ConfigError(f"unknown blendshape {name!r} (ARKit names, e.g. jawOpen, eyeBlinkLeft)")
        try:
            v = float(value)
        except ValueError:
            raise ConfigError(f"--set {name}: {value!r} is not a number") from None
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"--set {name}: value must be within 0..1, got {v}")
        out[name] = v
    return out


def parse_background(spec: str | None):
    """None/'none' → transparent; '#rrggbb' or 'r,g,b' → colour; anything else → an image file (RGB)."""
    if spec is None or spec.lower() in ("none", "transparent", ""):
        return None
    s = spec.strip()
    if s.startswith("#") and len(s) == 7:
        try:
            return tuple(int(s[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
        except ValueError:
            raise ConfigError(f"bad colour {spec!r}") from None
    if "," in s and not Path(s).exists():
        try:
            vals = [float(v) for v in s.split(",")]
        except ValueError:
            raise ConfigError(f"bad colour {spec!r}") from None
        if len(vals) != 3:
            raise ConfigError(f"bad colour {spec!r}: need r,g,b")
        return tuple(vals)
    from ..mediaio import read_image

    return np.ascontiguousarray(read_image(s)[:, :, ::-1])


def _write_image(path: Path, rgba: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        ok = cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR))
    else:
        ok = cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise InputError(f"cannot write {path} (use .png or .jpg)")


def _render(args: argparse.Namespace) -> int:
    from ..avatar import load_avatar
    from ..avatar.rig import Rig
    from ..rendering import RenderThread

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not 16 <= args.size <= 4096:
        raise ConfigError("--size must be within 16..4096")
    sets = parse_sets(args.set)
    avatar = load_avatar(args.avatar)
    state = None
    if args.expression:
        state = Rig(avatar).expression_state(args.expression)
        state.blendshapes.update(sets)
    background = parse_background(args.background)
    if args.framing == "photo" and background is None and "photo_rgb" in avatar.meta:
        background = avatar.meta["photo_rgb"]
    rt = RenderThread(size=args.size, backend=args.renderer, msaa=args.msaa, lod="full")
    try:
        rgba = rt.render(avatar, state if state is not None else sets, yaw=args.yaw, pitch=args.pitch,
                         roll=args.roll, size=_out_size(avatar, args), background=background, framing=args.framing)
    finally:
        rt.close()
    _write_image(Path(args.output), rgba)
    print(f"wrote {args.output} ({rgba.shape[1]}x{rgba.shape[0]}, {avatar.name}, {args.renderer})")
    return 0


def _out_size(avatar, args) -> int | tuple[int, int]:
    if args.framing == "photo" and "photo_size" in avatar.meta:
        w, h = avatar.meta["photo_size"]
        s = args.size / max(w, h)
        return int(round(w * s)), int(round(h * s))
    return args.size


def _export(args: argparse.Namespace) -> int:
    from ..avatar import load_avatar
    from ..avatar.gltf_io import export_glb

    avatar = load_avatar(args.name)
    out = export_glb(avatar, args.output)
    kind = "VRM 1.0" if out.suffix.lower() == ".vrm" else "GLB"
    print(f"wrote {out} ({kind}: {avatar.vertex_count} vertices, {avatar.skinning()[0].joint_count} joints, "
          f"52 morph targets, {out.stat().st_size // 1024} KB)")
    return 0


def _create(args: argparse.Namespace) -> int:
    from ..avatar.gltf_io import export_glb
    from ..avatar.photo import photo_avatar, read_photo

    img = read_photo(args.photo)
    avatar = photo_avatar(img, name=Path(args.photo).stem)  # every error is raised before anything is written
    out = export_glb(avatar, args.output)
    fit = avatar.meta["photo_fit"]
    print(f"wrote {out} ({avatar.vertex_count} vertices, {avatar.skinning()[0].joint_count} joints, 52 morph "
          f"targets; landmark fit {fit['rms_px']} px rms, {fit['seconds']} s)")
    return 0


def _drive(args: argparse.Namespace) -> int:
    from .. import avatar as avatar_pkg
    from ..avatar.drive import drive_video

    avatar = avatar_pkg.load_avatar(args.avatar)
    stats = drive_video(args.input, avatar, args.output, size=args.size, side_by_side=args.side_by_side,
                        framing=args.framing, renderer=args.renderer, max_frames=args.max_frames,
                        background=parse_background(args.background), progress=True)
    print(f"wrote {args.output}: {stats['frames']} frames, face found in {stats['tracked']}, "
          f"{stats['ms_per_frame']:.1f} ms/frame")
    return 0
