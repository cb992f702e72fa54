"""Framing and rig settings for imported skinned avatars (glTF/VRM with a head bone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tracking.arkit import ARKIT_INDEX
from .model import Avatar, MeshPart
from .skeleton import Skeleton

HEAD_SHARE = 0.5  # a vertex belongs to the head when this much of its weight is on the head or below it


def _descendants(skel: Skeleton, root: int) -> set[int]:
    out = {root}
    for i, p in enumerate(skel.parents):
        if p in out:
            out.add(i)
    return out


def _has_shape(parts: list[MeshPart], name: str) -> bool:
    k = ARKIT_INDEX[name]
    return any(p.deltas is not None and np.abs(p.deltas[k]).max() > 0 for p in parts)


def _skinned_avatar(parts: list[MeshPart], path: Path, name: str | None, skel: Skeleton, info: dict | None,
                    report: dict) -> Avatar:
    head = skel.bone("head")  # None for a rig with no head (a cylinder, a creature): frame the whole model
    head_set = np.array(sorted(_descendants(skel, head) if head is not None else range(skel.joint_count)))
    pts = []
    for p in parts:
        share = np.where(np.isin(p.skin_joints, head_set), p.skin_weights, 0.0).sum(axis=1)
        pts.append(p.positions[share >= HEAD_SHARE])
    head_pts = np.vstack(pts) if any(len(x) for x in pts) else np.vstack([p.positions for p in parts])
    lo, hi = head_pts.min(axis=0), head_pts.max(axis=0)
    centre = (lo + hi) / 2
    height = float(max(hi[1] - lo[1], 1e-3))
    allp = np.vstack([p.positions for p in parts])
    head_j = skel.joint_position(head) if head is not None else centre
    neck = skel.bone("neck")
    neck_j = skel.joint_position(neck) if neck is not None else head_j
    bust_bottom = max(float(allp[:, 1].min()), float(neck_j[1]) - 1.2 * height)
    eyes = [skel.bone("leftEye"), skel.bone("rightEye")]
    eye_centers = tuple(tuple(float(v) for v in (skel.joint_position(e) if e is not None else centre)) for e in eyes)
    meta = {**report, "eye_bones": all(e is not None for e in eyes) and not _has_shape(parts, "eyeLookOutLeft"),
            "jaw_bone": skel.bone("jaw") is not None and not _has_shape(parts, "jawOpen")}
    if info:  # a facestage export: its own framing, pivots and humanoid map
        skel.humanoid.update({k: v for k, v in (info.get("humanoid") or {}).items() if v in skel.names})
        meta = {**info.get("meta", {}), **meta, "eye_bones": bool(info.get("meta", {}).get("eye_bones"))}
        return Avatar(name or info.get("name", path.stem), parts, tuple(info["head_pivot"]), tuple(info["neck_pivot"]),
                      tuple(tuple(c) for c in info["eye_centers"]),
                      {k: tuple(v) for k, v in info["frame_center"].items()}, dict(info["frame_height"]),
                      meta=meta, skeleton=skel)
    top = float(hi[1])
    frame_center = {"head": (float(centre[0]), float(centre[1]), float(centre[2])),
                    "bust": (float(centre[0]), (top + bust_bottom) / 2, float(centre[2]))}
    frame_height = {"head": height * 1.25, "bust": (top - bust_bottom) * 1.05}
    return Avatar(name or path.stem, parts, tuple(float(v) for v in head_j), tuple(float(v) for v in neck_j),
                  eye_centers, frame_center, frame_height, meta=meta, skeleton=skel)
