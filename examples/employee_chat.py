"""Ask a brand's virtual employee a question; save the spoken answer as WAV and the lip-synced frames.

    python examples/employee_chat.py "Do you deliver to Easton?"          # the demo brand (key from /v1/demo)
    python examples/employee_chat.py --brand acme --key fs_... "Opening hours?"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
import wave
from pathlib import Path

from facestage.client import Client, decode_image


async def main(a: argparse.Namespace) -> None:
    if not a.key:  # the demo brand's key is handed out to clients on the same machine
        http = a.url.replace("ws://", "http://").split("/v1/")[0]
        demo = json.loads(urllib.request.urlopen(http + "/v1/demo", timeout=30).read())
        a.brand, a.key = demo["brand"], demo["key"]
    async with Client.connect(a.url) as c:
        hello = await c.start("employee", brand=a.brand, key=a.key, size=256, fps=25, frames=a.frames_dir is not None)
        print(f"{hello['name']} ({hello['company']}): {hello['greeting']}")
        reply = await c.say(a.question)
    print(f"> {a.question}\n{reply.text}")
    print(f"audio {reply.duration_s:.2f} s at {reply.sample_rate} Hz, {len(reply.visemes)} visemes, "
          f"{len(reply.frames)} frames")
    with wave.open(a.wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(reply.sample_rate)
        w.writeframes(reply.pcm.tobytes())
    print(f"voice -> {a.wav}")
    if a.frames_dir:
        import cv2

        out = Path(a.frames_dir)
        out.mkdir(parents=True, exist_ok=True)
        for f in reply.frames:  # timestamp = media time in ms: show frame when the audio reaches it
            cv2.imwrite(str(out / f"{int(f.timestamp):06d}ms.png"), decode_image(f))
        print(f"frames -> {out}/")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question")
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/ws")
    p.add_argument("--brand", default="demo")
    p.add_argument("--key", default=None, help="the brand's API key (default: ask the local server for the demo key)")
    p.add_argument("--wav", default="reply.wav")
    p.add_argument("--frames-dir", default=None, help="also save the lip-synced frames here")
    asyncio.run(main(p.parse_args()))
