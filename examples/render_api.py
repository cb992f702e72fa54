"""Render an avatar through the HTTP API: JSON in, a PNG with transparency out. Standard library only.

    python examples/render_api.py --avatar kai --expression happy --yaw 15 --output kai.png
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request


def render(url: str, **params: object) -> bytes:
    req = urllib.request.Request(url.rstrip("/") + "/v1/render", json.dumps(params).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read()
    except urllib.error.HTTPError as e:  # the server explains what was wrong in JSON
        raise SystemExit(f"render failed ({e.code}): {json.loads(e.read())['message']}") from None


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8765")
    p.add_argument("--avatar", default="ava", help="ava, kai, mira, photo:astronaut, photo:grace_hopper")
    p.add_argument("--expression", default=None, help="happy, surprised, sad, angry, thinking")
    p.add_argument("--jaw", type=float, default=0.0, help="jawOpen 0..1")
    p.add_argument("--yaw", type=float, default=0.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--output", default="avatar.png")
    a = p.parse_args()
    params = {"avatar": a.avatar, "size": a.size, "yaw": a.yaw, "blendshapes": {"jawOpen": a.jaw}, "format": "png"}
    if a.expression:
        params["expression"] = a.expression
    data = render(a.url, **params)
    with open(a.output, "wb") as f:
        f.write(data)
    print(f"{len(data)} bytes -> {a.output}")
