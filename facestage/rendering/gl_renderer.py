"""moderngl (EGL) offscreen renderer. Not thread-safe by design: use it through ``RenderThread``.

Per frame: blendshapes are mixed on the CPU (one matrix-vector product over only the vertices that any
shape moves) and written in place into each part's dynamic vertex buffer; head/neck skinning, three-point
lighting with soft wrap shading and the texture happen in the shaders.
"""

from __future__ import annotations

import numpy as np

from ..avatar.model import Avatar, MeshPart
from ..errors import ConfigError
from . import scene

VERTEX_SHADER = """
#version 330
uniform mat4 u_viewproj;
uniform mat4 u_head;
uniform mat4 u_neck;
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec2 in_uv;
in vec2 in_w;
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
out vec2 v_uv;
void main() {
    float wb = max(0.0, 1.0 - in_w.x - in_w.y);
    mat4 m = u_head * in_w.x + u_neck * in_w.y + mat4(1.0) * wb;
    vec4 wp = m * vec4(in_pos, 1.0);
    v_pos = wp.xyz;
    v_nrm = mat3(m) * in_nrm;
    v_col = in_col;
    v_uv = in_uv;
    gl_Position = u_viewproj * wp;
}
"""

FRAGMENT_SHADER = """
#version 330
uniform vec3 u_eye;
uniform vec4 u_color;
uniform float u_rough;
uniform float u_spec;
uniform float u_sss;
uniform int u_unlit;
uniform sampler2D u_tex;
uniform vec3 u_key_dir; uniform vec3 u_key_col;
uniform vec3 u_fill_dir; uniform vec3 u_fill_col;
uniform vec3 u_rim_dir; uniform vec3 u_rim_col;
uniform vec3 u_sky; uniform vec3 u_ground;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
in vec2 v_uv;
out vec4 f_color;

vec3 to_linear(vec3 c) { return pow(c, vec3(2.2)); }

float g_occl = 1.0;  // cavity occlusion: painted-dark regions (mouth interior) get no highlights

vec3 light(vec3 n, vec3 v, vec3 l, vec3 col, vec3 albedo, float shin) {
    float w = 0.5 * u_sss;
    float ndl = dot(n, l);
    float diff = max(0.0, (ndl + w) / (1.0 + w));
    // Skin scatters red light past the terminator.
    vec3 scatter = u_sss * vec3(0.25, 0.06, 0.03) * max(0.0, 1.0 - abs(ndl + 0.1) * 3.0);
    vec3 h = normalize(l + v);
    float spec = g_occl * u_spec * pow(max(0.0, dot(n, h)), shin) * (shin + 8.0) / 25.0 * step(0.0, ndl);
    return col * (albedo * diff + albedo * scatter + vec3(spec));
}

void main() {
    vec4 tex = texture(u_tex, v_uv);
    vec3 base = u_color.rgb * v_col * tex.rgb;
    if (u_unlit == 1) { f_color = vec4(base, 1.0); return; }
    vec3 albedo = to_linear(base);
    g_occl = smoothstep(0.06, 0.3, max(v_col.r, max(v_col.g, v_col.b)));
    vec3 n = normalize(v_nrm);
    vec3 v = normalize(u_eye - v_pos);
    if (dot(n, v) < 0.0) n = -n;  // lids and shells are seen from both sides
    float r = clamp(u_rough, 0.05, 1.0);
    float shin = 2.0 / (r * r * r * r) - 2.0;
    vec3 c = albedo * mix(u_ground, u_sky, 0.5 + 0.5 * n.y);
    c += light(n, v, u_key_dir, u_key_col, albedo, shin);
    c += light(n, v, u_fill_dir, u_fill_col, albedo, shin);
    float rim = pow(1.0 - max(dot(n, v), 0.0), 3.0) * max(0.0, dot(n, u_rim_dir) + 0.35);
    c += u_rim_col * rim * (0.35 + 0.65 * albedo) * g_occl;
    c = c / (1.0 + 0.15 * c);  // gentle highlight roll-off
    f_color = vec4(pow(c, vec3(1.0 / 2.2)), 1.0);
}
"""

QUAD_VS = """
#version 330
in vec2 in_xy;
out vec2 v_uv;
void main() { v_uv = vec2(in_xy.x * 0.5 + 0.5, 0.5 - in_xy.y * 0.5); gl_Position = vec4(in_xy, 0.0, 1.0); }
"""
QUAD_FS = """
#version 330
uniform sampler2D u_tex;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = vec4(texture(u_tex, v_uv).rgb, 1.0); }
"""


