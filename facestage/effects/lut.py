"""lut: colour grading with a ``.cube`` 3D LUT, on the whole frame or on the skin only.

A ``.cube`` file (Resolve/Adobe format, read by colour-science's ``colour.io.read_LUT``) is resampled
once with tetrahedral interpolation onto a 128³ grid (7 bits per channel) and packed as one uint32 per
node (B, G, R, 0). Per frame a pixel costs three 1D ``cv2.LUT`` look-ups that turn each channel into
its share of the node index, two adds and one ``np.take`` — no per-pixel interpolation. Rounding each
channel to the nearest of 128 nodes moves the input by at most one level (255/127/2), so the output is
within one level times the LUT's local slope of an exact evaluation.

Shipped looks (``warm``, ``teal-orange``, ``mono``, ``vintage``) are made by ``write_luts`` in this
module (ours, Apache-2.0 like the code) and read back through the same ``.cube`` reader as uploads.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from ..tracking.types import Face
from .base import TRUSTED_FILES, Effect, P, Param, register
from .regions import face_roi, region_masks

LUT_DIR = Path(__file__).resolve().parent.parent / "assets" / "luts"
GRID_BITS = 7  # 128 nodes per channel: input moved ≤ 1 level; table 8 MB (uint32 per node)
GRID = 1 << GRID_BITS
MAX_CUBE_SIZE = 65  # the largest common .cube size (Resolve exports 17/33/65); bigger is refused
SHIP_SIZE = 17  # shipped looks are smooth functions: 17³ nodes reproduce them within a level
CACHE_ENTRIES = 6  # packed tables are 8 MB each: a few looks per process


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def _warm(rgb: np.ndarray) -> np.ndarray:
    """Warmer white balance and a gentle S-curve."""
    out = rgb * np.array([1.08, 1.0, 0.86]) + np.array([0.02, 0.01, 0.0])
    return np.clip(out, 0, 1) ** 0.95


def _teal_orange(rgb: np.ndarray) -> np.ndarray:
    """Shadows pushed to teal, highlights (and skin) to orange, saturation kept."""
    y = _luma(rgb)[..., None]
    teal, orange = np.array([-0.06, 0.03, 0.08]), np.array([0.08, 0.02, -0.07])
    w = np.clip((y - 0.2) / 0.6, 0, 1)
    return np.clip(rgb + (1 - w) * teal + w * orange, 0, 1)


def _mono(rgb: np.ndarray) -> np.ndarray:
    """Black and white with a slight contrast curve."""
    y = _luma(rgb)
    y = np.clip(0.5 + (y - 0.5) * 1.1, 0, 1)
    return np.repeat(y[..., None], 3, axis=-1)


def _vintage(rgb: np.ndarray) -> np.ndarray:
    """Faded blacks, lowered saturation, a warm sepia cast."""
    y = _luma(rgb)[..., None]
    desat = y + (rgb - y) * 0.6
    out = 0.08 + desat * 0.84  # lifted blacks, softened whites
    return np.clip(out * np.array([1.06, 1.0, 0.88]), 0, 1)


LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "warm": _warm, "teal-orange": _teal_orange, "mono": _mono, "vintage": _vintage}


def write_cube(path: Path, table: np.ndarray, title: str) -> Path:
    """Write an (N, N, N, 3) RGB table indexed [r, g, b] as a .cube file (red varies fastest)."""
    n = table.shape[0]
    rows = table.transpose(2, 1, 0, 3).reshape(-1, 3)  # file order: b slowest, r fastest
    body = "\n".join(f"{r:.4f} {g:.4f} {b:.4f}" for r, g, b in rows)
    path.write_text(f'TITLE "{title}"\n# facestage shipped look; licence: Apache-2.0 (ours)\n'
                    f"LUT_3D_SIZE {n}\n{body}\n")
    return path


def write_luts(directory: Path = LUT_DIR) -> list[Path]:
    """Write the shipped looks as .cube files (the files in facestage/assets/luts are made by this)."""
    directory.mkdir(parents=True, exist_ok=True)
    v = np.linspace(0.0, 1.0, SHIP_SIZE)
    grid = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1)
    return [write_cube(directory / f"{name}.cube", fn(grid), f"facestage {name}") for name, fn in LOOKS.items()]


def builtin_luts() -> dict[str, Path]:
    return {name: LUT_DIR / f"{name}.cube" for name in LOOKS if (LUT_DIR / f"{name}.cube").is_file()}


def read_cube(path: Path, where: str = "lut.lut") -> object:
    """A colour-science LUT (LUT3D, LUT3x1D or a sequence) from a .cube file, or a ConfigError."""
    import colour  # lazy: ~1 s to import, only needed when a LUT is used

    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{where}: cannot read this file as a .cube LUT (not text)") from None
    for line in text.splitlines()[:64]:
        if line.strip().upper().startswith("LUT_3D_SIZE"):
            try:
                size = int(line.split()[1])
            except (IndexError, ValueError):
                raise ConfigError(f"{where}: bad LUT_3D_SIZE line in the .cube file") from None
            if not 2 <= size <= MAX_CUBE_SIZE:
                raise ConfigError(f"{where}: LUT_3D_SIZE {size} is outside 2..{MAX_CUBE_SIZE}")
    try:
        lut = colour.io.read_LUT(str(path))
    except Exception as exc:  # noqa: BLE001 - the reader raises many types for malformed files
        raise ConfigError(f"{where}: not a valid .cube LUT ({type(exc).__name__})") from None
    return lut


def pack_table(lut: object) -> np.ndarray:
    """Evaluate ``lut`` on the 128³ grid (tetrahedral for 3D tables) -> uint32 (128³,) of B | G<<8 | R<<16."""
    import colour
    from colour.algebra import table_interpolation_tetrahedral

    v = np.arange(GRID, dtype=np.float64) / (GRID - 1)
    grid = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(-1, 3)  # index r<<14 | g<<7 | b
    if isinstance(lut, colour.LUT3D):
        lo, hi = np.asarray(lut.domain, np.float64)
        rgb = lut.apply(lo + grid * (hi - lo), interpolator=table_interpolation_tetrahedral)
    else:
        rgb = lut.apply(grid)
    q = np.clip(np.nan_to_num(rgb) * 255.0 + 0.5, 0, 255).astype(np.uint32)
    return (q[:, 2] | (q[:, 1] << 8) | (q[:, 0] << 16)).astype(np.uint32)


_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_LOCK = threading.Lock()


def packed_lut(path: Path, where: str = "lut.lut") -> np.ndarray:
    """The packed table of a .cube file, cached by (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    table = pack_table(read_cube(path, where))
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return table


# Per channel: 0..255 -> its part of the node index (nearest of 128 nodes). BGR frame order.
_NODE = np.round(np.arange(256) * (GRID - 1) / 255.0).astype(np.int32)
_SHIFT_B, _SHIFT_G, _SHIFT_R = _NODE, _NODE << GRID_BITS, _NODE << (2 * GRID_BITS)


def apply_packed(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Grade a BGR uint8 image with a packed table (a new contiguous BGR uint8 image)."""
    b, g, r = cv2.split(img)
    idx = cv2.add(cv2.add(cv2.LUT(b, _SHIFT_B), cv2.LUT(g, _SHIFT_G)), cv2.LUT(r, _SHIFT_R))
    packed = np.take(table, idx)
    return cv2.cvtColor(packed.view(np.uint8).reshape(*img.shape[:2], 4), cv2.COLOR_BGRA2BGR)


def resolve_lut(value: str) -> Path:
    """A shipped look by name, else the path the resolver already checked (server) or a local file (CLI)."""
    shipped = builtin_luts()
    if value in shipped:
        return shipped[value]
    p = TRUSTED_FILES.path("lut.lut", value)
    if not p.is_file():
        raise ConfigError(f"lut.lut: {value!r} is neither a shipped look ({', '.join(LOOKS)}) nor a .cube file")
    return p


@register
class Lut(Effect):
    name = "lut"
    description = "colour grading with a .cube 3D LUT (shipped looks or an upload), on the frame or the skin"
    needs_faces = False
    params = {
        "lut": Param("path", "", f"shipped look ({', '.join(LOOKS)}) or a .cube file / upload:NAME.cube"),
        "strength": P(1.0, 0, 1, "mix between the original (0) and the graded colours (1)"),
        "region": Param("choice", "frame", "grade the whole frame or only the faces' skin",
                        choices=("frame", "skin")),
    }

    def is_active(self, params: dict) -> bool:
        return bool(params["lut"]) and params["strength"] > 0

    def frame_wide(self, params: dict) -> bool:
        return params["region"] == "frame"

    def render(self, frame: np.ndarray, faces: list[Face], params: dict, state: dict) -> np.ndarray:
        if state.get("lut") != params["lut"]:
            state["table"], state["lut"] = packed_lut(resolve_lut(params["lut"])), params["lut"]
        table, k = state["table"], params["strength"]
        if params["region"] == "frame":
            graded = apply_packed(frame, table)
            return graded if k >= 1.0 else cv2.addWeighted(graded, k, frame, 1.0 - k, 0.0)
        for face in faces:
            roi = face_roi(face.landmarks, frame.shape)
            if roi is None:
                continue
            sub = frame[roi.slice()]
            # The skin mask's feathered tail reaches a few pixels past the face oval (erosion 2σ of
            # the feather): cut it below 3 %, so hair and background keep their exact pixels.
            skin = cv2.threshold(region_masks(face.landmarks, roi)["skin"], 0.03, 0, cv2.THRESH_TOZERO)[1]
            mask = skin * np.float32(k)
            a = roi.upsample(mask) if roi.scale < 1.0 else mask
            frame[roi.slice()] = cv2.blendLinear(apply_packed(sub, table), sub, a, 1.0 - a)
        return frame


if __name__ == "__main__":  # python -m facestage.effects.lut [DIR]: (re)write the shipped .cube looks
    for p in write_luts(Path(sys.argv[1]) if len(sys.argv) > 1 else LUT_DIR):
        print(p)
