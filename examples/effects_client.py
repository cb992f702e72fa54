"""Send a photo or a video through a running facestage server's effects session and save the result.

    python -m facestage serve &                      # or: make run
    python examples/effects_client.py --preset glam --input me.jpg --output me-glam.jpg
    python examples/effects_client.py --preset old-70 --input clip.mp4 --output clip-old.mp4

Without --input it uses the astronaut test photo that ships with scikit-image.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import cv2

from facestage.client import Client


async def main(args: argparse.Namespace) -> None:
    from facestage.mediaio import VideoWriter, open_source

    async with Client.connect(args.url) as c:
        started = await c.start("effects", preset=args.preset, faces=True)
        print("effects:", ", ".join(started["effects"]) or "none")
        if args.input:
            frames = (img for _, _, img in open_source(args.input).frames())
        else:
            from facestage import testdata

            frames = iter([testdata.astronaut()])
        writer = None
        faces: list = []
        t0, n = time.perf_counter(), 0
        for img in frames:
            out, faces = await c.process(img)
            n += 1
            if args.output.endswith((".jpg", ".png")):
                cv2.imwrite(args.output, out)
                break
            if writer is None:
                writer = VideoWriter(args.output, 30.0, (out.shape[1], out.shape[0]))
            writer.write(out)
            if args.frames and n >= args.frames:
                break
        if writer is not None:
            writer.close()
        dt = time.perf_counter() - t0
        print(f"{n} frame(s), {len(faces)} face(s) in the last, {n / dt:.1f} fps round trip -> {args.output}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/ws")
    p.add_argument("--preset", default="natural", help="natural, glam, young, old-70")
    p.add_argument("--input", help="photo or video (default: the astronaut test photo)")
    p.add_argument("--output", default="effects-out.jpg", help=".jpg/.png for one frame, .mp4 for video")
    p.add_argument("--frames", type=int, default=0, help="stop after this many video frames (0 = all)")
    asyncio.run(main(p.parse_args()))
