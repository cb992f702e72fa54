"""``facestage track``: face landmarks, head pose and ARKit blendshapes for an image, video or camera."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO

from ..errors import ConfigError
from ..mediaio import IMAGE_SUFFIXES

VIDEO_OUT_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track", help="track faces: landmarks, head pose, ARKit blendshapes",
        description="Track faces in an image, a video file or a camera (give its index, e.g. 0). "
                    "Prints a summary, or with --json one JSON object per frame: "
                    '{"frame", "time", "faces": [{"id", "bbox", "landmarks", "pose", "blendshapes"}]}.',
        epilog="Examples: facestage track photo.jpg --json | facestage track clip.mp4 --out clip.jsonl "
               "--preview clip_tracked.mp4 | facestage track 0 --frames 300 --preview cam.mp4")
    p.add_argument("input", help="image file, video file or camera index")
    p.add_argument("--max-faces", type=int, default=4, help="most faces to track per frame (default 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object per frame on stdout")
    p.add_argument("--out", metavar="FILE.jsonl", help="also write the per-frame JSON lines to this file")
    p.add_argument("--preview", metavar="OUT",
                   help="write the input with mesh, pose axes and strongest blendshapes drawn "
                        "(an image for an image input, .mp4/.mkv/.mov/.avi for video or camera)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="stop after N frames (default: the whole video; cameras run until Ctrl-C)")
    p.add_argument("--no-smoothing", action="store_true", help="video: report raw, unfiltered results")
    p.set_defaults(func=run)


def frame_record(index: int, time_s: float, faces: list) -> dict:
    """The JSON object of one frame (the documented ``--json`` shape)."""
    out = []
    for face in faces:
        j = face.to_json(landmarks=True)
        out.append({"id": j["id"], "bbox": j["bbox"], "landmarks": j["landmarks"], "pose": j["pose"],
                    "blendshapes": j["blendshapes"]})
    return {"frame": int(index), "time": round(float(time_s), 4), "faces": out}


def _check_args(args: argparse.Namespace, kind: str) -> None:
    if args.max_faces < 1:
        raise ConfigError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.frames is not None and args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    if args.preview:
        suffix = Path(args.preview).suffix.lower()
        wanted = IMAGE_SUFFIXES if kind == "image" else VIDEO_OUT_SUFFIXES
        if suffix not in wanted:
            what = "an image" if kind == "image" else "a video"
            raise ConfigError(f"--preview {args.preview}: the input is {what}, so the preview must end in "
                              f"one of {', '.join(sorted(wanted))}")


def run(args: argparse.Namespace) -> int:
    from ..mediaio import open_source

    source = open_source(args.input)  # raises InputError on a missing/unreadable input or camera
    _check_args(args, source.kind)
    from ..tracking import FaceTracker
    from ..tracking.drawing import draw_faces

    out_file: IO[str] | None = None
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        out_file = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
    writer = None
    frames_done = faces_total = 0
    frames_with_face = 0
    last_faces: list = []
    total = source.frame_count if args.frames is None else min(args.frames, source.frame_count or args.frames)
    progress = None
    if source.kind != "image":
        from tqdm import tqdm

        progress = tqdm(total=total, unit="frame", desc=f"tracking {source.name}", file=sys.stderr)
    try:
        with FaceTracker(max_faces=args.max_faces, static=source.is_still,
                         smoothing=None if args.no_smoothing else True) as tracker:
            for index, time_s, frame in source.frames():
                faces = tracker.track(frame, time_s)
                record = frame_record(index, time_s, faces)
                line = json.dumps(record, separators=(",", ":"))
                if args.json:
                    print(line, flush=source.kind == "camera")
                if out_file is not None:
                    out_file.write(line + "\n")
                if args.preview:
                    if source.kind == "image":
                        _write_image(args.preview, draw_faces(frame.copy(), faces))
                    else:
                        if writer is None:
                            from ..mediaio import VideoWriter

                            h, w = frame.shape[:2]
                            writer = VideoWriter(args.preview, source.fps or 30.0, (w, h))
                        writer.write(draw_faces(frame, faces))
                frames_done += 1
                faces_total += len(faces)
                frames_with_face += bool(faces)
                last_faces = faces
                if progress is not None:
                    progress.update(1)
                if args.frames is not None and frames_done >= args.frames:
                    break
    finally:
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.close()
        if out_file is not None:
            out_file.close()
    if not args.json:
        _summary(source.name, source.kind, frames_done, frames_with_face, faces_total, last_faces, args)
    return 0


def _write_image(path: str, image) -> None:  # noqa: ANN001 - BGR ndarray
    import cv2

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(p.suffix.lower(), image)
    if not ok:
        raise ConfigError(f"cannot encode the preview as {p.suffix}")
    p.write_bytes(buf.tobytes())


def _summary(name: str, kind: str, frames: int, with_face: int, faces_total: int, last_faces: list,
             args: argparse.Namespace) -> None:
    from ..tracking.drawing import top_blendshapes

    print(f"{name}: {frames} frame(s), a face in {with_face}, {faces_total} face detection(s)")
    for face in last_faces:
        p = face.pose
        tops = ", ".join(f"{n} {v:.2f}" for n, v in top_blendshapes(face, 5))
        label = "face" if kind == "image" else "last frame face"
        print(f"  {label} {face.id}: bbox {[round(v) for v in face.bbox]}, yaw {p.yaw:+.1f} pitch {p.pitch:+.1f} "
              f"roll {p.roll:+.1f} deg, distance {p.translation[2]:.2f} m; {tops or 'neutral'}")
    if args.out:
        print(f"  wrote {args.out}")
    if args.preview:
        print(f"  wrote {args.preview}")
