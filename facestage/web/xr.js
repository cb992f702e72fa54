// WebXR page: the virtual employee (or your own avatar, mirrored from the studio) at human scale ~1.2 m in front
// of you, keeping eye contact. immersive-vr / immersive-ar where offered, an inline 3D view otherwise.
//   /xr.html                       the demo brand's employee (brand key from /v1/demo, this machine only)
//   /xr.html?brand=ID&key=fs_…     another brand's employee
//   /xr.html?mirror=main&avatar=kai your avatar, driven by the studio streaming on channel "main"
//   …&emulate=quest3               Meta's IWER emulator (desktop preview, tests)
import * as THREE from "three";
import { Connection, Kind, avatarURL, getJSON } from "./fs.js";
import { Avatar3D } from "./avatar3d.js";

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const X = window.fsXR = { state: "loading", mode: "inline", views: 0, framesRendered: 0, error: null, offered: {},
                          replies: [], repliesEnded: 0, audioChunks: 0, mouthWhileSpeaking: [], reconnects: 0,
                          partials: [], heard: [], cancelled: [], events: [] };
function say(text, bad = false) { const m = $("#msg"); m.textContent = text; m.style.background = bad ? "var(--bad)" : ""; if (bad) X.error = text; }

if (params.get("emulate") === "quest3") {
  // IWER replaces navigator.xr with an emulated Quest 3 (it runs immersive sessions in desktop/headless Chromium).
  const { XRDevice, metaQuest3 } = await import("iwer");
  new XRDevice(metaQuest3).installRuntime({ forceInstall: true });  // asked for: replace even a native navigator.xr
  X.emulated = "quest3";
}

const av = new Avatar3D($("#view"), { xr: true, framing: "none" });
av.root.position.set(0, 0, -1.2);  // feet on the floor 1.2 m ahead; a VRM 1.0 faces +Z, i.e. the viewer
av.camera.position.set(0, 1.55, 0); av.camera.lookAt(0, 1.45, -1.2);  // inline: standing eye height
av.lookAtObject(av.camera);  // in XR, three.js moves this camera with the viewer's head: eye contact follows
av.onFrame = (time, xrFrame) => {
  if (xrFrame) {
    const pose = xrFrame.getViewerPose(av.renderer.xr.getReferenceSpace());
    X.views = pose ? pose.views.length : 0;
  }
  X.framesRendered++;
  if (speech.start !== null && audio) {
    const t = audio.currentTime - speech.start;
    if (t >= 0 && t <= speech.end) X.mouthWhileSpeaking.push(av.current.jawOpen || 0);
    if (t > speech.end + 0.3) { av.silence(); speech.start = null; }
    if (X.mouthWhileSpeaking.length > 2000) X.mouthWhileSpeaking.splice(0, 1000);
  }
};
av.start();
X.avatar = av;  // for debugging from the console

// ------------------------------------------------------------------------------------------ XR sessions
async function offer() {
  if (!navigator.xr) { X.state = "inline"; return say("This browser has no WebXR: showing the 3D view on the page."); }
  for (const mode of ["immersive-vr", "immersive-ar"]) {
    X.offered[mode] = await navigator.xr.isSessionSupported(mode).catch(() => false);
    $(mode === "immersive-vr" ? "#enter-vr" : "#enter-ar").classList.toggle("hidden", !X.offered[mode]);
  }
  X.state = "inline";
  if (!X.offered["immersive-vr"] && !X.offered["immersive-ar"]) say("No immersive mode on this device: showing the 3D view on the page.");
}
async function enter(mode) {
  try {
    const session = await navigator.xr.requestSession(mode, { optionalFeatures: ["local-floor", "hand-tracking"] });
    av.renderer.xr.setReferenceSpaceType("local-floor");
    await av.renderer.xr.setSession(session);
    X.state = "immersive"; X.mode = mode;
    session.addEventListener("select", () => toggleTalk());  // controller trigger or hand pinch: talk / stop
    session.addEventListener("end", () => { X.state = "inline"; X.mode = "inline"; X.views = 0; });
  } catch (e) { say(`Could not start ${mode}: ${e.message}`, true); }
}
$("#enter-vr").onclick = () => enter("immersive-vr");
$("#enter-ar").onclick = () => enter("immersive-ar");
X.enter = enter;

