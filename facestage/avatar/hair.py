"""Hair as layered alpha-tested shells with a strand texture made in code (no image assets).

The scalp region (a signed distance from the hairline, > 0 under hair) is pushed out into shells. Each shell
samples one strand texture: u runs with the distance from the hairline (so strands end at different
lengths: a wispy hairline instead of a cap's hard rim), v with the azimuth around the head, mirrored at
the back (0 front, 1 back: no seam), so stripes of constant v run from the crown down — combed strands.
The inner shell is dense (it hides the scalp), the outer one sparse (it breaks the silhouette up into
strands). Alpha MASK everywhere: no sorting, valid glTF.
"""

from __future__ import annotations

from functools import cache

import numpy as np

SD_FROM, SD_RANGE = -0.01, 0.13  # metres of hairline distance that u = 0..1 spans
STRANDS = 160  # strands across v (front to back, each side)
TAPER_M = 0.006  # a strand's tip narrows to a point over this length
TEX_W, TEX_H = 256, 512
# (offset multiplier, strand density, root fade): the inner shell covers, the outer one breaks the silhouette.
# Each shell costs a full pass of alpha-tested fragments over the hair on llvmpipe (measured interleaved at
# 512², ava: no outer shell 25 ms, one 31.5 ms, two double-sided 55 ms): "full" hair gets one outer shell,
# back-face culled.
LAYERS = {"short": ((1.0, 1.0, 0.0),), "full": ((1.0, 1.0, 0.0), (2.2, 0.45, 0.02))}


def hair_uvs(pts: np.ndarray, sd: np.ndarray, head: np.ndarray) -> np.ndarray:
    """(V,2) strand-texture coordinates for shell vertices at ``pts`` with hairline distance ``sd``."""
    rel = pts - head
    u = np.clip((sd - SD_FROM) / SD_RANGE, 0.0, 1.0)
    v = np.abs(np.arctan2(rel[:, 0], rel[:, 2])) / np.pi
    return np.ascontiguousarray(np.stack([u, v], axis=1), dtype=np.float32)


@cache
def strand_texture(density: float, root_fade: float, seed: int = 3) -> np.ndarray:
    """(TEX_H, TEX_W, 4) uint8: grey strand shading (×the hair colour) and the alpha the MASK cut tests.

    Each strand (a row band) gets its own brightness and width; its hairline end (small u) wanders slowly
    along the hairline (a few millimetres) plus a little per strand, and tapers to a point over TAPER_M,
    so the edge is soft and irregular like real hair, not a cap's rim or a comb's teeth.
    """
    rng = np.random.default_rng(seed)
    n = STRANDS
    shade = rng.uniform(0.72, 1.0, n)
    width = rng.uniform(0.45, 0.95, n)
    i = np.arange(n)
    wander = 0.002 * np.sin(i * 0.23 + 1.0) + 0.0015 * np.sin(i * 0.61 + 2.0)
    # Tips from ~4 mm outside the hairline, full strands ~4 mm inside it: centred on the line like a cut edge.
    start = (-SD_FROM + wander - 0.005 + rng.uniform(0.0, 0.003, n)) / SD_RANGE  # u of the strand tip
    keep = rng.uniform(0, 1, n) < density
    v = (np.arange(TEX_H) + 0.5) / TEX_H * n
    k = np.minimum(v.astype(int), n - 1)
    across = np.abs(v - k - 0.5) * 2  # 0 at a strand's middle, 1 at its sides
    u = (np.arange(TEX_W) + 0.5) / TEX_W
    grown = np.clip((u[None, :] - start[k][:, None] - root_fade / SD_RANGE) / (TAPER_M / SD_RANGE), 0, 1)
    alpha = ((across[:, None] < width[k][:, None] * grown) & keep[k][:, None]).astype(np.float32)
    if density >= 1.0:  # the inner shell: solid behind its strands once past the tapered tips
        alpha = np.maximum(alpha, (grown >= 1).astype(np.float32))
    grey = shade[k][:, None] * (0.85 + 0.15 * np.cos(across[:, None] * np.pi / 2)) * np.ones_like(u)[None, :]
    img = np.empty((TEX_H, TEX_W, 4), np.uint8)
    img[..., :3] = (np.clip(grey, 0, 1) * 255)[..., None].astype(np.uint8)
    img[..., 3] = (alpha * 255).astype(np.uint8)
    return img
