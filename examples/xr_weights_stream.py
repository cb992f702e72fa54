"""Stream a face as ARKit weights + head pose, without pixels (how an XR headset drives its own avatar),
and optionally forward it as VMC (OSC/UDP) to VSeeFace, Unity or any VMC receiver.

    python examples/xr_weights_stream.py                       # the carphone test clip
    python examples/xr_weights_stream.py --input clip.mp4 --vmc 127.0.0.1:39539
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np

from facestage.client import Client
from facestage.serving import Frame, Kind
from facestage.tracking import ARKIT_NAMES


async def main(a: argparse.Namespace) -> None:
    if a.input:
        from facestage.mediaio import open_source

        frames = [img for _, _, img in open_source(a.input).frames()][: a.frames]
    else:
        from facestage import testdata

        frames = testdata.carphone_frames(limit=a.frames)
    opts: dict = {"pixels": False, "weights": "binary"}
    if a.vmc:
        host, port = a.vmc.rsplit(":", 1)
        opts["vmc"] = {"host": host, "port": int(port)}
    jaw = ARKIT_NAMES.index("jawOpen")
    async with Client.connect(a.url) as c:
        await c.start("avatar", **opts)
        total = 0
        for img in frames:
            seq = await c.send_frame(img)
            while True:
                msg = await c.recv()
                if isinstance(msg, Frame) and msg.kind == Kind.WEIGHTS and msg.seq == seq:
                    break
            w = np.frombuffer(msg.payload, "<f2").astype(np.float32)  # 52 weights, then yaw, pitch, roll
            total += len(msg.payload) + 16
            print(f"frame {seq:3d}  jawOpen {w[jaw]:.2f}  yaw {w[52]:+6.1f}  pitch {w[53]:+6.1f}  roll {w[54]:+6.1f}")
    print(f"{total / max(len(frames), 1):.0f} bytes per frame")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/ws")
    p.add_argument("--input", help="a video file (default: the carphone test clip)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--vmc", help="also send VMC to HOST:PORT")
    asyncio.run(main(p.parse_args()))
