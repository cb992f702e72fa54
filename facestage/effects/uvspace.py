"""Face-mesh UV space: textures drawn once in canonical face coordinates, warped onto each face per frame.

The canonical UV of the 468 mesh points is a frontal face normalised to [0, 1] (``canonical_uv.py``).
Triangles come from ``FACEMESH_TESSELATION`` (852 faces). Per frame we rasterise triangle ids into the
ROI at work resolution (far triangles first, so the near side of a turned head wins), turn each pixel
into (u, v) with that triangle's affine map, upsample the (u, v) map to the ROI and ``cv2.remap`` the
texture. Wrinkles, age spots and face paint thus follow pose and expression exactly like the mesh.
"""

from __future__ import annotations

import base64
from functools import cache

import cv2
import numpy as np

from .canonical_uv import UV_B64
from .regions import Roi

TEX_SIZE = 512  # canonical textures are TEX_SIZE x TEX_SIZE


@cache
def canonical_uv() -> np.ndarray:
    """(468, 2) float32 canonical UV coordinates in [0, 1]."""
    raw = np.frombuffer(base64.b64decode("".join(UV_B64)), dtype="<u2").astype(np.float32)
    return raw.reshape(468, 2) / 65535.0


def build_canonical_uv(landmarks: np.ndarray) -> np.ndarray:
    """How ``canonical_uv.py`` was made: frontal-face landmarks (pixels) normalised to the unit square."""
    xy = landmarks[:468, :2].astype(np.float64)
    mn = xy.min(axis=0)
    uv = (xy - mn) / (xy.max(axis=0) - mn).max()
    uv += (1.0 - uv.max(axis=0)) / 2.0
    return uv.astype(np.float32)


@cache
def triangles() -> np.ndarray:
    """(852, 3) int32 triangles of the face mesh, from the tessellation edge set.

    Every 3-cycle of the edge graph is a candidate. Two cycles (around the nostril wings) are not faces:
    they are the only candidates whose three edges are all shared by more than two candidates.
    """
    import mediapipe as mp

    edges = mp.solutions.face_mesh.FACEMESH_TESSELATION
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    cand = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]})
    uses: dict[tuple[int, int], int] = {}
    for a, b, c in cand:
        for e in ((a, b), (b, c), (a, c)):
            uses[e] = uses.get(e, 0) + 1
    keep = [(a, b, c) for a, b, c in cand if min(uses[(a, b)], uses[(b, c)], uses[(a, c)]) <= 2]
    return np.array(keep, dtype=np.int32)


def uv_point(idx: int | list[int]) -> np.ndarray:
    """Canonical texture-pixel position of landmark(s) (mean if a list)."""
    uv = canonical_uv()[idx]
    return (uv.mean(axis=0) if uv.ndim == 2 else uv) * (TEX_SIZE - 1)


