"""Local image warps for face reshaping (slim, v-chin, eyes, nose, sagging), ROI only.

Local warps in the spirit of Gustafsson's interactive warping (as used by GPUPixel's face reshape): a
*local translation* pushes the pixels inside a circle along a vector with a smooth falloff; a *local scale* magnifies
(or shrinks) around a centre. Displacements from all warps are summed on a coarse grid at work
resolution (cheap numpy), upsampled to the ROI and applied with one ``cv2.remap``. The same field
moves the landmarks, so effects after a warp (makeup, stickers) land on the reshaped face.
"""

from __future__ import annotations

import cv2
import numpy as np

from .regions import Roi


class WarpField:
    """Backward displacement field (dx, dy) over the ROI at work resolution: dst(x) = src(x + d(x))."""

    def __init__(self, roi: Roi) -> None:
        self.roi = roi
        w, h = roi.work_size
        self.gx, self.gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.dx = np.zeros((h, w), np.float32)
        self.dy = np.zeros((h, w), np.float32)
        self.used = False

    def _local(self, c: np.ndarray, r: float) -> tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray]:
        """Sub-window around centre ``c`` (work coords) of radius ``r``: slices, rel x, rel y, d²."""
        h, w = self.dx.shape
        x0, x1 = max(int(c[0] - r), 0), min(int(c[0] + r) + 2, w)
        y0, y1 = max(int(c[1] - r), 0), min(int(c[1] + r) + 2, h)
        sl = (slice(y0, y1), slice(x0, x1))
        rx = self.gx[sl] - c[0]
        ry = self.gy[sl] - c[1]
        return sl[0], sl[1], rx, ry, rx * rx + ry * ry

    def translate(self, center: np.ndarray, target: np.ndarray, radius: float) -> None:
        """Move the content at ``center`` towards ``target`` (frame coords), falloff within ``radius``."""
        c = self.roi.to_work(np.asarray(center, np.float32))
        m = self.roi.to_work(np.asarray(target, np.float32)) - c
        r = float(radius) * self.roi.scale
        if r < 1 or not np.any(m):
            return
        ys, xs, _, _, d2 = self._local(c, r)
        if d2.size == 0:
            return
        # Smooth bump falloff (1 - d²/r²)²: full shift at the centre, zero slope at the rim. Gustafsson's
        # ((r²-d²)/(r²-d²+|m|²))² is flat inside and steep at the rim when |m| << r, which shows as a
        # jagged ring on faces; the bump keeps the compression spread over the whole disc.
        t = np.clip(1.0 - d2 / (r * r), 0, None)
        f = t * t
        self.dx[ys, xs] -= f * m[0]
        self.dy[ys, xs] -= f * m[1]
        self.used = True

    def scale(self, center: np.ndarray, radius: float, strength: float) -> None:
        """Magnify (strength > 0) or shrink (< 0) around ``center`` (frame coords) within ``radius``."""
        c = self.roi.to_work(np.asarray(center, np.float32))
        r = float(radius) * self.roi.scale
        if r < 1 or strength == 0:
            return
        ys, xs, rx, ry, d2 = self._local(c, r)
        if d2.size == 0:
            return
        # Radial profile: sample closer to the centre near it, identity at the border (smooth falloff).
        t = np.clip(1.0 - d2 / (r * r), 0, None)
        f = -strength * t * t
        self.dx[ys, xs] += f * rx
        self.dy[ys, xs] += f * ry
        self.used = True

    def apply_to(self, roi_img: np.ndarray) -> None:
        """Warp the ROI image (ROI resolution, a view into the frame) in place.

        Only the bounding box where the field moves pixels by more than 0.05 px is remapped (the
        eyes' and jaw's neighbourhoods, not the whole ROI), with fixed-point maps (~2x faster remap).
        """
        if not self.used:
            return
        s = self.roi.scale
        self._taper()
        mag = np.abs(self.dx) + np.abs(self.dy)
        rows = np.flatnonzero(mag.max(axis=1) > 0.05 * s)
        cols = np.flatnonzero(mag.max(axis=0) > 0.05 * s)
        if len(rows) == 0:
            return
        h, w = roi_img.shape[:2]
        wx0, wx1 = max(cols[0] - 1, 0), min(cols[-1] + 2, self.dx.shape[1])
        wy0, wy1 = max(rows[0] - 1, 0), min(rows[-1] + 2, self.dx.shape[0])
        x0, x1 = int(wx0 / s), min(int(np.ceil((wx1 - 1) / s)) + 1, w)
        y0, y1 = int(wy0 / s), min(int(np.ceil((wy1 - 1) / s)) + 1, h)
        bw, bh = x1 - x0, y1 - y0
        if bw < 2 or bh < 2:
            return
        # The field at the box's full-resolution pixels (work coords = ROI coords * s), in pixels.
        m = np.float32([[s, 0, x0 * s], [0, s, y0 * s]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        both = cv2.merge([self.dx, self.dy])
        d = cv2.warpAffine(both, m, (bw, bh), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        d *= 1.0 / s
        d += self._grid(x0, y0, bw, bh)
        m1, m2 = cv2.convertMaps(d, None, cv2.CV_16SC2)
        roi_img[y0:y1, x0:x1] = cv2.remap(roi_img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def apply(self, roi_img: np.ndarray) -> np.ndarray:
        """A warped copy of the ROI image."""
        out = roi_img.copy()
        self.apply_to(out)
        return out

    @staticmethod
    def _grid(x0: int, y0: int, w: int, h: int) -> np.ndarray:
        g = np.empty((h, w, 2), np.float32)
        g[..., 0] = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
        g[..., 1] = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
        return g

    def _taper(self) -> None:
        """Fade the field to zero over the outer 10 % of the ROI: no seam where the ROI ends."""
        h, w = self.dx.shape
        bx, by = max(w // 10, 1), max(h // 10, 1)
        tx = np.clip(np.minimum(np.arange(w), w - 1 - np.arange(w)) / bx, 0, 1).astype(np.float32)
        ty = np.clip(np.minimum(np.arange(h), h - 1 - np.arange(h)) / by, 0, 1).astype(np.float32)
        win = np.outer(ty, tx)
        self.dx *= win
        self.dy *= win

    def move_points(self, pts: np.ndarray) -> np.ndarray:
        """Where frame-coordinate points end up after the warp (fixed-point inversion of the field)."""
        if not self.used:
            return pts
        out = pts.copy()
        s = self.roi.scale
        base = self.roi.to_work(pts)
        q = base.copy()
        h, w = self.dx.shape
        for _ in range(3):  # solve q + d(q) = p: a few iterations, the field is small and smooth
            qx = np.clip(q[:, 0], 0, w - 1)
            qy = np.clip(q[:, 1], 0, h - 1)
            dx = _bilinear(self.dx, qx, qy)
            dy = _bilinear(self.dy, qx, qy)
            q = base - np.stack([dx, dy], axis=1)
        out[:, :2] = q / s + np.array([self.roi.x0, self.roi.y0], np.float32)
        return out


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x0 = np.floor(x).astype(np.int32)
    y0 = np.floor(y).astype(np.int32)
    x1 = np.minimum(x0 + 1, img.shape[1] - 1)
    y1 = np.minimum(y0 + 1, img.shape[0] - 1)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy
