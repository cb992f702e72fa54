"""One-Euro filtering (Casiez, Roussel & Vogel, CHI 2012), vectorised over arrays.

The filter is a low-pass whose cut-off rises with speed: still faces get heavy smoothing (no
jitter), fast motion gets little (no lag). ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta``
how quickly it opens up with speed, ``d_cutoff`` smooths the speed estimate itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over an array of any shape (each element filtered independently).

    ``min_cutoff``/``beta``/``d_cutoff`` may be arrays (broadcast against the samples), so streams
    with different tunings can share one filter call.
    """

    def __init__(self, params: OneEuroParams = OneEuroParams(), min_cutoff: np.ndarray | None = None,
                 beta: np.ndarray | None = None, d_cutoff: np.ndarray | None = None) -> None:
        self.params = params
        self.min_cutoff = params.min_cutoff if min_cutoff is None else min_cutoff
        self.beta = params.beta if beta is None else beta
        self.d_cutoff = params.d_cutoff if d_cutoff is None else d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t = None

    def state(self) -> dict | None:
        """JSON-friendly snapshot (``None`` before the first sample)."""
        if self._x is None or self._dx is None or self._t is None:
            return None
        return {"x": self._x.tolist(), "dx": self._dx.tolist(), "t": self._t}

    def restore(self, state: dict | None) -> None:
        if state is None:
            self.reset()
            return
        self._x = np.asarray(state["x"], dtype=np.float64)
        self._dx = np.asarray(state["dx"], dtype=np.float64)
        self._t = float(state["t"])

    def __call__(self, x: np.ndarray, t: float, speed_scale: float | np.ndarray = 1.0) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (s). Speeds are divided by ``speed_scale`` before
        they open the cut-off, so e.g. landmark speed can be measured in face sizes per second."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:
            dt = 1.0 / 30.0  # repeated timestamps (e.g. a still image re-fed): assume 30 fps
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = self._dx + a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat) / speed_scale
        a = _alpha(cutoff, dt)
        x_hat = self._x + a * (x - self._x)
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.copy()


@dataclass(frozen=True)
class SmoothingConfig:
    """Tuning for the three filtered streams. Units of ``beta`` follow the stream's units:
    landmark speed in face widths per second, pose in degrees (and metres) per second, scores per second."""

    landmarks: OneEuroParams = OneEuroParams(min_cutoff=0.8, beta=4.0)
    pose: OneEuroParams = OneEuroParams(min_cutoff=0.8, beta=0.05)
    scores: OneEuroParams = OneEuroParams(min_cutoff=2.0, beta=0.5)


class FaceFilters:
    """The filters of one face id: landmarks, pose (Euler + translation) and blendshape scores.

    The three streams keep their own tuning but run as one vectorised filter call per frame.
    """

    @staticmethod
    def size(n_landmarks: int = 478, n_scores: int = 52) -> int:
        """Length of the packed state vector (landmarks xyz, 6 pose values, scores)."""
        return n_landmarks * 3 + 6 + n_scores

    def __init__(self, config: SmoothingConfig, n_landmarks: int = 478, n_scores: int = 52) -> None:
        sizes = (n_landmarks * 3, 6, n_scores)
        streams = (config.landmarks, config.pose, config.scores)
        self._n = sizes

        def per_element(attr: str) -> np.ndarray:
            return np.concatenate([np.full(n, getattr(p, attr)) for n, p in zip(sizes, streams, strict=True)])

        self.filter = OneEuroFilter(min_cutoff=per_element("min_cutoff"), beta=per_element("beta"),
                                    d_cutoff=per_element("d_cutoff"))
        self._scale = np.ones(sum(sizes))

    def __call__(self, landmarks: np.ndarray, pose: np.ndarray, scores: np.ndarray, t: float,
                 face_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Smoothed (landmarks, pose, scores); landmark speeds are measured in face sizes per second."""
        n_lm, n_pose, _ = self._n
        self._scale[:n_lm] = face_size
        packed = np.concatenate([landmarks.reshape(-1), pose, scores])
        out = self.filter(packed, t, speed_scale=self._scale)
        return (out[:n_lm].reshape(landmarks.shape), out[n_lm:n_lm + n_pose], out[n_lm + n_pose:])