class _GpuPart:
    def __init__(self, ctx, prog, part: MeshPart) -> None:
        self.part = part
        self.dyn = ctx.buffer(part.base_interleaved().astype("f4").tobytes(), dynamic=True)
        static = np.hstack([part.colors, part.uvs, part.head_weight[:, None], part.neck_weight[:, None]])
        self.static = ctx.buffer(static.astype("f4").tobytes())
        self.ibo = ctx.buffer(part.indices.astype("u4").tobytes())
        self.vao = ctx.vertex_array(prog, [(self.dyn, "3f 3f", "in_pos", "in_nrm"),
                                           (self.static, "3f 2f 2f", "in_col", "in_uv", "in_w")], self.ibo)
        tex = part.material.texture
        if tex is not None:
            t = np.ascontiguousarray(tex[:, :, :3] if tex.shape[2] == 4 else tex)
            self.texture = ctx.texture((t.shape[1], t.shape[0]), 3, t.tobytes())
            self.texture.build_mipmaps()
            self.texture.filter = (ctx.LINEAR_MIPMAP_LINEAR, ctx.LINEAR)
        else:
            self.texture = None
        # Only vertices some shape moves are re-mixed per frame.
        if part.deltas is not None:
            moving = np.abs(part.deltas).reshape(part.deltas.shape[0], -1, 6).max(axis=(0, 2)) > 0
            self.moving = np.flatnonzero(moving)
            cols = (self.moving[:, None] * 6 + np.arange(6)).reshape(-1)
            self.deltas = np.ascontiguousarray(part.deltas[:, cols])
            self.base_moving = part.base_interleaved().reshape(-1, 6)[self.moving].reshape(-1)
            self.mixed = np.empty(self.deltas.shape[1], np.float32)  # reused every frame
            self.contiguous = len(self.moving) == part.vertex_count
        else:
            self.moving = np.zeros(0, np.int64)
            self.deltas = None
        self.last_w: np.ndarray | None = None
        self.frame = part.base_interleaved().reshape(-1, 6).copy()

    def update(self, w: np.ndarray) -> None:
        if self.deltas is None or (self.last_w is not None and np.array_equal(w, self.last_w)):
            return
        w = np.asarray(w, np.float32)
        active = np.flatnonzero(w)
        if len(active) * 2 > len(w):
            # A tracked face sets most of the 52 weights: the full product into a reused buffer beats
            # gathering (copying) the active rows of a multi-MB delta matrix every frame.
            np.dot(w, self.deltas, out=self.mixed)
        elif len(active):
            np.dot(w[active], self.deltas[active], out=self.mixed)
        else:
            self.mixed[:] = 0.0
        self.mixed += self.base_moving
        if self.contiguous:
            self.dyn.write(self.mixed)
        else:
            self.frame[self.moving] = self.mixed.reshape(-1, 6)
            self.dyn.write(self.frame)
        self.last_w = w.copy()

    def release(self) -> None:
        for obj in (self.vao, self.dyn, self.static, self.ibo, self.texture):
            if obj is not None:
                obj.release()


SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")


def create_egl_context(device_index: int | None = None):
    """A standalone EGL context: on ``device_index``, or (None) the first hardware device, else device 0.

    On an NVIDIA machine EGL lists the GPU(s) beside Mesa's software device; this picks the GPU without
    configuration. ``FACESTAGE_EGL_DEVICE`` (read by ``RenderThread``) pins one.
    """
    import moderngl

    def make(i: int):
        return moderngl.create_context(standalone=True, backend="egl", device_index=i)

    if device_index is not None:
        try:
            return make(device_index)
        except Exception as exc:  # noqa: BLE001 - any EGL failure becomes one clear message
            raise ConfigError(f"cannot create an EGL OpenGL context on device {device_index}: {exc}") from exc
    first = None
    for i in range(8):
        try:
            ctx = make(i)
        except Exception:  # noqa: BLE001 - past the last device
            break
        name = str(ctx.info.get("GL_RENDERER", "")).lower()
        if not any(s in name for s in SOFTWARE_RENDERERS):
            if first is not None:
                first.release()
            return ctx
        if first is None:
            first = ctx
        else:
            ctx.release()
    if first is None:
        raise ConfigError("cannot create an EGL OpenGL context: no EGL device (install libegl1 and Mesa)")
    return first