// ------------------------------------------------------------------------------------------ who stands there
async function loadAvatar(name, brand, key) {
  if (!(await av.load(avatarURL(name, brand), key ? { Authorization: `Bearer ${key}` } : {}))) return say(av.stats.error, true);
  place();
}
// Real scale (VRMs are in metres). A full body already stands on the floor; a bust (our built-ins have their
// origin at the head) is lifted so its eyes are at a standing adult's eye height.
function place() {
  av.root.position.y = 0; av.root.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(av.model);
  if (Math.abs(box.min.y) < 0.05) return;
  const head = av.vrm && av.vrm.humanoid.getNormalizedBoneNode("head");
  const y = head ? head.getWorldPosition(new THREE.Vector3()).y + 0.08 : box.max.y - 0.12;  // eyes ~8 cm above the head bone
  av.root.position.y = 1.55 - y;
}

let audio = null, pending = [], sources = [], reply = null;
const speech = { start: null, end: 0, visemes: [] };
function play(meta, payload) {
  if (!meta || X.cancelled.includes(meta.reply)) return;  // a stopped answer's late chunks stay silent
  audio ||= new AudioContext(); audio.resume();
  const pcm = new Int16Array(payload), f32 = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) f32[i] = pcm[i] / 32768;
  const buf = audio.createBuffer(1, f32.length, meta.sample_rate); buf.copyToChannel(f32, 0);
  const src = audio.createBufferSource(); src.buffer = buf; src.connect(audio.destination);
  if (speech.start === null) { speech.start = audio.currentTime + 0.1; speech.visemes = []; }
  src.start(speech.start + meta.start_s);  // chunk i plays at its start_s on the reply's audio clock
  sources.push({ src, reply: meta.reply });
  src.onended = () => { sources = sources.filter((x) => x.src !== src); };
  speech.visemes.push(...meta.visemes); speech.end = Math.max(speech.end, meta.start_s + meta.duration_s);
  av.speak(speech.visemes, () => audio.currentTime - speech.start);  // visemes are absolute within the reply
  X.audioChunks++;
}
// Barge-in or stop: every scheduled chunk of the answer is cancelled and the mouth goes back to rest.
function cancel(r, reason) {
  if (r == null || X.cancelled.includes(r)) return;
  X.cancelled.push(r);
  for (const s of sources.filter((x) => x.reply === r)) { try { s.src.stop(); } catch (e) { /* already ended */ } }
  sources = sources.filter((x) => x.reply !== r);
  if (reply === r) { speech.start = null; av.silence(); }
  X.events.push({ type: "cancelled", reply: r, reason, t: performance.now() });
}

async function employee() {
  let brand = params.get("brand"), key = params.get("key");
  if (!brand || !key) ({ brand, key } = await getJSON("/v1/demo"));
  const { profile } = await getJSON(`/v1/brands/${encodeURIComponent(brand)}`, { headers: { Authorization: `Bearer ${key}` } });
  loadAvatar(params.get("avatar") || profile.avatar || "ava", brand, key);
  const conn = X.conn = new Connection({
    onOpen: (c) => c.send({ type: "start", session: "employee", options: { brand, key, frames: false } }),
    onClose: () => { X.reconnects++; say("Connection lost: reconnecting…", true); },
  });
  conn.on("started", (m) => {
    X.employee = m.name;
    const inline = !X.offered["immersive-vr"] && !X.offered["immersive-ar"] ? " (No immersive mode here: 3D view on the page.)" : "";
    const ready = `${m.name} (${m.company}) is listening: type a question or press Talk.${inline}`;
    say(av.stats.error ? `${av.stats.error} · ${ready}` : ready, !!av.stats.error);  // a missing body stays visible
  });
  conn.on("error", (m) => say(m.message, true));
  conn.on("reply", (m) => {
    if (X.cancelled.includes(m.reply)) return;
    if (m.index === 0) { reply = m.reply; speech.start = null; speech.end = 0; }
    X.replies.push(m.text); say(m.text);
  });
  conn.on("audio", (m) => pending.push(m));
  conn.on("reply_end", () => { X.repliesEnded++; });
  // Hands-free talking: the server's VAD reports speech (barge-in), partial text while the user speaks, then
  // the final transcript; the page shows each at once, like the console.
  conn.on("speech_start", (m) => {
    X.events.push({ type: "speech_start", utterance: m.utterance, t: performance.now() });
    if (sources.length) cancel(reply, "barge_in");
  });
  conn.on("partial", (m) => { X.partials.push(m.text); X.events.push({ type: "partial", t: performance.now() }); say(`You: … ${m.text}`); });
  conn.on("heard", (m) => {
    X.heard.push(m.text); X.events.push({ type: "heard", t: performance.now() });
    say(m.text ? `You: ${m.text}` : "Sorry, I did not catch that.");
  });
  conn.on("stopped", (m) => cancel(m.reply, m.reason));
  conn.onFrame((f) => { if (f.kind === Kind.PCM16) play(pending.shift(), f.payload); });
  const ask = () => {
    const q = $("#q").value.trim(); if (!q) return;
    audio ||= new AudioContext(); audio.resume();
    if (sources.length) { conn.send({ type: "stop", played_s: Math.max(0, audio.currentTime - (speech.start ?? audio.currentTime)) }); cancel(reply, "stop"); }
    conn.send({ type: "say", text: q }); $("#q").value = "";
  };
  $("#ask").onclick = ask;
  $("#q").onkeydown = (e) => { if (e.key === "Enter") ask(); };
  await conn.open();
}

