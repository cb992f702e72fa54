"""Rigid geometry for head pose: similarity alignment, Euler angles, quaternions.

Frames (see docs/tracking.md):
  * camera frame: OpenCV's, x right, y down, z forward (away from the camera);
  * face frame: x towards the subject's left, y towards the chin, z into the head. A face looking
    straight at the camera, upright, has the identity rotation.

Euler angles are read off the face-to-camera rotation ``R = Ry(-yaw) @ Rx(-pitch) @ Rz(roll)``
(``Rx/Ry/Rz`` are right-handed rotations about the camera axes). With y pointing down this gives
yaw > 0 when the subject turns to their left, pitch > 0 when they look up and roll > 0 when the
head tilts towards the subject's left shoulder.
"""

from __future__ import annotations

import math

import numpy as np


def similarity_align(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
                     ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``dst ~ s * R @ src + t`` (Umeyama 1991) for (N, 3) point sets.

    Returns ``(s, R, t)`` with ``R`` a proper rotation (det +1).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if weights is None:
        w = np.full(len(src), 1.0 / len(src))
    else:
        w = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    mu_s = w @ src
    mu_d = w @ dst
    a = src - mu_s
    b = dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = (u * d) @ vt
    var_s = float(w @ np.einsum("ij,ij->i", a, a))
    s = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - s * rot @ mu_s
    return s, rot, t


def rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Face-to-camera rotation for yaw/pitch/roll in degrees (our sign convention).

    Equals ``rot_y(-yaw) @ rot_x(-pitch) @ rot_z(roll)``, written out (it runs every frame).
    """
    a, b, c = math.radians(-yaw), math.radians(-pitch), math.radians(roll)
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    return np.array([
        [ca * cc + sa * sb * sc, -ca * sc + sa * sb * cc, sa * cb],
        [cb * sc, cb * cc, -sb],
        [-sa * cc + ca * sb * sc, sa * sc + ca * sb * cc, ca * cb],
    ])


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, the inverse of :func:`rotation_from_euler`."""
    r = rot
    yaw = math.degrees(math.atan2(-r[0, 2], r[2, 2]))
    pitch = math.degrees(math.atan2(r[1, 2], math.hypot(r[0, 2], r[2, 2])))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def quaternion_from_rotation(rot: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix."""
    m = rot
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def rotation_from_quaternion(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