class GLRenderer:
    """Owns one moderngl context. Create and call it on a single thread."""

    def __init__(self, device_index: int | None = None, msaa: int = 4, max_avatars: int = 8) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = create_egl_context(device_index)
        self.msaa = int(msaa)
        self.prog = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self.quad_prog = self.ctx.program(vertex_shader=QUAD_VS, fragment_shader=QUAD_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4")
        self.quad_vbo = self.ctx.buffer(quad.tobytes())
        self.quad_vao = self.ctx.vertex_array(self.quad_prog, [(self.quad_vbo, "2f", "in_xy")])
        self.white = self.ctx.texture((1, 1), 3, bytes([255, 255, 255]))
        self._avatars: dict[int, list[_GpuPart]] = {}
        self._order: list[int] = []
        self._max_avatars = max_avatars
        self._fbo_size: tuple[int, int] | None = None
        self._bg_tex = None
        self._set_lights()

    @property
    def info(self) -> dict:
        return {"renderer": self.ctx.info.get("GL_RENDERER"), "version": self.ctx.version_code}

    def _set_lights(self) -> None:
        p = self.prog
        for name, val in (("u_key_dir", scene.unit(scene.KEY_DIR)), ("u_key_col", scene.KEY_COLOR),
                          ("u_fill_dir", scene.unit(scene.FILL_DIR)), ("u_fill_col", scene.FILL_COLOR),
                          ("u_rim_dir", scene.unit(scene.RIM_DIR)), ("u_rim_col", scene.RIM_COLOR),
                          ("u_sky", scene.SKY_COLOR), ("u_ground", scene.GROUND_COLOR)):
            p[name].value = tuple(float(v) for v in val)
        p["u_tex"].value = 0

    def _ensure_fbo(self, w: int, h: int) -> None:
        if self._fbo_size == (w, h):
            return
        ctx = self.ctx
        if self._fbo_size is not None:
            for f in self._fbos:
                f.release()
        samples = self.msaa if self.msaa > 1 else 0
        color = ctx.renderbuffer((w, h), 4, samples=samples)
        depth = ctx.depth_renderbuffer((w, h), samples=samples)
        self.fbo = ctx.framebuffer([color], depth)
        self._fbos = [self.fbo]
        if samples:
            self.resolve = ctx.framebuffer([ctx.renderbuffer((w, h), 4)])
            self._fbos.append(self.resolve)
        else:
            self.resolve = self.fbo
        self._fbo_size = (w, h)
        self._readback = np.empty((h, w, 4), np.uint8)  # reused: no per-frame allocation for the read

    def _gpu(self, avatar: Avatar) -> list[_GpuPart]:
        parts = self._avatars.get(avatar.uid)
        if parts is None:
            parts = [_GpuPart(self.ctx, self.prog, p) for p in avatar.parts]
            self._avatars[avatar.uid] = parts
            self._order.append(avatar.uid)
            while len(self._order) > self._max_avatars:  # keep GPU memory bounded
                for gp in self._avatars.pop(self._order.pop(0)):
                    gp.release()
        return parts

    def forget(self, avatar: Avatar) -> None:
        for gp in self._avatars.pop(avatar.uid, []):
            gp.release()
        if avatar.uid in self._order:
            self._order.remove(avatar.uid)

    def render(self, avatar: Avatar, weights: np.ndarray, head_rot, neck_rot, width: int, height: int,
               background=None, framing: str = "head") -> np.ndarray:
        ctx = self.ctx
        self._ensure_fbo(width, height)
        cam = scene.frame_camera(avatar, framing, width, height)
        head_m, neck_m = scene.bone_matrices(avatar.head_pivot, avatar.neck_pivot, head_rot, neck_rot)
        kind, bg = scene.parse_background(background, width, height)
        self.fbo.use()
        ctx.viewport = (0, 0, width, height)
        if kind == "color":
            ctx.clear(*bg.tolist(), 1.0)
        else:
            ctx.clear(0.0, 0.0, 0.0, 0.0)
        if kind == "image":
            ctx.disable(self._mgl.DEPTH_TEST)
            if self._bg_tex is None or self._bg_tex.size != (width, height):
                if self._bg_tex is not None:
                    self._bg_tex.release()
                self._bg_tex = ctx.texture((width, height), 3)
            self._bg_tex.write(bg.tobytes())
            self._bg_tex.use(0)
            self.quad_vao.render(self._mgl.TRIANGLE_STRIP)
        ctx.enable(self._mgl.DEPTH_TEST)
        p = self.prog
        p["u_viewproj"].write((cam.proj @ cam.view).T.astype("f4").tobytes())
        p["u_head"].write(head_m.T.astype("f4").tobytes())
        p["u_neck"].write(neck_m.T.astype("f4").tobytes())
        p["u_eye"].value = tuple(float(v) for v in cam.eye)
        hidden = set(avatar.meta.get("photo_hide", ())) if framing == "photo" else set()
        for gp in self._gpu(avatar):
            if gp.part.name in hidden:
                continue  # the photo itself shows hair, neck and body
            m = gp.part.material
            gp.update(weights)
            p["u_color"].value = tuple(float(c) for c in m.color)
            p["u_rough"].value = float(m.roughness)
            p["u_spec"].value = float(m.specular)
            p["u_sss"].value = float(m.subsurface)
            p["u_unlit"].value = 1 if m.unlit else 0
            (gp.texture or self.white).use(0)
            # Culling closed meshes spares llvmpipe the set-up of half the triangles.
            if m.double_sided:
                ctx.disable(self._mgl.CULL_FACE)
            else:
                ctx.enable(self._mgl.CULL_FACE)
            gp.vao.render()
        if self.resolve is not self.fbo:
            ctx.copy_framebuffer(self.resolve, self.fbo)
        self.resolve.read_into(self._readback, components=4, alignment=1)
        return self._readback[::-1].copy()  # GL rows are bottom-up; the caller owns its frame

    def close(self) -> None:
        for uid in list(self._avatars):
            for gp in self._avatars.pop(uid):
                gp.release()
        self.ctx.release()