// Mirror: your avatar, driven by a studio streaming weights on a channel (another device in the same room).
async function mirror(channel) {
  loadAvatar(params.get("avatar") || "ava");
  const conn = X.conn = new Connection({
    onOpen: (c) => { c.send({ type: "start", session: "watch", options: { channel } }); say(`Mirroring the studio on channel "${channel}"`); },
    onClose: () => { X.reconnects++; say("Connection lost: reconnecting…", true); },
  });
  conn.onFrame((f) => { if (f.kind === Kind.WEIGHTS) av.setWeightsBinary(f.payload, f.timestamp); });
  $("#ask").disabled = $("#talk").disabled = true;
  await conn.open();
}

// Talk: hands-free, as the console — microphone PCM16 in "stream" mode (the server's VAD finds each question,
// sends partial text and lets the user interrupt the answer by speaking) until Talk is pressed again.
// ?talk=hold keeps hold-to-talk: one transcription between "listen" and "listen_end".
let mic = null;
async function toggleTalk() {
  if (!X.conn || params.get("mirror")) return;
  audio ||= new AudioContext(); audio.resume();
  if (mic) { mic.stop(); mic = null; X.conn.send({ type: "listen_end" }); $("#talk").textContent = "Talk"; X.talking = false; return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true,
      noiseSuppression: true, autoGainControl: true } });
    const src = audio.createMediaStreamSource(stream), proc = audio.createScriptProcessor(4096, 1, 1);
    const mute = audio.createGain(); mute.gain.value = 0;  // keeps the processor running without playing the mic
    let seq = 0;
    X.conn.send({ type: "listen", sample_rate: audio.sampleRate, mode: params.get("talk") === "hold" ? "hold" : "stream" });
    proc.onaudioprocess = (e) => {
      const f = e.inputBuffer.getChannelData(0), pcm = new Int16Array(f.length);
      for (let i = 0; i < f.length; i++) pcm[i] = Math.max(-1, Math.min(1, f[i])) * 32767;
      if (seq === 0) X.events.push({ type: "mic_first_chunk", label: stream.getAudioTracks()[0].label, t: performance.now() });
      X.conn.sendFrame(Kind.PCM16, seq++, 0, pcm.buffer);
    };
    src.connect(proc); proc.connect(mute); mute.connect(audio.destination);
    mic = { stop: () => { proc.disconnect(); src.disconnect(); mute.disconnect(); stream.getTracks().forEach((t) => t.stop()); } };
    X.talking = true;
    $("#talk").textContent = "Listening — press to end";
  } catch (e) { say(`Microphone unavailable: ${e.message}`, true); }
}
$("#talk").onclick = toggleTalk;

await offer();
(params.get("mirror") ? mirror(params.get("mirror")) : employee()).catch((e) => say(`Could not start: ${e.message}`, true));
