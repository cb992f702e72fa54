"""pyrender backend: the same avatar scene (geometry, camera, three lights) for comparison with moderngl.

Blendshapes and linear-blend skinning run on the CPU here (``avatar.skeleton.skin_points``, the same maths
as the moderngl vertex shader; pyrender has no morph-target or custom skinning path), and the vertex buffer
of each primitive is overwritten in place with ``glBufferSubData`` instead of
rebuilding ``Mesh.from_trimesh`` every frame (~10 ms extra on 20k triangles).
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # must precede the first OpenGL import

import numpy as np  # noqa: E402

from ..avatar.model import Avatar, MeshPart  # noqa: E402
from ..avatar.skeleton import skin_points  # noqa: E402
from ..errors import ConfigError  # noqa: E402
from . import scene  # noqa: E402


class _PyrPart:
    def __init__(self, part: MeshPart, joints: np.ndarray, weights: np.ndarray) -> None:
        import pyrender

        self.part = part
        m = part.material
        tex = None
        if m.texture is not None:
            rgba = m.texture.shape[2] == 4 and m.alpha_mode != "OPAQUE"
            sampler = None
            if min(m.texture.shape[:2]) < 8:  # a lookup strip (alpha ramp): no mipmaps, as in gl_renderer
                from OpenGL.GL import GL_CLAMP_TO_EDGE, GL_LINEAR

                sampler = pyrender.Sampler(magFilter=GL_LINEAR, minFilter=GL_LINEAR, wrapS=GL_CLAMP_TO_EDGE,
                                           wrapT=GL_CLAMP_TO_EDGE)
            tex = pyrender.Texture(source=np.ascontiguousarray(m.texture if rgba else m.texture[:, :, :3]),
                                   source_channels="RGBA" if rgba else "RGB", sampler=sampler)
        # pyrender has no unlit material and its emissive path renders near-black here, so unlit (photo)
        # textures are drawn lit: same picture, photo shading plus scene lighting.
        color = list(m.color) if m.alpha_mode == "BLEND" else [*m.color[:3], 1.0]
        mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=color, baseColorTexture=tex,
                                                 metallicFactor=0.0, roughnessFactor=float(m.roughness),
                                                 doubleSided=True, alphaMode=m.alpha_mode,
                                                 alphaCutoff=float(m.alpha_cutoff))
        # pyrender's uv origin is the bottom row; ours is the top row.
        uv = np.column_stack([part.uvs[:, 0], 1.0 - part.uvs[:, 1]]).astype(np.float32)
        colors = np.hstack([part.colors, np.ones((part.vertex_count, 1), np.float32)])
        self.prim = pyrender.Primitive(positions=part.positions.copy(), normals=part.normals.copy(),
                                       texcoord_0=uv, color_0=colors, indices=_visible_triangles(part).astype(np.int64),
                                       material=mat)
        self.mesh = pyrender.Mesh([self.prim])
        self.interleaved = np.hstack([part.positions, part.normals, uv, colors]).astype(np.float32)
        self.joints, self.weights = joints, weights

    def update(self, weights: np.ndarray, skin: np.ndarray) -> None:
        from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

        pn = self.part.deformed(weights)
        p, n = skin_points(skin, self.joints, self.weights, pn[:, :3].astype(np.float64),
                           pn[:, 3:].astype(np.float64))
        self.interleaved[:, :3] = p
        self.interleaved[:, 3:6] = n
        if self.prim._buffers:  # bound to the context: overwrite its VBO in place
            glBindBuffer(GL_ARRAY_BUFFER, self.prim._buffers[0])
            glBufferSubData(GL_ARRAY_BUFFER, 0, self.interleaved.nbytes, self.interleaved)
        else:
            self.prim.positions = self.interleaved[:, :3].copy()
            self.prim.normals = self.interleaved[:, 3:6].copy()


def _visible_triangles(part: MeshPart) -> np.ndarray:
    """Triangles to draw. pyrender has no alpha-MASK cut-out, so for a MASK part the triangles that are
    transparent at their corners are dropped instead: cut by a lookup strip (clothing edges), those clear
    at every corner; with an image (hair strands, blurred by a 4-texel box so a strand's sides count), those
    whose corners are mostly clear."""
    m = part.material
    if m.alpha_mode != "MASK" or m.texture is None or m.texture.ndim != 3 or m.texture.shape[2] < 4:
        return part.indices
    if m.texture.shape[0] < 8:
        strip = m.texture[0, :, 3].astype(float) / 255.0
        u = np.clip(part.uvs[:, 0], 0, 1) * (len(strip) - 1)
        alpha = np.interp(u, np.arange(len(strip)), strip)
        return part.indices[(alpha[part.indices] >= m.alpha_cutoff).any(axis=1)]
    import cv2

    a = cv2.blur(m.texture[:, :, 3].astype(np.float32) / 255.0, (4, 4))
    h, w = a.shape
    x = np.clip((part.uvs[:, 0] * (w - 1)).round().astype(int), 0, w - 1)
    y = np.clip((part.uvs[:, 1] * (h - 1)).round().astype(int), 0, h - 1)
    alpha = a[y, x]
    return part.indices[alpha[part.indices].mean(axis=1) >= m.alpha_cutoff]


class PyrenderRenderer:
    """Owns a pyrender OffscreenRenderer; call from one thread only (``RenderThread`` does)."""

    def __init__(self) -> None:
        try:
            import pyrender
        except Exception as exc:  # noqa: BLE001 - ImportError or a PyOpenGL platform error
            raise ConfigError(f"pyrender is not usable here: {exc} (pip install 'facestage[pyrender]')") from exc
        self._pyrender = pyrender
        self._renderer = None
        self._size: tuple[int, int] | None = None
        self._scenes: dict[int, tuple] = {}

    @property
    def info(self) -> dict:
        from OpenGL.GL import GL_RENDERER, glGetString

        r = glGetString(GL_RENDERER)
        return {"renderer": r.decode() if isinstance(r, bytes) else str(r), "version": None}

    def _scene(self, avatar: Avatar):
        pr = self._pyrender
        cached = self._scenes.get(avatar.uid)
        if cached is not None:
            return cached
        sc = pr.Scene(ambient_light=0.5 * (scene.SKY_COLOR + scene.GROUND_COLOR), bg_color=[0, 0, 0, 0])
        _, skins = avatar.skinning()
        parts = [_PyrPart(p, j, w) for p, (j, w) in zip(avatar.parts, skins, strict=True)]
        nodes = {p.part.name: sc.add(p.mesh) for p in parts}
        for d, c in ((scene.KEY_DIR, scene.KEY_COLOR), (scene.FILL_DIR, scene.FILL_COLOR),
                     (scene.RIM_DIR, scene.RIM_COLOR)):
            intensity = float(np.max(c))
            light = pr.DirectionalLight(color=c / intensity, intensity=intensity * 2.2)
            sc.add(light, pose=_look_along(-scene.unit(d)))
        cached = (sc, parts, nodes, {})
        self._scenes[avatar.uid] = cached
        return cached

    def forget(self, avatar: Avatar) -> None:
        self._scenes.pop(avatar.uid, None)

    def render(self, avatar: Avatar, weights: np.ndarray, head_rot, neck_rot, width: int, height: int,
               background=None, framing: str = "head", spine_rot=(0.0, 0.0, 0.0),
               pose: dict | None = None) -> np.ndarray:
        pr = self._pyrender
        if self._renderer is None or self._size != (width, height):
            if self._renderer is not None:
                self._renderer.delete()
            self._renderer = pr.OffscreenRenderer(width, height)
            self._size = (width, height)
            self._scenes.clear()  # buffers belonged to the old context
        sc, parts, nodes, cams = self._scene(avatar)
        cam = scene.frame_camera(avatar, framing, width, height)
        key = (framing, width, height)
        if key not in cams:
            if cam.ortho is not None:
                left, right, bottom, top = cam.ortho
                pc = pr.OrthographicCamera(xmag=(right - left) / 2, ymag=(top - bottom) / 2, znear=0.5, zfar=4.0)
                cam_pose = np.eye(4)
                cam_pose[:3, 3] = ((left + right) / 2, (bottom + top) / 2, cam.eye[2])
            else:
                pc = pr.PerspectiveCamera(yfov=cam.yfov, aspectRatio=width / height,
                                          znear=float(cam.eye[2]) * 0.1, zfar=float(cam.eye[2]) * 4)
                cam_pose = np.linalg.inv(cam.view)
            cams[key] = (pc, cam_pose)
        for n in list(sc.camera_nodes):
            sc.remove_node(n)
        pc, cam_pose = cams[key]
        sc.add(pc, pose=cam_pose)
        hidden = set(avatar.meta.get("photo_hide", ())) if framing == "photo" else set()
        for name, node in nodes.items():
            node.mesh.is_visible = name not in hidden
        skin = scene.skin_matrices(avatar, weights, head_rot, neck_rot, spine_rot, pose)
        for p in parts:
            p.update(weights, skin)
        kind, bg = scene.parse_background(background, width, height)
        sc.bg_color = [*bg.tolist(), 1.0] if kind == "color" else [0.0, 0.0, 0.0, 0.0]
        color, _ = self._renderer.render(sc, flags=pr.RenderFlags.RGBA | pr.RenderFlags.SKIP_CULL_FACES)
        rgba = np.ascontiguousarray(color)
        if kind in ("image", "color"):  # pyrender writes fragment alpha (cut-out edges, lashes): composite
            a = rgba[:, :, 3:4].astype(np.float32) / 255.0
            under = bg if kind == "image" else (np.asarray(bg) * 255.0)
            rgba[:, :, :3] = (rgba[:, :, :3] * a + under * (1 - a)).astype(np.uint8)
            rgba[:, :, 3] = 255
        return rgba

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None


def _look_along(direction: np.ndarray) -> np.ndarray:
    """Pose whose -Z axis points along ``direction`` (pyrender lights shine down their -Z)."""
    z = -direction / np.linalg.norm(direction)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.95 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = x, y, z
    return m
