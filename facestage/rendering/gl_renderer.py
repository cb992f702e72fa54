"""moderngl (EGL) offscreen renderer. Not thread-safe by design: use it through ``RenderThread``.

Everything per vertex happens in the vertex shader, so a frame uploads only a few hundred bytes:
- morph targets: each part's blendshape deltas live in a float texture (``_MorphTexture``); the shader sums
  the *active* shapes (indices and weights in uniforms) for vertices that any shape moves;
- linear-blend skinning: ≤ 4 joints per vertex blended from a uniform block of skin matrices;
- shading: three-point lights with wrapped diffuse and a red scatter term for skin, texture alpha modes.
Anti-aliasing is on for every frame: MSAA when ``msaa > 1``, else an FXAA pass (cheap on llvmpipe).
Shaped by llvmpipe (docs/avatar.md): one program per material combination (its SIMD code runs both sides
of every branch), triangles in Morton order (shaded vertices are reused only within a batch), parts front
to back (it depth-tests before shading).
"""

from __future__ import annotations

import numpy as np

from ..avatar.model import Avatar, MeshPart
from ..avatar.skeleton import MAX_JOINTS
from ..errors import ConfigError
from . import scene
from .shaders import FRAGMENT_SHADER, FXAA_FS, FXAA_VS, QUAD_FS, QUAD_VS, VERTEX_SHADER, specialise

NUM_SHAPES = 52
ALPHA_MODES = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}
ACTIVE_MIN = 0.004  # weights below this move a face by < 0.1 mm: not worth two texel fetches per vertex
LOOKUP_TEXTURE = 8  # textures thinner than this are lookup strips: no mipmaps


DRAW_ORDER = {"hair_2": 0, "hair": 1, "clothing": 2, "skin": 3, "eye_l": 4, "eye_r": 4}


def _features(part: MeshPart, textured: bool, morph: bool) -> tuple[str, ...]:
    """The compile-time switches of a part's program (see ``shaders.specialise``)."""
    m = part.material
    f = ["MORPH"] if morph else []
    if textured:
        f.append("TEXTURED")
    if m.alpha_mode in ("MASK", "BLEND"):
        f.append(m.alpha_mode)
    if m.unlit:
        f.append("UNLIT")
    elif m.toon > 0:
        f.append("TOON")
    return tuple(f)


MORTON_BITS = 10  # per axis: 1024 cells over a part's extent, ~0.3 mm on a head, finer than its triangles


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 10 bits (the usual 3-D Morton interleave)."""
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


def spatial_order(positions: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Triangle order along a Morton (Z-order) curve of their centroids.

    llvmpipe shades vertices on the calling thread in batches and reuses a vertex only within a batch, so
    neighbours drawn together are shaded once: on the ava skin (11 k triangles) the draw call went from
    6-9 ms to 1.5 ms (wall, interleaved runs), and this is serial work before the raster threads start."""
    c = positions[tris].mean(axis=1)
    lo, span = c.min(axis=0), np.ptp(c, axis=0) + 1e-12
    q = ((c - lo) / span * (2**MORTON_BITS - 1)).astype(np.int64)
    code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << 1) | (_spread_bits(q[:, 2]) << 2)
    return np.argsort(code, kind="stable")


SCATTER_TINT = (0.25, 0.06, 0.03)  # skin scatters red light past the terminator


def material_uniforms(m) -> tuple[tuple[str, object], ...]:
    """A material's shader uniforms, with every term that depends on the material alone folded here."""
    r = min(max(float(m.roughness), 0.05), 1.0)
    shin = 2.0 / r**4 - 2.0  # Blinn-Phong exponent matching a GGX lobe of this roughness
    wrap = 0.5 * float(m.subsurface)
    return (("u_color", tuple(float(c) for c in m.color)), ("u_shin", shin),
            ("u_spec_n", float(m.specular) * (shin + 8.0) / 25.0), ("u_wrap", wrap), ("u_wrap_n", 1.0 / (1.0 + wrap)),
            ("u_scatter", tuple(float(m.subsurface) * t for t in SCATTER_TINT)),
            ("u_cutoff", float(m.alpha_cutoff)), ("u_toon", float(m.toon)),
            ("u_shade", tuple(float(c) for c in m.shade_color)))


