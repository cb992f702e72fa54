"""GLSL for the moderngl renderer: skinned + morphed avatar, background quad, FXAA."""

from __future__ import annotations

from ..avatar.skeleton import MAX_JOINTS

VERTEX_SHADER = """
#version 330
layout(std140) uniform Joints { mat4 u_joints[MAX_JOINTS]; };
uniform mat4 u_viewproj;
uniform sampler2D u_morph;   // deltas of the moving vertices, see _MorphTexture
uniform int u_morph_width;
uniform int u_morph_shapes;
uniform int u_nactive;       // shapes with a non-zero weight this frame
uniform int u_active[52];
uniform float u_mweight[52];
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec2 in_uv;
in ivec4 in_joints;
in vec4 in_weights;
in int in_morph;             // row in the morph texture, -1 for vertices no shape moves
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
out vec2 v_uv;
out float v_occl;
void main() {
    vec3 p = in_pos;
    vec3 n = in_nrm;
#ifdef MORPH
    if (in_morph >= 0) {
        int x = in_morph % u_morph_width;
        int band = (in_morph / u_morph_width) * u_morph_shapes * 2;
        for (int i = 0; i < u_nactive; i++) {
            int s = band + 2 * u_active[i];
            p += u_mweight[i] * texelFetch(u_morph, ivec2(x, s), 0).xyz;
            n += u_mweight[i] * texelFetch(u_morph, ivec2(x, s + 1), 0).xyz;
        }
    }
#endif
    float rest = max(0.0, 1.0 - dot(in_weights, vec4(1.0)));
    mat4 m = u_joints[in_joints.x] * in_weights.x + u_joints[in_joints.y] * in_weights.y
           + u_joints[in_joints.z] * in_weights.z + u_joints[in_joints.w] * in_weights.w + mat4(1.0) * rest;
    vec4 wp = m * vec4(p, 1.0);
    v_pos = wp.xyz;
    v_nrm = mat3(m) * n;
    v_col = in_col;
    // Cavity occlusion: painted-dark regions (mouth interior) get no highlights. A function of the vertex
    // colour alone, so per vertex (interpolated) rather than a smoothstep per fragment.
    v_occl = smoothstep(0.06, 0.3, max(in_col.r, max(in_col.g, in_col.b)));
    v_uv = in_uv;
    gl_Position = u_viewproj * wp;
}
""".replace("MAX_JOINTS", str(MAX_JOINTS))

FRAGMENT_SHADER = """
#version 330
uniform vec3 u_eye;
uniform vec4 u_color;
// Material terms folded on the CPU (``gl_renderer.material_uniforms``): per-fragment work on uniforms is
// not hoisted by llvmpipe, it runs for every pixel.
uniform float u_shin;        // Blinn-Phong exponent from roughness
uniform float u_spec_n;      // specular × energy normalisation (shin + 8) / 25
uniform float u_wrap;        // wrapped-diffuse offset 0.5·subsurface
uniform float u_wrap_n;      // 1 / (1 + u_wrap)
uniform vec3 u_scatter;      // subsurface × the red scatter tint
uniform float u_cutoff;
uniform float u_toon;        // MToon approximation: 0 smooth, 1 hard two-tone
uniform vec3 u_shade;        // MToon shade colour (multiplies albedo in the shadowed band)
uniform sampler2D u_tex;
uniform vec3 u_key_dir; uniform vec3 u_key_col;
uniform vec3 u_fill_dir; uniform vec3 u_fill_col;
uniform vec3 u_rim_dir; uniform vec3 u_rim_col;
uniform vec3 u_sky; uniform vec3 u_ground;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
in vec2 v_uv;
in float v_occl;
out vec4 f_color;

// Gamma 2.0 (square / square root) instead of 2.2: two pow() per fragment cost llvmpipe ~1 ms at 512².
vec3 to_linear(vec3 c) { return c * c; }

// pow(t, s) = exp2(s·ln t / ln 2) with ln t ≈ d − d²/2 (d = t − 1): off by < 0.1 % of the peak for t > 0.8
// at skin's shininess (~20); only very rough materials (s ≈ 2) get a far tail up to 6 % of the peak
// brighter. Spares llvmpipe the log2 polynomial per light (−0.5 ms at 512², ava, interleaved).
float spec_pow(float t, float s) {
    float d = t - 1.0;
    return exp2(s * 1.442695 * (d - 0.5 * d * d));
}

vec3 light(vec3 n, vec3 v, vec3 l, vec3 col, vec3 albedo) {
    float ndl = dot(n, l);
#ifdef TOON
    float band = smoothstep(0.0, 0.1 + 0.4 * (1.0 - u_toon), ndl);
    return col * mix(albedo * u_shade, albedo, band);
#else
    float diff = max(0.0, (ndl + u_wrap) * u_wrap_n);
    // Skin scatters red light past the terminator.
    vec3 scatter = u_scatter * max(0.0, 1.0 - abs(ndl + 0.1) * 3.0);
    vec3 h = normalize(l + v);
    float spec = v_occl * u_spec_n * spec_pow(max(0.0, dot(n, h)), u_shin) * step(0.0, ndl);
    return col * (albedo * (diff + scatter) + vec3(spec));
#endif
}

void main() {
#ifdef TEXTURED
    vec4 tex = texture(u_tex, v_uv);
#else
    const vec4 tex = vec4(1.0);
#endif
    float alpha = u_color.a * tex.a;
#ifdef MASK
    if (alpha < u_cutoff) discard;
#endif
#ifndef BLEND
    alpha = 1.0;  // opaque and cut-out surfaces cover the pixel fully
#endif
    vec3 base = u_color.rgb * v_col * tex.rgb;
#ifdef UNLIT
    f_color = vec4(base, alpha);
#else
    vec3 albedo = to_linear(base);
    vec3 n = normalize(v_nrm);
    vec3 v = normalize(u_eye - v_pos);
    if (dot(n, v) < 0.0) n = -n;  // lids and shells are seen from both sides
    vec3 c = albedo * mix(u_ground, u_sky, 0.5 + 0.5 * n.y);
    c += light(n, v, u_key_dir, u_key_col, albedo);
    c += light(n, v, u_fill_dir, u_fill_col, albedo);
    float fr = 1.0 - max(dot(n, v), 0.0);
    float rim = fr * fr * fr * max(0.0, dot(n, u_rim_dir) + 0.35);
    c += u_rim_col * rim * (0.35 + 0.65 * albedo) * v_occl;
    c = c / (1.0 + 0.15 * c);  // gentle highlight roll-off
    f_color = vec4(sqrt(c), alpha);
#endif
}
"""


