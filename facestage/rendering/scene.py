"""Backend-independent scene maths: rotation convention, joint and skin matrices, camera framing, lights.

Rotation convention (same as ``HeadPose``): yaw > 0 turns the avatar to its left (+X), pitch > 0 looks up,
roll > 0 tilts the head towards its left shoulder. Both renderers use these exact matrices, so moderngl
and pyrender produce the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

FRAMINGS = ("head", "bust", "photo")


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation for head angles in degrees (roll applied first, then pitch, then yaw)."""
    y, p, r = np.radians([yaw, -pitch, -roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


@dataclass(frozen=True)
class Camera:
    view: np.ndarray  # 4x4 world → eye
    proj: np.ndarray  # 4x4 eye → clip (OpenGL)
    eye: np.ndarray  # camera position in world
    yfov: float | None  # radians (None for orthographic)
    ortho: tuple[float, float, float, float] | None = None  # left, right, bottom, top


def perspective(yfov: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(yfov / 2)
    return np.array([[f / aspect, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])


def orthographic(left: float, right: float, bottom: float, top: float, near: float, far: float) -> np.ndarray:
    return np.array([[2 / (right - left), 0, 0, -(right + left) / (right - left)],
                     [0, 2 / (top - bottom), 0, -(top + bottom) / (top - bottom)],
                     [0, 0, -2 / (far - near), -(far + near) / (far - near)], [0, 0, 0, 1]])


def frame_camera(avatar, framing: str, width: int, height: int) -> Camera:
    """A camera on +Z looking at the avatar: "head" fills the frame with the face, "bust" adds shoulders,
    "photo" reproduces the original photo's projection (photo avatars only)."""
    if framing not in FRAMINGS:
        raise ConfigError(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    aspect = width / height
    if framing == "photo":
        box = avatar.meta.get("photo_box")
        if box is None:
            raise ConfigError(f"avatar {avatar.name!r} has no photo to render over (framing='photo')")
        left, right, bottom, top = box
        eye = np.array([0.0, 0.0, 2.0])
        view = np.eye(4)
        view[:3, 3] = -eye
        return Camera(view, orthographic(left, right, bottom, top, 0.5, 4.0), eye, None, (left, right, bottom, top))
    yfov = np.radians(22.0)
    center = np.asarray(avatar.frame_center.get(framing, (0, 0, 0)), float)
    half_h = avatar.frame_height.get(framing, 0.34) / 2
    if aspect < 1:
        half_h /= aspect
    dist = half_h / np.tan(yfov / 2)
    eye = center + np.array([0.0, 0.0, dist])
    view = np.eye(4)
    view[:3, 3] = -eye
    return Camera(view, perspective(yfov, aspect, dist * 0.3, dist * 3.0), eye, yfov)


# Three-point lighting in world space (directions point from the surface towards the light).
KEY_DIR = np.array([-0.45, 0.55, 0.75])
FILL_DIR = np.array([0.7, 0.1, 0.6])
RIM_DIR = np.array([0.25, 0.6, -0.8])
KEY_COLOR = np.array([1.00, 0.95, 0.88]) * 1.3
FILL_COLOR = np.array([0.70, 0.80, 1.00]) * 0.40
RIM_COLOR = np.array([1.00, 0.97, 0.92]) * 1.2
SKY_COLOR = np.array([0.55, 0.60, 0.70]) * 0.38
GROUND_COLOR = np.array([0.35, 0.30, 0.28]) * 0.38


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def parse_background(background, width: int, height: int) -> tuple[str, np.ndarray | None]:
    """('none'|'color'|'image', value) with images resized to the output, RGB uint8."""
    if background is None:
        return "none", None
    if isinstance(background, np.ndarray) and background.ndim == 3:
        import cv2

        img = background[:, :, :3]
        if img.dtype != np.uint8:
            raise ConfigError("background image must be uint8")
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        return "image", np.ascontiguousarray(img)
    try:
        rgb = np.asarray(background, float).reshape(3)
    except (TypeError, ValueError):
        raise ConfigError(f"background must be None, an (r,g,b) colour or an RGB image, got {background!r}") from None
    if rgb.max() > 1.0:
        rgb = rgb / 255.0
    return "color", np.clip(rgb, 0, 1)


def project(avatar, point, width: int, height: int, framing: str = "head") -> tuple[float, float]:
    """Pixel (x, y; top row 0) where a rest-pose world point lands, for overlays and tests."""
    cam = frame_camera(avatar, framing, width, height)
    clip = cam.proj @ cam.view @ np.append(np.asarray(point, float), 1.0)
    ndc = clip[:3] / clip[3]
    return float((ndc[0] + 1) / 2 * width), float((1 - ndc[1]) / 2 * height)


GAZE_DEG = 24.0  # full eyeLook weight = this many degrees of eye rotation (as ``avatar/eyes.py`` paints it)
JAW_DEG = 22.0  # jawOpen 1 opens a jaw bone this far (models without a jawOpen morph)


def gaze_from_weights(w: np.ndarray) -> tuple[float, float]:
    """(horizontal, vertical) degrees from the eight eyeLook weights of a (52,) vector."""
    from ..tracking.arkit import ARKIT_INDEX as ix

    h = 0.5 * (w[ix["eyeLookOutLeft"]] + w[ix["eyeLookInRight"]] - w[ix["eyeLookInLeft"]] - w[ix["eyeLookOutRight"]])
    v = 0.5 * (w[ix["eyeLookUpLeft"]] + w[ix["eyeLookUpRight"]] - w[ix["eyeLookDownLeft"]]
               - w[ix["eyeLookDownRight"]])
    return float(h * GAZE_DEG), float(v * GAZE_DEG)


def joint_rotations(avatar, weights: np.ndarray, head_rot, neck_rot, spine_rot=(0.0, 0.0, 0.0),
                    pose: dict | None = None) -> dict[int, np.ndarray]:
    """World-aligned rotations per joint index for one frame: neck, head, upper spine, eyes, jaw.

    Eyes turn by bone only where the avatar says its eyeballs are bone-driven (``meta["eye_bones"]``),
    the jaw only where it has no jawOpen morph (``meta["jaw_bone"]``): never both for one motion.
    """
    from ..tracking.arkit import ARKIT_INDEX

    skel, _ = avatar.skinning()
    rots: dict[int, np.ndarray] = {}

    def put(bone: str, r: np.ndarray) -> None:
        i = skel.bone(bone)
        if i is not None:
            rots[i] = r if i not in rots else rots[i] @ r

    put("neck", rotation_matrix(*neck_rot))
    put("head", rotation_matrix(*head_rot))
    if any(spine_rot):
        spine = next((b for b in ("upperChest", "chest", "spine") if skel.bone(b) is not None), None)
        if spine is not None:
            put(spine, rotation_matrix(*spine_rot))
    if avatar.meta.get("eye_bones"):
        h, v = gaze_from_weights(weights)
        if h or v:
            put("leftEye", rotation_matrix(h, v, 0.0))
            put("rightEye", rotation_matrix(h, v, 0.0))
    if avatar.meta.get("jaw_bone"):
        jaw = float(weights[ARKIT_INDEX["jawOpen"]])
        if jaw > 0:
            put("jaw", rotation_matrix(0.0, -JAW_DEG * jaw, 0.0))
    for key, angles in (pose or {}).items():  # explicit joints: index, joint name or humanoid bone name
        if isinstance(key, int | np.integer):
            i = int(key)
        elif key in skel.names:
            i = skel.index(key)
        else:
            i = skel.bone(key)
        if i is None or not 0 <= i < skel.joint_count:
            raise ConfigError(f"avatar {avatar.name!r} has no joint {key!r}")
        r = rotation_matrix(*angles)
        rots[i] = r if i not in rots else rots[i] @ r
    return rots


def skin_matrices(avatar, weights: np.ndarray, head_rot, neck_rot, spine_rot=(0.0, 0.0, 0.0),
                  pose: dict | None = None) -> np.ndarray:
    skel, _ = avatar.skinning()
    return skel.skin_matrices(joint_rotations(avatar, weights, head_rot, neck_rot, spine_rot, pose))
