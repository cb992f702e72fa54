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

// VRM 1.0 preset ← ARKit mix, used only when a VRM has no ARKit-named (perfect-sync) expressions. Each preset
// takes the mean of its sources times the gain; the inverse of facestage/avatar/gltf_export.py's VRM_PRESETS
// (documented in docs/web3d.md). Eye direction goes through the VRM lookAt (yaw/pitch), not these presets.
export const PRESET_FALLBACK = {
  aa: [["jawOpen"], 1.0],
  ih: [["mouthStretchLeft", "mouthStretchRight"], 1.0],
  ou: [["mouthPucker"], 1.0],
  ee: [["mouthSmileLeft", "mouthSmileRight"], 0.5],
  oh: [["mouthFunnel"], 1.0],
  blinkLeft: [["eyeBlinkLeft"], 1.0],
  blinkRight: [["eyeBlinkRight"], 1.0],
  happy: [["mouthSmileLeft", "mouthSmileRight"], 1.0],
  angry: [["browDownLeft", "browDownRight"], 1.0],
  sad: [["mouthFrownLeft", "mouthFrownRight"], 1.0],
  surprised: [["eyeWideLeft", "eyeWideRight"], 1.0],
};

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
