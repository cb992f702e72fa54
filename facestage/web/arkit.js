// ARKit-52 names (the weights stream's order, docs/protocol.md), the preset fallback for VRMs without
// perfect-sync expressions, and the viseme → ARKit mouth shapes of facestage/speech/visemes.py.
export const ARKIT = ["browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
  "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
  "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
  "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
  "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft",
  "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
  "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
  "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
  "tongueOut"];

// VRM 1.0 presets as ARKit mixes, for VRMs without ARKit-named (perfect-sync) expressions: the same table as
// facestage/avatar/gltf_export.py's VRM_PRESETS (the exporter binds preset p to these morphs at these weights;
// tests/test_web_assets.py compares the two; docs/web3d.md documents it). JSON between the markers.
// Eye direction goes through the VRM lookAt (yaw/pitch), not presets.
// PRESET_TABLE_BEGIN
export const PRESET_FALLBACK = {
  "aa": {"jawOpen": 1.0}, "ih": {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0},
  "ou": {"mouthPucker": 1.0}, "ee": {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.6}, "oh": {"mouthFunnel": 1.0},
  "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, "blinkLeft": {"eyeBlinkLeft": 1.0},
  "blinkRight": {"eyeBlinkRight": 1.0}, "happy": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
  "angry": {"browDownLeft": 1.0, "browDownRight": 1.0}, "sad": {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0},
  "surprised": {"eyeWideLeft": 1.0, "eyeWideRight": 1.0, "browInnerUp": 0.8}
};
// PRESET_TABLE_END
// Presets share ARKit shapes (blink and blinkLeft both hold eyeBlinkLeft; happy and ee both smile), so each
// weight is spent once: in this order, a preset takes the largest value whose mix still fits inside what is
// left (min over its shapes of left/weight), and that mix is subtracted. Both eyes shut → blink, one eye →
// blinkLeft/Right; a smile → happy before ee. Order: whole-face presets first, then the mouth shapes.
export const PRESET_ORDER = ["blink", "blinkLeft", "blinkRight", "happy", "angry", "sad", "surprised", "aa", "ih", "ou", "oh", "ee"];
export function presetValues(weights) {
  const left = { ...weights }, out = {};
  for (const p of PRESET_ORDER) {
    const mix = Object.entries(PRESET_FALLBACK[p]);
    const v = Math.max(0, Math.min(1, ...mix.map(([k, x]) => (left[k] || 0) / x)));
    out[p] = v;
    for (const [k, x] of mix) left[k] = (left[k] || 0) - v * x;
  }
  return out;
}

export const VISEME_TO_ARKIT = {
  sil: {},
  PP: { mouthClose: 0.25, mouthPressLeft: 0.6, mouthPressRight: 0.6, mouthRollLower: 0.2 },
  FF: { jawOpen: 0.05, mouthRollLower: 0.6, mouthUpperUpLeft: 0.3, mouthUpperUpRight: 0.3 },
  TH: { jawOpen: 0.12, tongueOut: 0.4, mouthStretchLeft: 0.1, mouthStretchRight: 0.1 },
  DD: { jawOpen: 0.12, mouthStretchLeft: 0.2, mouthStretchRight: 0.2 },
  kk: { jawOpen: 0.15, mouthStretchLeft: 0.15, mouthStretchRight: 0.15 },
  CH: { jawOpen: 0.1, mouthFunnel: 0.5, mouthPucker: 0.25 },
  SS: { jawOpen: 0.05, mouthStretchLeft: 0.35, mouthStretchRight: 0.35, mouthSmileLeft: 0.15, mouthSmileRight: 0.15 },
  nn: { jawOpen: 0.1, mouthStretchLeft: 0.1, mouthStretchRight: 0.1 },
  RR: { jawOpen: 0.15, mouthPucker: 0.4, mouthFunnel: 0.3 },
  aa: { jawOpen: 0.7, mouthLowerDownLeft: 0.3, mouthLowerDownRight: 0.3 },
  E: { jawOpen: 0.5, mouthStretchLeft: 0.35, mouthStretchRight: 0.35, mouthSmileLeft: 0.1, mouthSmileRight: 0.1 },
  ih: { jawOpen: 0.35, mouthStretchLeft: 0.45, mouthStretchRight: 0.45, mouthSmileLeft: 0.25, mouthSmileRight: 0.25 },
  oh: { jawOpen: 0.5, mouthFunnel: 0.55, mouthPucker: 0.2 },
  ou: { jawOpen: 0.25, mouthPucker: 0.75, mouthFunnel: 0.3 },
};

// Mouth weights at time t (s) of a timed viseme list [[start, end, viseme], …], cross-faded over ±40 ms so
// consecutive visemes blend (coarticulation) instead of snapping.
export function visemeWeights(visemes, t) {
  const out = {};
  let total = 0;
  for (const [s, e, v] of visemes) {
    const fade = 0.04, w = Math.max(0, Math.min(1, (t - s + fade) / (2 * fade), (e + fade - t) / (2 * fade)));
    if (w <= 0) continue;
    total += w;
    for (const [k, x] of Object.entries(VISEME_TO_ARKIT[v] || {})) out[k] = (out[k] || 0) + w * x;
  }
  if (total > 1) for (const k in out) out[k] /= total;
  return out;
}

// float16 little-endian → number (the binary weights frame: 52 weights then yaw, pitch, roll in degrees).
export function decodeWeights(payload) {
  const dv = new DataView(payload), n = payload.byteLength / 2, vals = new Array(n);
  for (let i = 0; i < n; i++) {
    const h = dv.getUint16(2 * i, true), s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    vals[i] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  const weights = {};
  ARKIT.forEach((k, i) => { weights[k] = vals[i] || 0; });
  return { weights, pose: { yaw: vals[52] || 0, pitch: vals[53] || 0, roll: vals[54] || 0 } };
}
