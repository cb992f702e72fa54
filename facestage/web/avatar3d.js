// The browser avatar renderer every page uses: a VRM (or a GLB with ARKit morphs) drawn with three.js +
// three-vrm on the viewer's GPU, driven by the server's weights stream (~126 bytes a frame instead of a 40 KB image).
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { VRMLoaderPlugin, VRMUtils } from "@pixiv/three-vrm";
import { ARKIT, PRESET_FALLBACK, presetValues, decodeWeights, visemeWeights } from "./arkit.js";

const DEG = Math.PI / 180;
const NECK_SHARE = 0.3;  // as the server's Rig: the neck takes 30 % of the head turn
const SMOOTH_S = 0.03;   // display-rate interpolation: weights ease toward the newest packet (τ = 30 ms)
const MOUTH = new Set(ARKIT.filter((k) => k.startsWith("mouth") || k.startsWith("jaw") || k === "tongueOut"));  // speech drives these
const _euler = new THREE.Euler(), _hp = new THREE.Vector3(), _tp = new THREE.Vector3();  // render-loop scratch

export class Avatar3D {
  // canvas: a <canvas>; opts.framing "head" (head and shoulders), "body", or "none" (the caller places the camera);
  // opts.xr: the renderer is handed to WebXR.
  constructor(canvas, { framing = "head", xr = false, hooks = true } = {}) {
    this.canvas = canvas; this.framing = framing;
    this.renderer = new THREE.WebGLRenderer({ canvas, alpha: true, antialias: true, premultipliedAlpha: true });
    this.renderer.setClearColor(0x000000, 0);  // transparent: OBS and the studio's checkerboard show through
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    if (xr) this.renderer.xr.enabled = true;
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(25, 1, 0.05, 50);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x667788, 1.6));
    const key = new THREE.DirectionalLight(0xffffff, 1.8); key.position.set(0.6, 1.5, 2); this.scene.add(key);
    this.root = new THREE.Group(); this.scene.add(this.root);
    this.target = {}; this.current = {}; this.pose = { yaw: 0, pitch: 0, roll: 0 }; this.curPose = { ...this.pose };
    this.mouth = null; this.lookTarget = null; this.clock = new THREE.Timer(); this.onFrame = null;
    this.pending = [];  // packet timestamps not drawn yet: glass-to-glass latency is measured when they are
    this.stats = { ready: false, error: null, framesRendered: 0, weightsApplied: 0, packets: 0, lastWeights: {},
                   latency: null, latencies: [], fps: null, kind: null, slow: false,
                   visemeTime: null, avSyncErrorMs: null, avSyncErrors: [], presets: {} };
    if (hooks) window.fsAvatar3d = this.stats;
    this._resize();
    new ResizeObserver(() => this._resize()).observe(canvas);
  }

  _resize() {
    if (this.renderer.xr.isPresenting) return;
    const w = this.canvas.clientWidth || this.canvas.width, h = this.canvas.clientHeight || this.canvas.height;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h; this.camera.updateProjectionMatrix(); this.dirty = true;
    this.frame();
  }

  // Load a model; resolves true, or false with stats.error set (the caller shows it and keeps the page alive).
  async load(url, headers = {}) {
    this.stats.ready = false; this.stats.error = null;
    try {
      const loader = new GLTFLoader().setRequestHeader(headers);
      loader.register((parser) => new VRMLoaderPlugin(parser));
      const gltf = await loader.loadAsync(url);
      this._dispose();
      this.vrm = gltf.userData.vrm || null;
      this.model = this.vrm ? this.vrm.scene : gltf.scene;
      if (this.vrm) {
        VRMUtils.rotateVRM0(this.vrm);  // VRM 0.x faces -Z; 1.0 (ours) faces +Z toward the camera
        this.vrm.scene.traverse((o) => { o.frustumCulled = false; });  // skinned bounds lag the pose
        this._mapExpressions();
      } else {
        this._mapMorphs();
      }
      this.root.add(this.model);
      this.stats.kind = this.vrm ? "vrm" : "glb"; this.dirty = true;
      this.frame();
      this.stats.ready = true;
      return true;
    } catch (e) {
      this.stats.error = `could not load the avatar (${url}): ${e.message || e}`;
      return false;
    }
  }

  _dispose() {
    if (this.model) { this.root.remove(this.model); VRMUtils.deepDispose(this.model); }
    this.vrm = null; this.model = null;
  }

  // Perfect-sync VRMs carry one expression per ARKit name (matched case-insensitively: "JawOpen", "jawopen"…);
  // preset-only VRMs get PRESET_FALLBACK.
  _mapExpressions() {
    const names = this.vrm.expressionManager ? this.vrm.expressionManager.expressions.map((e) => e.expressionName) : [];
    const byLower = new Map(names.map((n) => [n.toLowerCase(), n]));
    this.direct = new Map();
    for (const k of ARKIT) { const n = byLower.get(k.toLowerCase()); if (n) this.direct.set(k, n); }
    // the model's own expression name for each fallback preset it has ("Blink", "blink"…)
    this.presets = this.direct.size >= 26 ? null :
      Object.fromEntries(Object.keys(PRESET_FALLBACK).filter((p) => byLower.has(p.toLowerCase())).map((p) => [p, byLower.get(p.toLowerCase())]));
    this.stats.fallback = !!this.presets;
  }

  // A plain GLB: morph targets named with ARKit names (optionally prefixed, "blendShape1.jawOpen").
  _mapMorphs() {
    this.morphs = [];
    this.model.traverse((o) => {
      if (!o.morphTargetDictionary) return;
      for (const [name, i] of Object.entries(o.morphTargetDictionary)) {
        const bare = name.split(/[._]/).pop().toLowerCase();
        const k = ARKIT.find((a) => a.toLowerCase() === bare);
        if (k) this.morphs.push([o, i, k]);
      }
    });
  }

  // One weights packet: {name: 0..1} + {yaw, pitch, roll} degrees; timestamp = capture time (ms, epoch).
  setWeights(weights, pose, timestamp) {
    this.target = weights; if (pose) this.pose = pose; this.dirty = true;
    this.stats.packets++;
    if (timestamp > 0) { this.pending.push(timestamp); if (this.pending.length > 8) this.pending.shift(); }
  }
  setWeightsBinary(payload, timestamp) { const { weights, pose } = decodeWeights(payload); this.setWeights(weights, pose, timestamp); }

  // Speech: timed visemes [[start, end, viseme], …] and a clock returning the seconds into them being heard now
  // (the Web Audio clock of the scheduled audio). sync = {ctx: AudioContext, start: the visemes' zero on
  // ctx.currentTime}: each frame then measures the lip-sync error against the audio device's own output
  // timestamp (AudioContext.getOutputTimestamp, a different clock pair), as stats.avSyncErrorMs.
  speak(visemes, clock, sync = null) { this.mouth = { visemes, clock, sync }; }
  silence() { this.mouth = null; }

  // Applied viseme time vs the audio being heard at this moment, from the device's output timestamp
  // (contextTime of the sample at the speakers, at performanceTime) carried forward to now.
  _syncError(t) {
    this.stats.visemeTime = t;
    const sync = this.mouth.sync;
    if (!sync || !sync.ctx.getOutputTimestamp) return;
    const ts = sync.ctx.getOutputTimestamp();
    if (!ts.performanceTime) return;  // the device has not started yet
    const heard = ts.contextTime + (performance.now() - ts.performanceTime) / 1000 - sync.start;
    if (heard < 0) return;  // before the first sample: nothing to align with
    const err = (t - heard) * 1000, s = this.stats;
    s.avSyncErrorMs = err; s.avSyncErrors.push(err); if (s.avSyncErrors.length > 600) s.avSyncErrors.shift();
  }

  // Eyes (lookAt) and head follow an Object3D, e.g. the XR viewer's camera.
  lookAtObject(obj) { this.lookTarget = obj; if (this.vrm && this.vrm.lookAt) this.vrm.lookAt.target = obj; }

  _settled() {
    for (const k of ARKIT) if (Math.abs((this.target[k] || 0) - (this.current[k] || 0)) > 2e-3) return false;
    return ["yaw", "pitch", "roll"].every((k) => Math.abs((this.pose[k] || 0) - this.curPose[k]) < 0.05);
  }

  _blend(dt) {
    const a = 1 - Math.exp(-dt / SMOOTH_S);
    let mouth = null;
    if (this.mouth) {
      const t = this.mouth.clock();
      mouth = visemeWeights(this.mouth.visemes, t);
      this._syncError(t);
    }
    for (const k of ARKIT) {
      // Speech visemes are applied as they are, not eased: easing would put the mouth ~τ behind the voice,
      // and visemeWeights already cross-fades neighbouring visemes (symmetric, so it adds no lag).
      if (mouth && MOUTH.has(k)) { this.current[k] = mouth[k] || 0; continue; }
      const t = this.target[k] || 0;
      this.current[k] = (this.current[k] || 0) + a * (t - (this.current[k] || 0));
    }
    for (const k of ["yaw", "pitch", "roll"]) this.curPose[k] += a * ((this.pose[k] || 0) - this.curPose[k]);
  }

  _apply() {
    // Weights under 0.02 are drawn as exactly 0: three.js skips a morph target whose influence is 0, and the
    // eased weights never reach 0 on their own (SwiftShader, 400x300: 70 ms a frame with the morphs, 28 without).
    const w = {};
    for (const k of ARKIT) w[k] = this.current[k] < 0.02 ? 0 : this.current[k];
    if (this.vrm) {
      const em = this.vrm.expressionManager;
      if (em) {
        for (const [k, n] of this.direct) em.setValue(n, w[k]);
        if (this.presets) {
          const v = presetValues(w);
          for (const [p, n] of Object.entries(this.presets)) em.setValue(n, v[p]);
          this.stats.presets = v;
        }
      }
      const h = this.vrm.humanoid;
      const head = h.getNormalizedBoneNode("head"), neck = h.getNormalizedBoneNode("neck");
      const p = this.curPose;
      // The stream's yaw/pitch/roll are the user's (mirror view: turning left turns the avatar to its right).
      const e = (share) => _euler.set(-p.pitch * DEG * share, -p.yaw * DEG * share, -p.roll * DEG * share, "YXZ");
      if (!this.lookTarget) {
        if (neck) { neck.quaternion.setFromEuler(e(NECK_SHARE)); head && head.quaternion.setFromEuler(e(1 - NECK_SHARE)); }
        else if (head) head.quaternion.setFromEuler(e(1));
        if (this.vrm.lookAt) {  // eyes from the ARKit look shapes (degrees, VRM lookAt convention)
          this.vrm.lookAt.yaw = 25 * ((w.eyeLookOutLeft + w.eyeLookInRight - w.eyeLookInLeft - w.eyeLookOutRight) / 2 || 0);
          this.vrm.lookAt.pitch = 20 * ((w.eyeLookUpLeft + w.eyeLookUpRight - w.eyeLookDownLeft - w.eyeLookDownRight) / 2 || 0);
        }
      } else if (head) {  // XR: the head turns toward the viewer (eyes via lookAt.target), limited to ±35°
        head.getWorldPosition(_hp);
        const d = this.lookTarget.getWorldPosition(_tp).sub(_hp), yaw = Math.atan2(d.x, d.z), pitch = -Math.atan2(d.y, Math.hypot(d.x, d.z));
        const lim = (x) => Math.max(-35 * DEG, Math.min(35 * DEG, x));
        head.quaternion.setFromEuler(_euler.set(lim(pitch), lim(yaw - this.root.rotation.y), 0, "YXZ"));
      }
    } else if (this.morphs) {
      for (const [o, i, k] of this.morphs) o.morphTargetInfluences[i] = w[k];
      this.model.rotation.set(-this.curPose.pitch * DEG, -this.curPose.yaw * DEG, -this.curPose.roll * DEG, "YXZ");
    }
    this.stats.weightsApplied++;
    this.stats.lastWeights = w;  // a fresh object every frame already: no copy
  }

  // Head-and-shoulders or full body, from the head bone (VRM) or the bounding box (GLB).
  frame() {
    if (!this.model || this.renderer.xr.isPresenting || this.framing === "none") return;
    this.model.updateMatrixWorld(true);
    const box = new THREE.Box3().setFromObject(this.model), c = box.getCenter(new THREE.Vector3());
    const headNode = this.vrm && this.vrm.humanoid.getNormalizedBoneNode("head");
    let y, span;
    if (this.framing === "body") { y = c.y; span = (box.max.y - box.min.y) * 1.1; }
    else if (headNode) { const hp = headNode.getWorldPosition(new THREE.Vector3()); y = hp.y + 0.02; span = 0.6; }  // head bone = skull base: centre a little above, shoulders in view
    else { span = (box.max.y - box.min.y) * 0.55; y = box.max.y - span * 0.5; }
    const fov = this.camera.fov * DEG, dist = (span / 2) / Math.tan(fov / 2) / Math.min(1, this.camera.aspect);
    this.camera.position.set(c.x, y, c.z + dist);
    this.camera.lookAt(c.x, y, c.z);
  }

  // Render loop (renderer.setAnimationLoop: display rate, and the XR device's rate in a session).
  start() {
    let last = null;
    this.renderer.setAnimationLoop((time, xrFrame) => {
      this.clock.update(time); const dt = Math.min(0.1, this.clock.getDelta());
      // Nothing moving (weights settled, no speech, not in XR): skip the frame. Software GL (SwiftShader) and
      // phones then spend the CPU on tracking and encoding instead of redrawing the same picture.
      if (this.model && !xrFrame && !this.mouth && !this.lookTarget && !this.dirty && this._settled()) return;
      // A renderer that cannot keep 30 fps (software GL) draws only when a packet arrives: interpolation frames
      // would take the CPU the camera capture and the server need. this.slow comes from the measured draw rate.
      if (this.slow && this.model && !xrFrame && !this.mouth && !this.lookTarget && !this.dirty) return;
      this.dirty = false;
      if (this.model) {
        this._blend(dt); this._apply();
        if (this.vrm) this.vrm.update(dt);
      }
      if (this.onFrame) this.onFrame(time, xrFrame);
      this.renderer.render(this.scene, this.camera);
      const s = this.stats;
      s.framesRendered++;
      const t = performance.timeOrigin + performance.now();
      if (this.pending.length && this.model) {  // drawn now: capture → this frame
        s.latency = t - this.pending[this.pending.length - 1]; this.pending.length = 0;
        s.latencies.push(s.latency); if (s.latencies.length > 300) s.latencies.shift();
      }
      if (last !== null && time > last) s.fps = s.fps === null ? 1000 / (time - last) : s.fps + 0.05 * (1000 / (time - last) - s.fps);
      last = time;
      if (!this.slow && s.framesRendered > 60 && s.fps < 24 && !this.renderer.xr.isPresenting) this.slow = s.slow = true;  // sticky
    });
  }
}
