"""Head pose by rigid alignment of the landmarks to the neutral reference face.

MediaPipe's landmarks are a weak-perspective 3-D reconstruction (x, y in pixels, z in the same
pixel scale), so a similarity transform (Umeyama) from the reference face (metres) onto the stable
landmarks gives the rotation directly and the scale in pixels per metre. Depth follows from an
assumed focal length equal to the image width (a ~53 degree horizontal field of view, typical of
webcams): ``Z = f / scale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .geometry import euler_from_rotation, quaternion_from_rotation, rotation_from_euler
from .landmarks import STABLE_POINTS
from .types import HeadPose

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "assets" / "tracking" / "neutral_face.npz"


@dataclass(frozen=True)
class Reference:
    points: np.ndarray  # (478, 3) metres, face frame
    partner: np.ndarray  # (478,) index of each landmark's left/right mirror partner


@cache
def reference() -> Reference:
    data = np.load(REFERENCE_PATH)
    return Reference(points=data["points"].astype(np.float64), partner=data["partner"].astype(np.int64))


@dataclass
class PoseFit:
    """Result of the rigid fit: pixel-space similarity (pts ~ scale * R @ ref + offset) and the pose."""

    scale: float  # pixels per metre
    rotation: np.ndarray  # (3, 3) face-to-camera
    offset: np.ndarray  # (3,) pixels: where the face origin lands in the image (z relative)
    residual: float  # RMS misfit of the stable points, as a fraction of the pupil distance

    def to_local(self, pts_px: np.ndarray) -> np.ndarray:
        """Landmarks in the face frame (metres): pose and distance removed."""
        return ((pts_px - self.offset) @ self.rotation) / self.scale


@cache
def _stable_reference() -> tuple[np.ndarray, np.ndarray, float]:
    """Centred stable reference points, their centroid and variance: constant, so computed once."""
    src = reference().points[STABLE_POINTS]
    mu = src.mean(axis=0)
    a = src - mu
    return a, mu, float((a * a).sum() / len(a))


def fit_pose(pts_px: np.ndarray) -> PoseFit:
    """Umeyama similarity from the reference's stable points onto the landmarks (the hot path of
    :func:`geometry.similarity_align`, with the reference side precomputed)."""
    a, mu_s, var_s = _stable_reference()
    dst = pts_px[STABLE_POINTS].astype(np.float64)
    mu_d = dst.mean(axis=0)
    b = dst - mu_d
    cov = b.T @ a / len(a)
    u, sig, vt = np.linalg.svd(cov)
    rot = u @ vt
    r = rot.tolist()  # 3x3 determinant by hand: np.linalg.det's call overhead is most of its cost
    det = (r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
           + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]))
    if det < 0:  # a reflection fits better: flip the weakest axis
        d = np.array([1.0, 1.0, -1.0])
        rot = (u * d) @ vt
        sig = sig * d
    s = float(sig.sum() / var_s)
    t = mu_d - s * rot @ mu_s
    err = b - s * a @ rot.T
    residual = float(np.sqrt((err * err).sum() / len(a)) / (s * 0.063))
    return PoseFit(scale=s, rotation=rot, offset=t, residual=residual)


def head_pose(fit: PoseFit, width: int, height: int) -> HeadPose:
    yaw, pitch, roll = euler_from_rotation(fit.rotation)
    return pose_from_params(yaw, pitch, roll, translation_from_fit(fit, width, height), rotation=fit.rotation)


def translation_from_fit(fit: PoseFit, width: int, height: int) -> np.ndarray:
    focal = float(width)
    z = focal / fit.scale
    return np.array([(fit.offset[0] - width / 2.0) * z / focal, (fit.offset[1] - height / 2.0) * z / focal, z])


def pose_from_params(yaw: float, pitch: float, roll: float, translation: np.ndarray,
                     rotation: np.ndarray | None = None) -> HeadPose:
    """HeadPose from Euler angles (``rotation``, if given, must be the same rotation: saves a rebuild)."""
    rot = rotation_from_euler(yaw, pitch, roll) if rotation is None else rotation
    matrix = np.eye(4)
    matrix[:3, :3] = rot
    matrix[:3, 3] = translation
    return HeadPose(yaw=float(yaw), pitch=float(pitch), roll=float(roll),
                    quaternion=quaternion_from_rotation(rot),
                    translation=(float(translation[0]), float(translation[1]), float(translation[2])),
                    matrix=matrix)
