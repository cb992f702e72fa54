"""Before/after gallery for the README: ``python -m facestage.tools.gallery docs/img`` (``make gallery``).

Runs the shipped presets and a few effects on the package photos (astronaut, Grace Hopper) and writes
side-by-side JPEGs, each compressed until it is at most 120 KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ..effects import EffectChain, load_preset
from ..testdata import astronaut, grace_hopper
from ..tracking import FaceTracker

MAX_BYTES = 120_000
SHOTS = [  # (file, photo, chain, caption)
    ("natural.jpg", "astronaut", "natural", "natural"),
    ("glam.jpg", "astronaut", "glam", "glam"),
    ("old-70.jpg", "astronaut", "old-70", "old-70"),
    ("young.jpg", "grace", "young", "young"),
    ("fun.jpg", "grace", {"sticker": {"glasses": 1.0}, "paint": {"amount": 0.9, "design": "hearts"}},
     "sticker + paint"),
    ("tiger.jpg", "astronaut", {"paint": {"amount": 0.85, "design": "tiger"}, "sticker": {"ears": 1.0}},
     "paint + ears"),
]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _crop(img: np.ndarray, bbox: tuple, pad: float = 0.6) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * h
    half = max(w, h) * (0.5 + pad)
    ih, iw = img.shape[:2]
    a, b = int(max(cx - half, 0)), int(min(cx + half, iw))
    c, d = int(max(cy - half, 0)), int(min(cy + half, ih))
    return cv2.resize(img[c:d, a:b], (360, int(360 * (d - c) / max(b - a, 1))), interpolation=cv2.INTER_AREA)


def write_jpeg(path: Path, img: np.ndarray, max_bytes: int = MAX_BYTES) -> int:
    for q in range(90, 30, -5):
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
        if ok and len(data) <= max_bytes:
            break
    path.write_bytes(data.tobytes())
    return len(data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0] if args else "docs/img")
    out_dir.mkdir(parents=True, exist_ok=True)
    photos = {"astronaut": astronaut(), "grace": grace_hopper()}
    with FaceTracker(max_faces=1, static=True) as tracker:
        faces = {k: tracker.track(v) for k, v in photos.items()}
    for name, photo, chain, caption in SHOTS:
        img, ff = photos[photo], faces[photo]
        if not ff:
            raise RuntimeError(f"no face found in {photo}")
        config = load_preset(chain) if isinstance(chain, str) else chain
        after = EffectChain(config).apply(img, ff)
        pair = np.hstack([_label(_crop(img, ff[0].bbox), "before"), _label(_crop(after, ff[0].bbox), caption)])
        size = write_jpeg(out_dir / name, pair)
        print(f"{out_dir / name}: {size // 1024} KB")
    size = write_jpeg(out_dir / "avatars.jpg", avatar_sheet())
    print(f"{out_dir / 'avatars.jpg'}: {size // 1024} KB")
    return 0


AVATAR_TILE = 192
AVATAR_SHOTS = [(None, 0, "front"), (None, 30, "30 deg"), (None, -45, "-45 deg"), ("happy", 0, "happy"),
                ("surprised", 15, "surprised"), ("thinking", -10, "thinking")]


def avatar_sheet() -> np.ndarray:
    """Every built-in at three angles and three expressions (bust, anti-aliased), and the two photo
    avatars (astronaut, grace_hopper) at 0/30/45 degrees: one row per avatar, RGB→BGR for the JPEG writer."""
    from ..avatar import load_avatar
    from ..avatar.builtin import BUILTIN_SPECS
    from ..avatar.rig import Rig
    from ..rendering import RenderThread

    rows = []
    with RenderThread(size=AVATAR_TILE, msaa=4) as rt:
        for name in [*BUILTIN_SPECS, "photo:astronaut", "photo:grace_hopper"]:
            av = load_avatar(name)
            rig = Rig(av)
            shots = AVATAR_SHOTS if not name.startswith("photo:") else [(None, 0, "front"), (None, 30, "30 deg"),
                                                                          (None, 45, "45 deg")]
            tiles = []
            for expr, yaw, caption in shots:
                state = rig.expression_state(expr) if expr else None
                rgba = rt.render(av, state, yaw=yaw, framing="bust", background=(0.16, 0.17, 0.22))
                label = f"{name.removeprefix('photo:')} {caption}"
                tiles.append(_label(np.ascontiguousarray(rgba[:, :, 2::-1]), label))
            while len(tiles) < len(AVATAR_SHOTS):
                tiles.append(np.zeros_like(tiles[0]))
            rows.append(np.hstack(tiles))
    return np.vstack(rows)


if __name__ == "__main__":
    sys.exit(main())
