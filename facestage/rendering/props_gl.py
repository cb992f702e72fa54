"""Offscreen GL rendering of 3D face props with a head occluder, on the process's prop render thread.

One job draws, into a framebuffer the size of the prop's screen box: (1) the occluders depth-only — the
tracked face mesh pushed a few millimetres back and an ellipsoid closing the head behind it — then (2) the
opaque prop parts lit by an ambient term (the face's own mean colour) plus one directional light, then
(3) translucent parts (lenses) blended. Whatever lies behind the head fails the depth test: the far arm
of a pair of glasses disappears behind the head as it does in a mirror.

Vertices arrive in camera coordinates (metres, OpenCV axes); the vertex shader applies the pinhole camera
of the frame (focal f, principal point c) restricted to the box, so a layer pixel is exactly a frame pixel.
The context lives on a ``RenderThread`` (GL contexts are thread-bound); any worker thread submits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .thread import RenderThread

VS = """
#version 330
uniform vec4 cam;      // f, cx - x0, cy - y0, unused
uniform vec2 box;      // width, height of the layer
uniform vec2 clip;     // near, far (metres)
in vec3 in_pos;        // camera coordinates
in vec3 in_nrm;
in vec4 in_col;
out vec3 v_nrm;
out vec4 v_col;
void main() {
    float z = in_pos.z;
    float u = cam.x * in_pos.x + cam.y * z;      // pixel * z
    float v = cam.x * in_pos.y + cam.z * z;
    float n = clip.x, f = clip.y;
    // Layer row 0 = NDC y -1, so the read-back image is top row first with no flip.
    gl_Position = vec4(2.0 * u / box.x - z, 2.0 * v / box.y - z, (f + n) / (f - n) * z - 2.0 * f * n / (f - n), z);
    v_nrm = in_nrm;
    v_col = in_col;
}
"""

FS = """
#version 330
uniform vec3 ambient;
uniform vec3 light_dir;   // towards the light, camera coordinates
uniform vec3 light_col;
in vec3 v_nrm;
in vec4 v_col;
out vec4 frag;
void main() {
    vec3 n = normalize(v_nrm);
    if (n.z > 0.0) n = -n;                       // two-sided: face the camera
    float diff = max(dot(n, light_dir), 0.0);
    vec3 h = normalize(light_dir + vec3(0.0, 0.0, -1.0));
    float spec = pow(max(dot(n, h), 0.0), 40.0) * 0.35;
    vec3 rgb = v_col.rgb * (ambient + light_col * diff) + light_col * spec;
    frag = vec4(rgb * v_col.a, v_col.a);        // premultiplied
}
"""

DEPTH_FS = """
#version 330
out vec4 frag;
void main() { frag = vec4(0.0); }
"""


@dataclass
class Layer:
    """What to draw for one face: triangle lists in camera coordinates and the frame camera."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
    focal: float
    center: tuple[float, float]
    opaque: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # positions, normals, colours, triangles
    translucent: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    occluders: list[tuple[np.ndarray, np.ndarray]]  # (positions, triangles), depth only
    ambient: tuple[float, float, float]
    light_dir: tuple[float, float, float]
    light_col: tuple[float, float, float]
    near: float = 0.05
    far: float = 20.0
    samples: int = 4  # MSAA samples; 0 = none (llvmpipe: 4x costs 2-3x the render of a large box)


class _Targets:
    """A framebuffer (MSAA or not) and its resolve target, grown as needed."""

    def __init__(self, ctx, samples: int) -> None:  # noqa: ANN001 - moderngl.Context
        self.ctx, self.samples = ctx, samples
        self.size = (0, 0)
        self.fbo = self.resolve = None

    def ensure(self, w: int, h: int) -> None:
        if self.size[0] >= w and self.size[1] >= h:
            return
        for obj in {id(o): o for o in (self.fbo, self.resolve) if o is not None}.values():
            for att in (*obj.color_attachments, obj.depth_attachment):
                if att is not None:
                    att.release()
            obj.release()
        w, h = max(w, self.size[0], 64), max(h, self.size[1], 64)
        ctx = self.ctx
        self.fbo = ctx.framebuffer([ctx.renderbuffer((w, h), 4, samples=self.samples)],
                                   ctx.depth_renderbuffer((w, h), samples=self.samples))
        self.resolve = ctx.framebuffer([ctx.renderbuffer((w, h), 4)]) if self.samples else self.fbo
        self.size = (w, h)