class UVMapper:
    """(u, v) coordinates for every ROI pixel covered by the face mesh, for one face in one frame."""

    #: the (u, v) map is rasterised with the face this wide (px); it is affine inside each triangle, so
    #: bilinear upsampling to the ROI is exact there and only smooths across triangle edges.
    MAP_FACE_PX = 48

    def __init__(self, lm: np.ndarray, roi: Roi) -> None:
        self.roi = roi
        self._maps_full: tuple[np.ndarray, np.ndarray] | None = None
        self._pad: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        mw, mh = self._map_dims(lm, roi)
        w, h = roi.size
        p = roi.to_roi(lm[:468]) * np.array([mw / w, mh / h], np.float32)
        self.umap, self.vmap = _rasterise_uv(p.astype(np.float64), lm[:468, 2], (mh, mw))

    @classmethod
    def _map_dims(cls, lm: np.ndarray, roi: Roi) -> tuple[int, int]:
        w, h = roi.size
        s = min(1.0, cls.MAP_FACE_PX / max(float(np.ptp(lm[:468, 0])), 1.0))
        return max(int(round(w * s)), 2), max(int(round(h * s)), 2)

    @classmethod
    def moved(cls, base: UVMapper, affine: np.ndarray, lm: np.ndarray, roi: Roi) -> UVMapper:
        """``base``'s raster carried along a rigid-looking head move: frame point p (now) = ``affine`` @ (p
        (then), 1). One small ``warpAffine`` of the (u, v) maps instead of a new raster."""
        self = cls.__new__(cls)
        self.roi = roi
        self._maps_full = None
        mw, mh = self._map_dims(lm, roi)
        w, h = roi.size
        bmw, bmh = base.umap.shape[::-1]
        bw, bh = base.roi.size
        # new map px -> new frame px -> old frame px (inverse affine) -> old map px, as one 3x3 product.
        to_frame = np.array([[w / mw, 0, roi.x0], [0, h / mh, roi.y0], [0, 0, 1]], np.float64)
        inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))
        to_map = np.array([[bmw / bw, 0, -base.roi.x0 * bmw / bw], [0, bmh / bh, -base.roi.y0 * bmh / bh],
                           [0, 0, 1]], np.float64)
        m = (to_map @ inv @ to_frame)[:2]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # Bilinear warping would mix the -1 "outside" value into the rim; warp maps extended by one pixel
        # (mean of valid neighbours) and a coverage mask instead, and cut at coverage 1/2.
        u, v, cover = base._padded()
        both = cv2.warpAffine(cv2.merge([u, v, cover]), m, (mw, mh), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(0.0, 0.0, 0.0))
        outside = both[..., 2] < 0.5
        self.umap, self.vmap = (np.ascontiguousarray(both[..., i]) for i in (0, 1))
        self._pad = None
        self.umap[outside] = -1.0
        self.vmap[outside] = -1.0
        return self

    def _padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v) grown by one pixel past the mesh rim (normalised 3x3 convolution) and the 0/1 coverage."""
        if self._pad is None:
            cover = (self.umap >= 0).astype(np.float32)
            n = cv2.blur(cover, (3, 3), borderType=cv2.BORDER_CONSTANT)
            grown = []
            for m in (self.umap, self.vmap):
                mean = cv2.blur(m * cover, (3, 3), borderType=cv2.BORDER_CONSTANT) / np.maximum(n, 1e-6)
                grown.append(np.where(cover > 0, m, np.where(n > 0, mean, 0.0)).astype(np.float32))
            self._pad = (grown[0], grown[1], cover)
        return self._pad

    def maps(self, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (u, v) maps at ROI resolution (or ``size``); -1 outside the mesh."""
        if self._maps_full is None or self._maps_full[0].shape[::-1] != (size or self.roi.size):
            w, h = size or self.roi.size
            u = cv2.resize(self.umap, (w, h), interpolation=cv2.INTER_LINEAR)
            v = cv2.resize(self.vmap, (w, h), interpolation=cv2.INTER_LINEAR)
            outside = (u < 0) | (v < 0)
            u[outside] = -1.0
            v[outside] = -1.0
            self._maps_full = (u, v)
        return self._maps_full

    def sample(self, texture: np.ndarray | list[np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
        """The canonical texture warped onto the face, at ROI resolution or ``size`` (0 outside the mesh).

        ``texture`` may be a mip pyramid (list, largest first): the level closest to the face's pixel
        size is used, so fine texture detail does not alias into speckle on small faces.
        """
        w, h = size or self.roi.size
        if isinstance(texture, list):
            face_px = max(w, h) * 0.8
            level = 0
            while level + 1 < len(texture) and texture[level + 1].shape[0] >= face_px:
                level += 1
            texture = texture[level]
        n = texture.shape[0] - 1
        mu, mv = self.maps((w, h))
        return cv2.remap(texture, mu * n, mv * n, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def cached_mapper(cache: dict, fid: int, lm: np.ndarray, roi: Roi, tolerance: float = 0.2,
                  rigid_tolerance: float = 0.006) -> UVMapper:
    """This face's ``UVMapper``, rasterised as rarely as possible (the raster is ~1.5 ms, the rest ~0.1 ms).

    * Same ROI and no landmark moved more than ``tolerance`` px since the last frame (a still face after
      stabilisation): the last mapper as is.
    * The mesh moved as a whole: an affine fit from the last *rasterised* landmarks to these leaves every
      point within ``rigid_tolerance`` x face width (1.5 px on a 250 px face) -> the rasterised maps
      carried along by that affine (``UVMapper.moved``). Head translation, zoom and roll hit this path;
      talking, expressions and turning the head (foreshortening) do not, and get a fresh raster.
    Always carried from a real raster, never from a carried copy, so no blur accumulates.
    Deterministic for a given input sequence."""
    key = (roi.x0, roi.y0, roi.x1, roi.y1, roi.scale)
    xy = lm[:468, :2]
    hit = cache.get(fid)
    if hit is not None:
        last_key, last_xy, last, ref_xy, ref = hit
        if last_key == key and np.abs(last_xy - xy).max() <= tolerance:
            return last
        src = np.hstack([ref_xy, np.ones((len(ref_xy), 1), np.float32)]).astype(np.float64)
        affine, *_ = np.linalg.lstsq(src, xy.astype(np.float64), rcond=None)  # (3, 2)
        err = np.abs(src @ affine - xy).max()
        if err <= rigid_tolerance * max(float(np.ptp(xy[:, 0])), 1.0):
            mapper = UVMapper.moved(ref, affine.T, lm, roi)
            cache[fid] = (key, xy.copy(), mapper, ref_xy, ref)
            return mapper
    mapper = UVMapper(lm, roi)
    cache[fid] = (key, xy.copy(), mapper, xy.copy(), mapper)
    return mapper


def prune(cache: dict, ids: set[int]) -> None:
    """Drop cached mappers of faces that left the frame."""
    for fid in [k for k in cache if k not in ids]:
        del cache[fid]


def pyramid(texture: np.ndarray, levels: int = 4) -> list[np.ndarray]:
    """Mip levels of a canonical texture (each half the size of the previous)."""
    out = [texture]
    for _ in range(levels - 1):
        out.append(cv2.pyrDown(out[-1]))
    return out


def _rasterise_uv(p: np.ndarray, z: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised scan of every triangle's bounding box: barycentrics -> (u, v); -1 where no triangle.

    One numpy pass over all (triangle, pixel) pairs instead of 852 Python-level fills (5 us each).
    Pairs are ordered far triangle first and numpy's fancy assignment writes in order, so on a turned
    head the near surface wins.
    """
    h, w = shape
    tri = triangles()
    tri = tri[np.argsort(-z[tri].mean(axis=1), kind="stable")]
    v = p[tri]  # (T, 3, 2)
    x0, y0, x1, y1, x2, y2 = (v[:, i // 2, i % 2] for i in range(6))
    # 1-D min/max/clip with scalar bounds: np.clip with per-column bounds costs 10x more here.
    lox = np.clip(np.floor(np.minimum(np.minimum(x0, x1), x2)), 0, w - 1).astype(np.int32)
    hix = np.clip(np.ceil(np.maximum(np.maximum(x0, x1), x2)), 0, w - 1).astype(np.int32)
    loy = np.clip(np.floor(np.minimum(np.minimum(y0, y1), y2)), 0, h - 1).astype(np.int32)
    hiy = np.clip(np.ceil(np.maximum(np.maximum(y0, y1), y2)), 0, h - 1).astype(np.int32)
    bw = hix - lox + 1
    bh = hiy - loy + 1
    n = bw * bh
    # Barycentric coefficients in closed form (batched np.linalg.inv costs ~3 ms for 852 matrices).
    d = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    ok = np.abs(d) > 1e-9  # edge-on triangles cover no pixels
    d = np.where(ok, d, 1.0)
    a0, c0 = (y1 - y2) / d, (x2 - x1) / d
    a1, c1 = (y2 - y0) / d, (x0 - x2) / d
    coef = np.stack([a0, c0, -(a0 * x2 + c0 * y2), a1, c1, -(a1 * x2 + c1 * y2)]).astype(np.float32)
    n = np.where(ok, n, 0)
    total = int(n.sum())
    umap = np.full((h, w), -1.0, np.float32)
    vmap = np.full((h, w), -1.0, np.float32)
    if total == 0:
        return umap, vmap
    t = np.repeat(np.arange(len(tri), dtype=np.int32), n)
    local = np.arange(total, dtype=np.int32) - np.repeat(np.cumsum(n, dtype=np.int32) - n, n)
    bwt = bw[t]
    px = lox[t] + local % bwt
    py = loy[t] + local // bwt
    # 1-D gathers of per-triangle scalars are much faster than gathering (N, 3) rows.
    fx, fy = px.astype(np.float32), py.astype(np.float32)
    b0 = fx * coef[0][t] + fy * coef[1][t] + coef[2][t]
    b1 = fx * coef[3][t] + fy * coef[4][t] + coef[5][t]
    b2 = 1.0 - b0 - b1
    inside = (b0 >= -1e-3) & (b1 >= -1e-3) & (b2 >= -1e-3)
    t, px, py, b0, b1, b2 = t[inside], px[inside], py[inside], b0[inside], b1[inside], b2[inside]
    uvt = canonical_uv()[tri]  # (T, 3, 2)
    flat = py * w + px
    for c, out in ((0, umap), (1, vmap)):
        out.ravel()[flat] = b0 * uvt[:, 0, c][t] + b1 * uvt[:, 1, c][t] + b2 * uvt[:, 2, c][t]
    return umap, vmap