class _GpuPart:
    def __init__(self, ctx, programs, part: MeshPart, joints: np.ndarray, weights: np.ndarray) -> None:
        self.part = part
        n = part.vertex_count
        rows = np.full(n, -1, np.int32)
        self.morph = None
        if part.deltas is not None:
            d = part.deltas.reshape(part.deltas.shape[0], n, 6)
            moving = np.flatnonzero(np.abs(d).max(axis=(0, 2)) > 0)
            if len(moving):
                rows[moving] = np.arange(len(moving), dtype=np.int32)
                self.morph = _MorphTexture(ctx, d[:, moving])
        self.moving = int((rows >= 0).sum())
        vdt = np.dtype([("p", "f4", 3), ("n", "f4", 3), ("c", "f4", 3), ("uv", "f4", 2), ("j", "i4", 4),
                        ("w", "f4", 4), ("m", "i4")])
        v = np.empty(n, vdt)
        v["p"], v["n"], v["c"], v["uv"] = part.positions, part.normals, part.colors, part.uvs
        v["j"], v["w"], v["m"] = joints, weights, rows
        self.vbo = ctx.buffer(v.tobytes())
        tris = part.indices.reshape(-1, 3)
        if part.material.alpha_mode != "BLEND":  # blended parts keep their authored order (it is their sorting)
            tris = tris[spatial_order(part.positions, tris)]
        self.ibo = ctx.buffer(np.ascontiguousarray(tris, dtype="u4").tobytes())
        tex = part.material.texture
        self.uniforms = material_uniforms(part.material)
        self.prog = prog = programs(_features(part, tex is not None, self.morph is not None))
        self.vao = ctx.vertex_array(prog, [(self.vbo, "3f 3f 3f 2f 4i 4f 1i", "in_pos", "in_nrm", "in_col", "in_uv",
                                            "in_joints", "in_weights", "in_morph")], self.ibo,
                                    skip_errors=True)  # attributes a variant optimised out
        self.texture = None
        if tex is not None:
            t = np.ascontiguousarray(tex if tex.ndim == 3 else tex[:, :, None])
            self.texture = ctx.texture((t.shape[1], t.shape[0]), t.shape[2], t.tobytes())
            if min(t.shape[:2]) >= LOOKUP_TEXTURE:
                self.texture.build_mipmaps()
                self.texture.filter = (ctx.LINEAR_MIPMAP_LINEAR, ctx.LINEAR)
            else:  # a lookup strip (alpha ramp): a coarse mip would average the ramp to 0.5 and pass the cut
                self.texture.filter = (ctx.LINEAR, ctx.LINEAR)
                self.texture.repeat_x = self.texture.repeat_y = False

    def release(self) -> None:
        for obj in (self.vao, self.vbo, self.ibo, self.texture):
            if obj is not None:
                obj.release()
        if self.morph is not None:
            self.morph.tex.release()


