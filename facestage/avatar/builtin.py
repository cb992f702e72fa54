"""The built-in digital humans: specs here, geometry built from the MakeHuman body model (``human.py``) on
first use and cached in memory and under ``$FACESTAGE_CACHE`` (default ``~/.cache/facestage``)/avatars,
keyed by a hash of the spec and the generator version (nothing large is committed).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from dataclasses import asdict
from pathlib import Path

from .human import CharacterSpec, build_character
from .model import Avatar

GENERATOR_VERSION = 20  # bump when the generator changes so stale caches are rebuilt

BUILTIN_SPECS: dict[str, CharacterSpec] = {s.name: s for s in (
    CharacterSpec("ava", "young woman of European descent, auburn hair, blue eyes, teal crew-neck top",
                  gender=0.0, age=0.5, race={"caucasian": 1.0}, skin=(0.95, 0.80, 0.70), lips=(0.78, 0.42, 0.44),
                  hair=(0.35, 0.18, 0.10), brows=(0.30, 0.17, 0.10), iris=(0.25, 0.45, 0.78),
                  brand=(0.05, 0.60, 0.60), hair_style="full"),
    CharacterSpec("kai", "young man of African descent, short black hair, brown eyes, orange crew-neck top",
                  gender=1.0, age=0.5, race={"african": 1.0}, skin=(0.50, 0.33, 0.23), lips=(0.42, 0.24, 0.22),
                  hair=(0.05, 0.04, 0.04), brows=(0.06, 0.05, 0.04), iris=(0.30, 0.18, 0.10),
                  brand=(0.95, 0.45, 0.16), muscle=0.6),
    CharacterSpec("mira", "woman of mixed South-Asian and European descent, dark hair, green eyes, violet V-neck",
                  gender=0.1, age=0.55, race={"caucasian": 0.5, "asian": 0.2, "african": 0.3},
                  skin=(0.80, 0.60, 0.46), lips=(0.66, 0.34, 0.34), hair=(0.12, 0.08, 0.06),
                  brows=(0.12, 0.08, 0.06), iris=(0.30, 0.55, 0.32), brand=(0.42, 0.30, 0.85), neckline="v",
                  hair_style="full"),
    CharacterSpec("lin", "East-Asian presenter (a virtual employee for a Chinese brand), black hair, red top",
                  gender=0.0, age=0.52, race={"asian": 1.0}, skin=(0.94, 0.80, 0.68), lips=(0.78, 0.40, 0.42),
                  hair=(0.05, 0.04, 0.04), brows=(0.09, 0.07, 0.06), iris=(0.26, 0.16, 0.10),
                  brand=(0.78, 0.10, 0.14), hair_style="full"),
    CharacterSpec("walter", "older man (about 70) of European descent, grey hair, blue-grey eyes, navy top",
                  gender=1.0, age=0.85, race={"caucasian": 1.0}, skin=(0.90, 0.72, 0.62), lips=(0.66, 0.42, 0.40),
                  hair=(0.72, 0.72, 0.70), brows=(0.55, 0.54, 0.52), iris=(0.40, 0.50, 0.60),
                  brand=(0.12, 0.20, 0.42), weight=0.6),
    CharacterSpec("kenji", "East-Asian man in his thirties, black hair, dark eyes, green crew-neck top",
                  gender=1.0, age=0.58, race={"asian": 1.0}, skin=(0.88, 0.72, 0.58), lips=(0.66, 0.40, 0.38),
                  hair=(0.04, 0.04, 0.04), brows=(0.05, 0.05, 0.04), iris=(0.22, 0.14, 0.09),
                  brand=(0.16, 0.55, 0.30)),
)}

_memory: dict[str, Avatar] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    root = os.environ.get("FACESTAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "facestage")
    return Path(root) / "avatars"


@functools.cache
def _code_hash() -> str:
    """The generator's own source: editing it invalidates every cached build without a manual bump."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("human.py", "anny_data.py", "store.py", "eyes.py", "hair.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def cache_key(spec: CharacterSpec) -> str:
    text = f"{GENERATOR_VERSION}:{_code_hash()}:{sorted(asdict(spec).items())!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def builtin_avatar(name: str) -> Avatar:
    """The named built-in (built once per machine in ~2 s, then loaded from the cache in ~0.1 s)."""
    from .store import load_avatar_file, save_avatar

    spec = BUILTIN_SPECS[name]
    with _lock:
        if name in _memory:
            return _memory[name]
        path = cache_dir() / f"{name}-{cache_key(spec)}.npz"
        avatar = None
        if path.exists():
            try:
                avatar = load_avatar_file(path)
            except (OSError, KeyError, ValueError):
                avatar = None  # corrupt or stale cache: rebuild below
        if avatar is None:
            avatar = build_character(spec)
            with contextlib.suppress(OSError):  # a read-only home still works, just without the disk cache
                save_avatar(avatar, path)
                for stale in path.parent.glob(f"{name}-*.npz"):  # older generator versions or specs
                    if stale != path:
                        stale.unlink()
        _memory[name] = avatar
        return avatar
