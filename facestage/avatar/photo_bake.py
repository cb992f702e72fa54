"""Bake a photo into the body model's UV layout (one GL pass per step, a private EGL context).

For every texel of the skin's UV map: its 3D point on the fitted head → the photo pixel under the fitted
pose; the texel takes that pixel where the surface faces the camera and passes a depth test against the
head rendered from the photo's viewpoint. Texels the camera did not see take the colour of their mirror
point (the same texel's 3D point with x negated, i.e. the other half of the face) where that one was seen,
and the skin tone elsewhere, with soft blends; the mouth interior (MakeHuman's UV mask) is painted dark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEXTURE_SIZE = 1024
FACING_FROM, FACING_FULL = 0.15, 0.45  # cos(angle to the camera): grazing texels are smeared, fade them out
DEPTH_EPS = 1.5  # photo pixels: a texel this close to the front-most surface counts as seen
MOUTH_INTERIOR = (0.16, 0.05, 0.05)

_VS_DEPTH = """
#version 330
uniform mat3 R; uniform vec3 t; uniform float s; uniform vec2 size; uniform vec2 zr;
in vec3 pos;
out float depth;
void main() {
    vec3 y = s * (R * pos) + t;
    depth = y.z;
    float z = 1.0 - 2.0 * (y.z - zr.x) / (zr.y - zr.x);
    gl_Position = vec4(y.x / size.x * 2.0 - 1.0, (-y.y) / size.y * 2.0 - 1.0, z, 1.0);
}
"""
_FS_DEPTH = """
#version 330
in float depth;
out vec4 color;
void main() { color = vec4(depth, 0.0, 0.0, 1.0); }
"""
_VS_UV = """
#version 330
in vec2 uv; in vec3 pos; in vec3 nrm; in vec3 mpos; in vec3 mnrm;
out vec3 p; out vec3 n; out vec3 mp; out vec3 mn;
void main() { p = pos; n = nrm; mp = mpos; mn = mnrm; gl_Position = vec4(uv * 2.0 - 1.0, 0.0, 1.0); }
"""
_FS_UV = """
#version 330
uniform mat3 R; uniform vec3 t; uniform float s; uniform vec2 size; uniform vec2 facing; uniform float eps;
uniform sampler2D photo; uniform sampler2D depth;
in vec3 p; in vec3 n; in vec3 mp; in vec3 mn;
layout(location = 0) out vec4 direct;
layout(location = 1) out vec4 mirrored;
vec4 look(vec3 q, vec3 nq) {
    vec3 y = s * (R * q) + t;
    vec2 st = vec2(y.x / size.x, -y.y / size.y);
    if (st.x < 0.0 || st.x > 1.0 || st.y < 0.0 || st.y > 1.0) return vec4(0.0);
    float f = smoothstep(facing.x, facing.y, normalize(R * nq).z);
    float front = texture(depth, st).r;
    float seen = y.z >= front - eps ? 1.0 : 0.0;
    vec4 c = texture(photo, st);  // alpha: inside the tracked face outline (soft)
    return vec4(c.rgb, f * seen * c.a);
}
void main() { direct = look(p, n); mirrored = look(mp, mn); }
"""


@dataclass(frozen=True)
class BakeInput:
    uvs: np.ndarray  # (V,2) per split vertex, v=0 at the top
    triangles: np.ndarray  # (T,3)
    positions: np.ndarray  # (V,3) metres, the fitted identity
    normals: np.ndarray  # (V,3)
    mirror_positions: np.ndarray  # (V,3) the x-mirrored partner's position
    mirror_normals: np.ndarray


def face_region(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 255 inside the hull of the 468 face points, fading out over ~4 % of the face width.

    Only the face is projected: around it the photo shows hair, clothes and background.
    """
    import cv2

    pts = landmarks[:468, :2].astype(np.float32)
    hull = cv2.convexHull(pts).astype(np.int32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    width = float(np.ptp(pts[:, 0]))
    k = max(1, int(width * 0.04))
    mask = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    return cv2.GaussianBlur(mask, (0, 0), k)


def bake(photo_rgb: np.ndarray, inp: BakeInput, scale: float, rotation: np.ndarray, translation: np.ndarray,
         skin_rgb: np.ndarray, mouth_mask: np.ndarray, face_mask: np.ndarray, size: int = TEXTURE_SIZE
         ) -> tuple[np.ndarray, float]:
    """(size, size, 3) uint8 texture and the share of the skin's texels taken from the photo directly."""
    import cv2
    import moderngl

    h, w = photo_rgb.shape[:2]
    ctx = moderngl.create_context(standalone=True, backend="egl")
    try:
        y = scale * inp.positions @ rotation.T + translation
        zr = (float(y[:, 2].min()) - 10.0, float(y[:, 2].max()) + 10.0)
        common = {"R": tuple(rotation.T.reshape(-1)), "t": tuple(translation), "s": float(scale),
                  "size": (float(w), float(h))}
        tri = ctx.buffer(inp.triangles.astype(np.uint32).tobytes())
        # 1. The head from the photo's viewpoint: its front-most depth per photo pixel.
        prog = ctx.program(vertex_shader=_VS_DEPTH, fragment_shader=_FS_DEPTH)
        for k, v in {**common, "zr": zr}.items():
            prog[k].value = v
        dtex = ctx.texture((w, h), 4, dtype="f4")
        fbo = ctx.framebuffer([dtex], ctx.depth_renderbuffer((w, h)))
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        fbo.color_mask = (True, True, True, True)
        fbo.clear(-1e9, 0, 0, 0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        vao = ctx.vertex_array(prog, [(ctx.buffer(inp.positions.astype("f4").tobytes()), "3f", "pos")], tri)
        vao.render()
        ctx.disable(moderngl.DEPTH_TEST)
        # 2. Every texel of the UV map looks itself (and its mirror point) up in the photo.
        prog2 = ctx.program(vertex_shader=_VS_UV, fragment_shader=_FS_UV)
        for k, v in {**common, "facing": (FACING_FROM, FACING_FULL), "eps": DEPTH_EPS}.items():
            prog2[k].value = v
        ptex = ctx.texture((w, h), 4, np.ascontiguousarray(np.dstack([photo_rgb, face_mask])).tobytes())
        ptex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        dtex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        ptex.use(0)
        dtex.use(1)
        prog2["photo"].value = 0
        prog2["depth"].value = 1
        outs = [ctx.texture((size, size), 4, dtype="f4") for _ in range(2)]
        fbo2 = ctx.framebuffer(outs)
        fbo2.use()
        fbo2.clear(0, 0, 0, 0)
        attrs = np.hstack([inp.uvs, inp.positions, inp.normals, inp.mirror_positions, inp.mirror_normals])
        vao2 = ctx.vertex_array(prog2, [(ctx.buffer(attrs.astype("f4").tobytes()), "2f 3f 3f 3f 3f",
                                         "uv", "pos", "nrm", "mpos", "mnrm")], tri)
        vao2.render()
        direct, mirrored = (np.frombuffer(o.read(), np.float32).reshape(size, size, 4).copy() for o in outs)
        covered = ctx.texture((size, size), 1)
        fbo3 = ctx.framebuffer([covered])
        fbo3.use()
        fbo3.clear(0.0)
        mono = ctx.program(vertex_shader=_VS_UV.replace("out vec3 p; out vec3 n; out vec3 mp; out vec3 mn;", "")
                           .replace("p = pos; n = nrm; mp = mpos; mn = mnrm; ", ""),
                           fragment_shader="#version 330\nout vec4 c; void main() { c = vec4(1.0); }")
        ctx.vertex_array(mono, [(ctx.buffer(inp.uvs.astype("f4").tobytes()), "2f", "uv")], tri).render()
        inside = np.frombuffer(covered.read(), np.uint8).reshape(size, size) > 0
    finally:
        ctx.release()
    return _composite(direct, mirrored, inside, skin_rgb, cv2.resize(mouth_mask, (size, size)))


def _composite(direct: np.ndarray, mirrored: np.ndarray, inside: np.ndarray, skin_rgb: np.ndarray,
               mouth: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    skin = np.asarray(skin_rgb, np.float32) / 255.0
    wd = direct[..., 3:4]
    wm = mirrored[..., 3:4] * (1 - wd)
    col = direct[..., :3] * wd + mirrored[..., :3] * wm + skin * (1 - wd - wm)
    seen = (wd + wm)[..., 0]
    # Soften the border between photo and skin tone: blend towards the skin over ~12 texels.
    soft = cv2.GaussianBlur(seen, (0, 0), 6.0)[..., None]
    photo_part = np.where(seen[..., None] > 1e-3, (col - skin * (1 - seen[..., None])) /
                          np.maximum(seen[..., None], 1e-3), skin)
    col = photo_part * np.minimum(soft, seen[..., None]) + skin * (1 - np.minimum(soft, seen[..., None]))
    m = np.clip((mouth.astype(np.float32) / 255.0 - 0.2) * 2.0, 0, 1)[..., None]
    col = col * (1 - m * (1 - wd)) + np.asarray(MOUTH_INTERIOR, np.float32) * m * (1 - wd)
    col = _dilate(col, inside)
    share = float((direct[..., 3] > 0.5).sum() / max(inside.sum(), 1))
    return (np.clip(col, 0, 1) * 255).round().astype(np.uint8), share


def _dilate(col: np.ndarray, inside: np.ndarray, rounds: int = 8) -> np.ndarray:
    """Grow the colours past the UV islands' edges, so bilinear/mip sampling at seams picks no black."""
    import cv2

    m = inside.astype(np.float32)
    c = col * m[..., None]
    for _ in range(rounds):
        cb = cv2.blur(c, (5, 5))
        mb = cv2.blur(m, (5, 5))
        grow = (m == 0) & (mb > 0)
        c[grow] = cb[grow] / mb[grow][:, None]
        m = np.where(grow, 1.0, m).astype(np.float32)
    return np.where(m[..., None] > 0, c, col)