class _MorphTexture:
    """Position and normal deltas of the moving vertices: texel (row % W, band·2S + 2·shape + {0,1})."""

    WIDTH = 4096  # ≤ GL_MAX_TEXTURE_SIZE everywhere; more moving vertices wrap into further bands

    def __init__(self, ctx, deltas: np.ndarray) -> None:
        shapes, moving, _ = deltas.shape
        bands = -(-moving // self.WIDTH)
        width = min(moving, self.WIDTH)
        img = np.zeros((bands, shapes, 2, width, 3), np.float32)
        padded = np.zeros((shapes, bands * width, 6), np.float32)
        padded[:, :moving] = deltas
        blocks = padded.reshape(shapes, bands, width, 6).transpose(1, 0, 2, 3)
        img[:, :, 0] = blocks[..., :3]
        img[:, :, 1] = blocks[..., 3:]
        self.width, self.shapes = width, shapes
        self.tex = ctx.texture((width, bands * shapes * 2), 3, img.reshape(-1).tobytes(), dtype="f4")
        self.tex.filter = (ctx.NEAREST, ctx.NEAREST)


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
        self._programs: dict[tuple[str, ...], object] = {}
        self.quad_prog = self.ctx.program(vertex_shader=QUAD_VS, fragment_shader=QUAD_FS)
        self.fxaa_prog = self.ctx.program(vertex_shader=FXAA_VS, fragment_shader=FXAA_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4")
        self.quad_vbo = self.ctx.buffer(quad.tobytes())
        self.quad_vao = self.ctx.vertex_array(self.quad_prog, [(self.quad_vbo, "2f", "in_xy")])
        self.fxaa_vao = self.ctx.vertex_array(self.fxaa_prog, [(self.quad_vbo, "2f", "in_xy")])
        self.joints_ubo = self.ctx.buffer(reserve=MAX_JOINTS * 64, dynamic=True)
        self._avatars: dict[int, list[_GpuPart]] = {}
        self._order: list[int] = []
        self._max_avatars = max_avatars
        self._fbo_size: tuple[int, int] | None = None
        self._bg_tex = None
        self.fxaa_prog["u_tex"].value = 0

    @property
    def info(self) -> dict:
        return {"renderer": self.ctx.info.get("GL_RENDERER"), "version": self.ctx.version_code,
                "antialiasing": f"msaa{self.msaa}" if self.msaa > 1 else "fxaa"}

    def _program(self, features: tuple[str, ...]):
        """The avatar program for one combination of material switches, compiled on first use."""
        prog = self._programs.get(features)
        if prog is None:
            prog = self.ctx.program(vertex_shader=specialise(VERTEX_SHADER, *features),
                                    fragment_shader=specialise(FRAGMENT_SHADER, *features))
            prog["Joints"].binding = 0
            for name, val in (("u_key_dir", scene.unit(scene.KEY_DIR)), ("u_key_col", scene.KEY_COLOR),
                              ("u_fill_dir", scene.unit(scene.FILL_DIR)), ("u_fill_col", scene.FILL_COLOR),
                              ("u_rim_dir", scene.unit(scene.RIM_DIR)), ("u_rim_col", scene.RIM_COLOR),
                              ("u_sky", scene.SKY_COLOR), ("u_ground", scene.GROUND_COLOR)):
                if name in prog:
                    prog[name].value = tuple(float(v) for v in val)
            for name, unit in (("u_tex", 0), ("u_morph", 1)):
                if name in prog:
                    prog[name].value = unit
            self._programs[features] = prog
        return prog

    def _ensure_fbo(self, w: int, h: int) -> None:
        if self._fbo_size == (w, h):
            return
        ctx = self.ctx
        if self._fbo_size is not None:
            for f in self._fbos:
                f.release()
        if self.msaa > 1:
            color = ctx.renderbuffer((w, h), 4, samples=self.msaa)
            depth = ctx.depth_renderbuffer((w, h), samples=self.msaa)
            self.fbo = ctx.framebuffer([color], depth)
            self.resolve = ctx.framebuffer([ctx.renderbuffer((w, h), 4)])
            self._scene_tex = None
        else:  # FXAA: the scene goes to a texture, the filter pass to the read-back target
            self._scene_tex = ctx.texture((w, h), 4)
            self._scene_tex.filter = (ctx.LINEAR, ctx.LINEAR)
            self._scene_tex.repeat_x = self._scene_tex.repeat_y = False
            self.fbo = ctx.framebuffer([self._scene_tex], ctx.depth_renderbuffer((w, h)))
            self.resolve = ctx.framebuffer([ctx.renderbuffer((w, h), 4)])
        self._fbos = [self.fbo, self.resolve]
        self._fbo_size = (w, h)
        self._readback = np.empty((h, w, 4), np.uint8)  # reused: no per-frame allocation for the read

    def _gpu(self, avatar: Avatar) -> list[_GpuPart]:
        parts = self._avatars.get(avatar.uid)
        if parts is None:
            _, skins = avatar.skinning()
            parts = [_GpuPart(self.ctx, self._program, p, j, w) for p, (j, w) in zip(avatar.parts, skins, strict=True)]
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

    def _draw_background(self, kind: str, bg, width: int, height: int) -> None:
        ctx = self.ctx
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

    def _active_weights(self, weights: np.ndarray) -> tuple[bytes, bytes, int]:
        w = np.asarray(weights, np.float32)
        active = np.flatnonzero(w > ACTIVE_MIN).astype(np.int32)
        idx = np.zeros(NUM_SHAPES, np.int32)
        val = np.zeros(NUM_SHAPES, np.float32)
        idx[:len(active)] = active
        val[:len(active)] = w[active]
        return idx.tobytes(), val.tobytes(), len(active)

    def render(self, avatar: Avatar, weights: np.ndarray, head_rot, neck_rot, width: int, height: int,
               background=None, framing: str = "head", spine_rot=(0.0, 0.0, 0.0),
               pose: dict | None = None) -> np.ndarray:
        ctx, mgl = self.ctx, self._mgl
        self._ensure_fbo(width, height)
        cam = scene.frame_camera(avatar, framing, width, height)
        skin = scene.skin_matrices(avatar, weights, head_rot, neck_rot, spine_rot, pose)
        kind, bg = scene.parse_background(background, width, height)
        self.fbo.use()
        ctx.viewport = (0, 0, width, height)
        self._draw_background(kind, bg, width, height)
        ctx.enable(mgl.DEPTH_TEST)
        self.joints_ubo.write(np.ascontiguousarray(skin.transpose(0, 2, 1), dtype="f4").tobytes())
        self.joints_ubo.bind_to_uniform_block(0)
        hidden = set(avatar.meta.get("photo_hide", ())) if framing == "photo" else set()
        parts = [gp for gp in self._gpu(avatar) if gp.part.name not in hidden]
        # Front to back for llvmpipe's early depth test (it runs before shading, also with ``discard``): the
        # sparse outer hair shell, the inner one, clothing, skin, then what the lids and lips hide.
        # Blended parts (lashes) go last, without depth writes, so they never hide what is behind.
        parts.sort(key=lambda gp: (gp.part.material.alpha_mode == "BLEND", DRAW_ORDER.get(gp.part.name, 5)))
        # Per-frame uniforms, once per program this avatar uses.
        viewproj = (cam.proj @ cam.view).T.astype("f4").tobytes()
        eye = tuple(float(v) for v in cam.eye)
        idx, val, self._nactive = self._active_weights(weights)
        for prog in {id(gp.prog): gp.prog for gp in parts}.values():
            prog["u_viewproj"].write(viewproj)
            if (u := prog.get("u_eye", None)) is not None:
                u.value = eye
            if (u := prog.get("u_active", None)) is not None:
                u.write(idx)
                prog["u_mweight"].write(val)
        for gp in parts:
            self._draw_part(gp)
        ctx.depth_mask = True
        ctx.disable(mgl.BLEND)
        self.resolve.use()
        if self._scene_tex is None:
            ctx.copy_framebuffer(self.resolve, self.fbo)
        else:
            ctx.disable(mgl.DEPTH_TEST)
            self._scene_tex.use(0)
            self.fxaa_prog["u_px"].value = (1.0 / width, 1.0 / height)
            self.fxaa_vao.render(mgl.TRIANGLE_STRIP)
        self.resolve.read_into(self._readback, components=4, alignment=1)
        return self._readback[::-1].copy()  # GL rows are bottom-up; the caller owns its frame

    def _draw_part(self, gp: _GpuPart) -> None:
        ctx, mgl, p = self.ctx, self._mgl, gp.prog
        m = gp.part.material
        for name, value in gp.uniforms:
            if (u := p.get(name, None)) is not None:
                u.value = value
        if gp.texture is not None:
            gp.texture.use(0)
        if gp.morph is not None:
            gp.morph.tex.use(1)
            p["u_morph_width"].value = gp.morph.width
            p["u_morph_shapes"].value = gp.morph.shapes
            p["u_nactive"].value = self._nactive
        # Culling closed meshes spares llvmpipe the set-up of half the triangles.
        if m.double_sided or m.alpha_mode == "BLEND":  # a cut-out shell (hair, top) is seen from outside
            ctx.disable(mgl.CULL_FACE)
        else:
            ctx.enable(mgl.CULL_FACE)
        if m.alpha_mode == "BLEND":
            ctx.enable(mgl.BLEND)
            ctx.blend_func = mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA
            ctx.depth_mask = False
        else:
            ctx.disable(mgl.BLEND)
            ctx.depth_mask = True
        gp.vao.render()

    def close(self) -> None:
        for uid in list(self._avatars):
            for gp in self._avatars.pop(uid):
                gp.release()
        self.ctx.release()
