"""Digital humans: avatar models with 52 ARKit shapes, built-ins, photo avatars, glTF/VRM IO and the rig.

    from facestage.avatar import list_avatars, load_avatar, Avatar
    avatar = load_avatar("ava")                # a built-in (generated on first use, then cached)
    avatar = load_avatar("photo:astronaut")    # a photo avatar from a package photo
    avatar = load_avatar("me.glb")             # .glb / .gltf / .vrm with morph targets
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .model import Avatar, Material, MeshPart, weights_vector

PHOTO_SOURCES = ("astronaut", "grace_hopper")
MODEL_SUFFIXES = (".glb", ".gltf", ".vrm")


def list_avatars() -> list[dict]:
    """Available avatars: built-ins (by name) and photo avatars made from the package photos."""
    from .builtin import BUILTIN_SPECS

    out = [{"name": n, "kind": "builtin", "description": s.description} for n, s in BUILTIN_SPECS.items()]
    out += [{"name": f"photo:{n}", "kind": "photo", "description": f"photo avatar from the {n} test photo"}
            for n in PHOTO_SOURCES]
    return out


def load_avatar(name_or_path: str | Path) -> Avatar:
    """A built-in name, ``photo:astronaut``/``photo:grace_hopper``/``photo:FILE.jpg``, or a .glb/.gltf/.vrm path."""
    from .builtin import BUILTIN_SPECS, builtin_avatar

    spec = str(name_or_path)
    if spec in BUILTIN_SPECS:
        return builtin_avatar(spec)
    if spec.startswith("photo:"):
        from .photo import photo_avatar_from_source

        return photo_avatar_from_source(spec[len("photo:"):])
    p = Path(spec)
    if p.suffix.lower() in MODEL_SUFFIXES:
        from .gltf_io import import_gltf

        return import_gltf(p)
    names = ", ".join([*BUILTIN_SPECS, *(f"photo:{n}" for n in PHOTO_SOURCES)])
    raise InputError(f"unknown avatar {spec!r}: use one of {names}, or a .glb/.gltf/.vrm file")


__all__ = ["Avatar", "Material", "MeshPart", "list_avatars", "load_avatar", "weights_vector"]
