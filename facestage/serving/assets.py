"""Assets by name, never by path: what a client may name as an avatar or an effect image on the server.

A client names ``glasses`` (a shipped image), ``photo:astronaut`` (a shipped photo avatar) or
``upload:photo.jpg`` (an upload of the session's own brand). Anything else — ``/etc/passwd``,
``../x.png``, another brand's upload — gets the same message, whether or not such a file exists, so
errors reveal nothing about the disk. The library and the CLI keep reading local files for a local user
through ``facestage.effects.base.TRUSTED_FILES``; the server only ever uses ``NamedAssets``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

UPLOAD_PREFIX = "upload:"
_UPLOAD_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(png|jpg|jpeg|glb|vrm|cube)$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@cache
def builtin_images() -> dict[str, Path]:
    """Shipped images by name: the stickers and the package test photos."""
    from .. import testdata

    root = Path(str(resources.files("facestage") / "assets" / "stickers"))
    out = {p.stem: p for p in sorted(root.glob("*.png"))}
    for name, where in (("astronaut", testdata.astronaut_path), ("grace_hopper", testdata.grace_hopper_path)):
        try:
            out[name] = Path(where())
        except Exception:  # noqa: BLE001 - an optional package photo that is not installed is simply absent
            continue
    return {k: v for k, v in out.items() if v.is_file()}


def builtin_luts() -> dict[str, Path]:
    """Shipped .cube looks by name (``lut.lut``)."""
    from ..effects.lut import builtin_luts as shipped

    return shipped()


def check_avatar_name(name: Any, brand: str | None, where: str = "avatar") -> str:
    """A built-in avatar, ``photo:astronaut``/``photo:grace_hopper``, or ``upload:NAME`` of ``brand``."""
    from ..avatar import PHOTO_SOURCES
    from ..avatar.builtin import BUILTIN_SPECS

    if isinstance(name, str):
        if name == "default" or name in BUILTIN_SPECS:
            return name
        if name.startswith("photo:") and name[6:] in PHOTO_SOURCES:
            return name
        if name.startswith(UPLOAD_PREFIX) and brand and _UPLOAD_NAME.match(name[len(UPLOAD_PREFIX):]):
            return name
    names = ", ".join(["default", *BUILTIN_SPECS, *(f"photo:{n}" for n in PHOTO_SOURCES)])
    raise ConfigError(f"{where}: unknown avatar {_shown(name)}; use one of {names}, or upload:NAME in a "
                      "brand's session")


def _shown(value: Any) -> str:
    """Echo a short plain name (helps with typos); anything path-like is not repeated back."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_:.-]{1,40}", value) and ".." not in value:
        return repr(value)
    return "this value"


class NamedAssets:
    """Resolve names for one session: built-ins for everyone, ``upload:NAME`` only under the brand's folder."""

    def __init__(self, upload_root: Path, brand: str | None) -> None:
        self.upload_root = upload_root
        self.brand = brand

    def refused(self, param: str, value: Any) -> ConfigError:
        return ConfigError(f"{param}: {_shown(value)} is not an asset name; use a built-in name "
                           f"({', '.join([*builtin_images(), *builtin_luts()])}), a name from POST /v1/assets "
                           "or upload:NAME of your brand")

    def path(self, param: str, value: Any) -> Path:
        if not isinstance(value, str):
            raise self.refused(param, value)
        if value.startswith(UPLOAD_PREFIX):
            name = value[len(UPLOAD_PREFIX):]
            from .asset_uploads import session_asset

            if (p := session_asset(self.upload_root, name)) is not None:  # an uploader's own (random name)
                return p
            if self.brand and _UPLOAD_NAME.match(name):
                p = self.upload_root / self.brand / name
                if p.is_file():
                    return p
            raise self.refused(param, value)
        # Shipped looks only for the LUT parameter, shipped images for the rest: a sticker named "warm"
        # must not reach an image decoder with a .cube (whose error would name the server's file).
        p = (builtin_luts() if param == "lut.lut" else builtin_images()).get(value)
        if p is None:
            raise self.refused(param, value)
        return p

    def resolve_config(self, config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A copy of a validated effect chain config with every path parameter resolved to a checked file
        (the state keeps the names; the chain gets the files)."""
        from ..effects.chain import list_effects

        specs = list_effects()
        out: dict[str, dict[str, Any]] = {}
        for effect, params in config.items():
            out[effect] = dict(params)
            for name, value in params.items():
                if specs.get(effect, {}).get(name, {}).get("type") == "path" and value:
                    out[effect][name] = str(self.path(f"{effect}.{name}", value))
        return out


class ByteBoundedCache:
    """An LRU of objects with a byte size; evicts oldest until the total fits (avatars hold vertex buffers
    and textures: a count bound lets 8 huge uploads take gigabytes)."""

    def __init__(self, max_bytes: int) -> None:
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: str, value: Any, size: int) -> None:
        self.pop(key)
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, (_, n) = self._items.popitem(last=False)
            self.bytes -= n

    def pop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.bytes -= item[1]

    def __iter__(self):  # noqa: ANN204 - a snapshot: callers may pop while iterating
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


def nbytes(obj: Any, _depth: int = 0) -> int:
    """Approximate memory of an avatar-like object: the numpy arrays it holds (a few levels deep)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if _depth > 4:
        return 0
    if isinstance(obj, dict):
        return sum(nbytes(v, _depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nbytes(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(nbytes(v, _depth + 1) for v in vars(obj).values())
    if hasattr(obj, "__slots__"):
        return sum(nbytes(getattr(obj, s, None), _depth + 1) for s in obj.__slots__)
    return 0