class _PropGL:
    """Programs and reusable framebuffers on one context."""

    def __init__(self, ctx) -> None:  # noqa: ANN001 - moderngl.Context
        self.ctx = ctx
        self.prog = ctx.program(vertex_shader=VS, fragment_shader=FS)
        self.depth_prog = ctx.program(vertex_shader=VS, fragment_shader=DEPTH_FS)
        self.targets: dict[int, _Targets] = {}

    def _draw(self, prog, pos: np.ndarray, tri: np.ndarray, nrm: np.ndarray | None = None,
              col: np.ndarray | None = None) -> None:
        ctx = self.ctx
        p = pos[tri.reshape(-1)].astype("f4")
        buffers = [(ctx.buffer(p.tobytes()), "3f", "in_pos")]
        if nrm is not None and col is not None:
            buffers += [(ctx.buffer(nrm[tri.reshape(-1)].astype("f4").tobytes()), "3f", "in_nrm"),
                        (ctx.buffer(col[tri.reshape(-1)].astype("f4").tobytes()), "4f", "in_col")]
        vao = ctx.vertex_array(prog, buffers)
        vao.render()
        vao.release()
        for b, _, _ in buffers:
            b.release()

    def render(self, layer: Layer) -> np.ndarray:
        import moderngl

        x0, y0, x1, y1 = layer.box
        w, h = x1 - x0, y1 - y0
        t = self.targets.get(layer.samples)
        if t is None:
            t = self.targets[layer.samples] = _Targets(self.ctx, layer.samples)
        t.ensure(w, h)
        fbo = t.fbo
        ctx = self.ctx
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=(0, 0, w, h))
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        for prog in (self.prog, self.depth_prog):
            prog["cam"].value = (layer.focal, layer.center[0] - x0, layer.center[1] - y0, 0.0)
            prog["box"].value = (float(w), float(h))
            prog["clip"].value = (layer.near, layer.far)
        self.prog["ambient"].value = layer.ambient
        self.prog["light_dir"].value = layer.light_dir
        self.prog["light_col"].value = layer.light_col
        ctx.disable(moderngl.BLEND)
        fbo.color_mask = (False, False, False, False)
        for pos, tri in layer.occluders:
            self._draw(self.depth_prog, pos, tri)
        fbo.color_mask = (True, True, True, True)
        pos, nrm, col, tri = layer.opaque
        if len(tri):
            self._draw(self.prog, pos, tri, nrm, col)
        if layer.translucent is not None and len(layer.translucent[3]):
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
            ctx.depth_mask = False
            pos, nrm, col, tri = layer.translucent
            self._draw(self.prog, pos, tri, nrm, col)
            ctx.depth_mask = True
            ctx.disable(moderngl.BLEND)
        if t.resolve is not fbo:
            ctx.copy_framebuffer(t.resolve, fbo)
        data = t.resolve.read(viewport=(0, 0, w, h), components=4)
        out = np.frombuffer(data, np.uint8).reshape(h, w, 4)
        if not layer.samples:  # no MSAA: soften the stair steps of the silhouette (premultiplied, so exact)
            import cv2

            out = cv2.GaussianBlur(out, (3, 3), 0.6)
        return out


_THREAD: RenderThread | None = None
_STATE: dict[int, _PropGL] = {}
_LOCK = threading.Lock()


def prop_thread() -> RenderThread:
    """The process's prop render thread (created on first use; one GL context for all chains)."""
    global _THREAD
    with _LOCK:
        if _THREAD is None:
            _THREAD = RenderThread(size=64, msaa=0)
        return _THREAD


def render_layer(layer: Layer, timeout: float = 30.0) -> np.ndarray:
    """(h, w, 4) premultiplied RGBA uint8 of ``layer.box``, top row first."""

    def job(renderer) -> np.ndarray:  # noqa: ANN001 - runs on the render thread
        gl = _STATE.get(id(renderer))
        if gl is None:
            gl = _STATE[id(renderer)] = _PropGL(renderer.ctx)
        return gl.render(layer)

    return prop_thread().submit(job).result(timeout=timeout)