def specialise(source: str, *defines: str) -> str:
    """``source`` with ``#define``s after its ``#version`` line.

    llvmpipe runs both sides of every branch (and the code after a ``discard``) for all pixels: measured,
    an FXAA edge path that no pixel takes costs as much as one every pixel takes. So material switches are
    compile-time, one program per combination, never uniform ``if``s."""
    head, rest = source.lstrip().split("\n", 1)
    return "\n".join([head, *(f"#define {d}" for d in defines), rest])

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

# FXAA (Lottes' classic low-quality variant): five taps find the edge direction, two or four taps along
# it blend the step. Alpha is filtered with colour so silhouettes over a transparent background are soft.
# The five detection taps sit on texel centres: texelFetch, not a bilinear texture() (1.7 ms less at 512²).
FXAA_VS = """
#version 330
in vec2 in_xy;
out vec2 v_uv;
void main() { v_uv = in_xy * 0.5 + 0.5; gl_Position = vec4(in_xy, 0.0, 1.0); }
"""
FXAA_FS = """
#version 330
uniform sampler2D u_tex;
uniform vec2 u_px;
in vec2 v_uv;
out vec4 f_color;
float luma(vec4 c) { return dot(c.rgb, vec3(0.299, 0.587, 0.114)) + 0.5 * c.a; }
void main() {
    ivec2 q = ivec2(gl_FragCoord.xy);
    vec4 cm = texelFetch(u_tex, q, 0);
    float nw = luma(texelFetch(u_tex, q + ivec2(-1, -1), 0));
    float ne = luma(texelFetch(u_tex, q + ivec2(1, -1), 0));
    float sw = luma(texelFetch(u_tex, q + ivec2(-1, 1), 0));
    float se = luma(texelFetch(u_tex, q + ivec2(1, 1), 0));
    float m = luma(cm);
    float lo = min(m, min(min(nw, ne), min(sw, se)));
    float hi = max(m, max(max(nw, ne), max(sw, se)));
    if (hi - lo < 0.04) { f_color = cm; return; }
    vec2 dir = vec2(-((nw + ne) - (sw + se)), (nw + sw) - (ne + se));
    float reduce = max((nw + ne + sw + se) * 0.03125, 1.0 / 128.0);
    float rcp = 1.0 / (min(abs(dir.x), abs(dir.y)) + reduce);
    dir = clamp(dir * rcp, vec2(-8.0), vec2(8.0)) * u_px;
    vec4 a = 0.5 * (textureLod(u_tex, v_uv + dir * (1.0 / 3.0 - 0.5), 0.0)
                    + textureLod(u_tex, v_uv + dir * (2.0 / 3.0 - 0.5), 0.0));
    vec4 b = a * 0.5 + 0.25 * (textureLod(u_tex, v_uv - dir * 0.5, 0.0) + textureLod(u_tex, v_uv + dir * 0.5, 0.0));
    float lb = luma(b);
    f_color = (lb < lo || lb > hi) ? a : b;
}
"""
