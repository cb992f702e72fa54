"""Where the features of a procedural head sit, shared by the sculpting SDFs and the blendshape fields.

All in metres in the head frame (+Y up, face towards +Z, +X = subject's left). Keeping the anchors in one
place means the 52 shape fields always line up with the sculpted lips, lids and brows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceLayout:
    eye_x: float = 0.031
    eye_y: float = 0.017
    eye_z: float = 0.0635
    eye_r: float = 0.0150
    lid_r: float = 0.0166  # lid shells sit just outside the eyeball
    mouth_y: float = -0.050
    mouth_z: float = 0.083  # front of the lips
    mouth_half: float = 0.022  # half width of the mouth line
    brow_y: float = 0.043
    jaw_pivot: tuple[float, float, float] = (0.0, 0.004, -0.018)
    jaw_open_deg: float = 15.0
    nose_tip: tuple[float, float, float] = (0.0, -0.013, 0.103)

    def eye_center(self, side: int) -> np.ndarray:
        """side=+1 subject's left eye (+X), -1 right eye."""
        return np.array([side * self.eye_x, self.eye_y, self.eye_z])

    def mouth_corner(self, side: int) -> np.ndarray:
        return np.array([side * self.mouth_half, self.mouth_y + 0.001, self.mouth_z - 0.012])


def gauss(p: np.ndarray, c, r: float) -> np.ndarray:
    d2 = ((p - np.asarray(c, float)) ** 2).sum(axis=1)
    return np.exp(-d2 / (r * r))


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
