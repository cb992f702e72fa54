// Studio: webcam → server (effects or avatar session) → live preview, with fps/latency, presets, sliders, recording.
import { Connection, Kind, EMA, avatarURL, drawEncoded, getJSON, now, toast, el, setStatus } from "./fs.js";

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const channel = params.get("channel") || "main";
const S = window.fsStudio = {
  mode: "effects", config: {}, catalog: {}, presets: {}, avatar: "ava", seq: 0, inflight: 0, framesShown: 0,
  lastLatency: null, trackLabel: "", sent: new Map(), lastPair: null, faces: new Map(), stats: null, errors: [],
  recording: null, clipBytes: 0, render: params.get("render") === "server" ? "server" : "client", weightsIn: 0,
  weightBytes: 0, imageBytes: 0, skipped: {}, latencies: [],
};
const fpsEMA = new EMA(0.1), latEMA = new EMA(0.1);
let lastShown = 0, warmup = 3;  // the first frames of a session include model loading: not shown in the readout
const out = $("#out"), cam = $("#cam");
// Frames are encoded with the synchronous toDataURL on a CPU canvas: toBlob/convertToBlob run on low-priority
// threads that a page drawing a WebGL avatar on a busy CPU starves (measured with SwiftShader on 2 cores:
// 1.3 s per frame; toDataURL: a few ms).
const grab = document.createElement("canvas"), grabCtx = grab.getContext("2d", { willReadFrequently: true });

const conn = new Connection({
  onOpen: () => { setStatus(true, "connected"); startSession(); },
  onClose: () => setStatus(false, "reconnecting…"),
});
conn.on("error", (m) => { S.errors.push(m); toast(m.message); });
conn.on("stats", (m) => { S.stats = m; });
conn.on("faces", (m) => { S.faces.set(m.seq, m); if (S.faces.size > 8) S.faces.delete(S.faces.keys().next().value); });
conn.on("started", (m) => { S.session = m; S.activeMode = m.session; latEMA.v = null; fpsEMA.v = null; lastShown = 0; warmup = 3; });
conn.onFrame(async (f) => {
  S.inflight = Math.max(0, S.inflight - 1);
  if (f.kind === Kind.WEIGHTS) return onWeights(f);
  if (f.kind !== Kind.JPEG && f.kind !== Kind.WEBP) return;
  S.imageBytes += f.payload.byteLength + 16;
  const mode = S.activeMode;  // read before any await: "started" of a new mode may arrive meanwhile
  await drawEncoded(out, f.kind, f.payload);
  $("#empty").classList.add("hidden");
  const t = now();
  S.lastLatency = t - f.timestamp;
  S.latencies.push(S.lastLatency); if (S.latencies.length > 300) S.latencies.shift();
  if (warmup > 0) warmup--;
  else {
    $("#lat").textContent = `${Math.round(latEMA.add(S.lastLatency))} ms`;
    if (lastShown) $("#fps").textContent = `${Math.round(1000 / fpsEMA.add(t - lastShown))} fps`;
  }
  lastShown = t;
  S.framesShown++;
  const input = S.sent.get(f.seq);
  // Frames are labelled by the session that made them: after a mode switch, frames of the old session
  // still in flight arrive before the new session's "started".
  if (input) S.lastPair = { seq: f.seq, input, output: f.payload, kind: f.kind, faces: S.faces.get(f.seq) || null, mode };
});

function sessionOptions() {
  // One streamer: max_faces 1 spares the face detector on every frame (~25 % of tracking).
  if (S.mode === "effects") return { effects: S.config, faces: true, channel, max_faces: 1 };
  const bg = $("#bg").value;
  // Client rendering: the server only tracks and retargets; this browser draws the avatar (avatar3d.js).
  if (S.render === "client") return { avatar: S.avatar, pixels: false, weights: "binary", channel, expression: $("#expr").value };
  return { pixels: true, weights: false, avatar: S.avatar, size: 480, alpha: !bg, background: bg || null, channel, expression: $("#expr").value };
}
function startSession() { conn.send({ type: "start", session: S.mode, options: sessionOptions() }); }

// ------------------------------------------------------------------------------------------ camera loop
async function startCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    cam.srcObject = stream;
    S.trackLabel = stream.getVideoTracks()[0].label;
    $("#camlabel").textContent = `Camera: ${S.trackLabel}`;
  } catch (e) {
    $("#empty").innerHTML = `Camera unavailable: ${e.message}.<br><span class="small">Allow camera access and reload.</span>`;
    return;
  }
  setInterval(sendFrame, 1000 / 30);
}

let encoding = false;
async function sendFrame() {
  // At most two frames in flight and little queued in the socket: the server works on fresh frames only.
  const why = encoding ? "encoding" : !conn.ready ? "socket" : cam.readyState < 2 ? "camera" : S.inflight >= 2 ? "inflight" : conn.buffered > 256 * 1024 ? "buffered" : null;
  if (why) { S.skipped[why] = (S.skipped[why] || 0) + 1; return; }  // readable in devtools: why frames are not sent
  encoding = true;
  try {
    if (grab.width !== cam.videoWidth || grab.height !== cam.videoHeight) { grab.width = cam.videoWidth; grab.height = cam.videoHeight; }
    grabCtx.drawImage(cam, 0, 0);
    const b64 = grab.toDataURL("image/jpeg", 0.85);
    const bin = atob(b64.slice(b64.indexOf(",") + 1)), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const buf = bytes.buffer;
    const seq = ++S.seq;
    S.sent.set(seq, buf);
    if (S.sent.size > 8) S.sent.delete(S.sent.keys().next().value);
    conn.sendFrame(Kind.JPEG, seq, now(), buf);
    S.inflight++;
    setTimeout(() => { S.inflight = Math.max(0, S.inflight - 0.5); }, 1000);  // a lost reply must not stall us
  } finally { encoding = false; }
}

// ------------------------------------------------------------------------------------------ effects UI
function humanize(s) { return s.replace(/_/g, " "); }
function sendConfig() { if (S.mode === "effects") conn.send({ type: "config", effects: S.config }); }
let configTimer = null;
function configChanged() { clearTimeout(configTimer); configTimer = setTimeout(sendConfig, 60); }

const SHIPPED = { "lut.lut": ["warm", "teal-orange", "mono", "vintage"], "sticker.image": ["glasses", "hat", "ears"],
  "background.image": ["astronaut", "grace_hopper"] };
const PATH_KIND = { "lut.lut": "lut", "sticker.image": "sticker", "background.image": "background", "paint.image": "paint" };
function buildEffects() {
  const root = $("#effects"); root.innerHTML = "";
  for (const [name, spec] of Object.entries(S.catalog)) {
    const on = name in S.config;
    const toggle = el("input", { type: "checkbox", "data-effect": name, "aria-label": `enable ${name}` });
    toggle.checked = on;
    const det = el("details", { class: "fx", "data-effect": name }, el("summary", {}, toggle, el("span", { class: "name" }, humanize(name))));
    if (on) det.open = true;
    toggle.addEventListener("click", (e) => e.stopPropagation());
    toggle.addEventListener("change", () => {
      if (toggle.checked) { S.config[name] = S.config[name] || {}; det.open = true; } else delete S.config[name];
      configChanged(); markPreset(null);
    });
    const box = el("div", { class: "params" });
    for (const [p, ps] of Object.entries(spec)) {
      const cur = (S.config[name] || {})[p] ?? ps.default;
      let input;
      if (ps.type === "float" || ps.type === "int") {
        const step = ps.type === "int" ? 1 : (ps.max - ps.min) / 100;
        input = el("input", { type: "range", min: ps.min, max: ps.max, step, value: cur, "data-param": `${name}.${p}` });
        const o = el("output", {}, fmt(cur));
        input.addEventListener("input", () => { o.textContent = fmt(+input.value); setParam(name, p, ps.type === "int" ? parseInt(input.value) : +input.value, toggle); });
        box.append(el("label", { class: "slider", title: ps.description }, el("span", {}, humanize(p)), input, o));
      } else if (ps.type === "choice") {
        input = el("select", { "data-param": `${name}.${p}` }, ...ps.choices.map((c) => el("option", { value: c }, c)));
        input.value = cur;
        input.addEventListener("change", () => setParam(name, p, input.value, toggle));
        box.append(el("label", { class: "slider", title: ps.description }, el("span", {}, humanize(p)), input, el("span")));
      } else if (ps.type === "color") {
        input = el("input", { type: "color", value: cur, "data-param": `${name}.${p}` });
        input.addEventListener("input", () => setParam(name, p, input.value, toggle));
        box.append(el("label", { class: "slider", title: ps.description }, el("span", {}, humanize(p)), input, el("span")));
      } else if (ps.type === "path") {  // asset names: shipped ones and this streamer's uploads, never paths
        const kind = PATH_KIND[`${name}.${p}`], own = kind && S.assets?.[kind];
        const names = ["", ...(SHIPPED[`${name}.${p}`] || []), ...(own ? [own] : [])];
        if (cur && !names.includes(cur)) names.push(cur);
        input = el("select", { "data-param": `${name}.${p}` }, ...names.map((c) => el("option", { value: c }, c.startsWith("upload:") ? "my upload" : c || "none")));
        input.value = cur;
        input.addEventListener("change", () => setParam(name, p, input.value, toggle));
        box.append(el("label", { class: "slider", title: ps.description }, el("span", {}, humanize(p)), input, el("span")));
      } else if (ps.type === "bool") {
        input = el("input", { type: "checkbox", "data-param": `${name}.${p}` }); input.checked = !!cur;
        input.addEventListener("change", () => setParam(name, p, input.checked, toggle));
        box.append(el("label", { class: "slider", title: ps.description }, el("span", {}, humanize(p)), input, el("span")));
      }
    }
    det.append(box); root.append(det);
  }
}
const fmt = (v) => (Math.abs(v) >= 10 ? Math.round(v) : (+v).toFixed(2));
function setParam(name, p, value, toggle) {
  S.config[name] = { ...(S.config[name] || {}), [p]: value };
  toggle.checked = true; configChanged(); markPreset(null);
}
function markPreset(name) { for (const b of document.querySelectorAll("#presets button")) b.classList.toggle("on", b.dataset.preset === name); }
function applyPreset(name) {
  S.config = name === "none" ? {} : JSON.parse(JSON.stringify(S.presets[name]));
  buildEffects(); markPreset(name); sendConfig();
}

async function loadCatalog() {
  const cat = await getJSON("/v1/effects");
  S.catalog = cat.effects; S.presets = cat.presets;
  const chips = $("#presets");
  for (const name of ["none", ...Object.keys(S.presets)]) {
    chips.append(el("button", { "data-preset": name, onclick: () => applyPreset(name) }, humanize(name)));
  }
  S.config = JSON.parse(JSON.stringify(S.presets.natural || {}));
  buildEffects(); markPreset(S.presets.natural ? "natural" : "none");
  if (conn.ready) sendConfig();
}

// ------------------------------------------------------------------------------------------ own assets
// Upload → the server checks it by decoding and answers a name; the name goes into the effect's parameter.
const ASSET_USE = {
  sticker: (n) => ({ sticker: { ...(S.config.sticker || {}), image: n } }),
  background: (n) => ({ background: { ...(S.config.background || {}), mode: "replace", image: n } }),
  paint: (n) => ({ paint: { ...(S.config.paint || {}), amount: S.config.paint?.amount || 0.8, image: n } }),
  lut: (n) => ({ lut: { ...(S.config.lut || {}), lut: n } }),
};
async function uploadAsset(file) {
  const kind = $("#asset-kind").value, status = $("#asset-status");
  const q = new URLSearchParams({ kind, filename: file.name });
  if (params.get("brand")) q.set("brand", params.get("brand"));
  status.textContent = `Uploading ${file.name}…`;
  const headers = { "Content-Type": "application/octet-stream" };
  if (params.get("key")) headers.Authorization = `Bearer ${params.get("key")}`;
  const r = await fetch(`/v1/assets?${q}`, { method: "POST", headers, body: file });
  const body = await r.json().catch(() => ({ message: `HTTP ${r.status}` }));
  if (!r.ok) { status.textContent = body.message; toast(body.message); return null; }
  S.assets = { ...(S.assets || {}), [kind]: body.name };
  Object.assign(S.config, ASSET_USE[kind](body.name));
  buildEffects(); markPreset(null); sendConfig();
  status.textContent = `${file.name} is in use as ${kind}.`;
  return body.name;
}
$("#asset-file").onchange = (e) => { const f = e.target.files[0]; if (f) uploadAsset(f); e.target.value = ""; };

// ------------------------------------------------------------------------------------------ avatar UI
async function loadAvatars() {
  const { avatars } = await getJSON("/v1/avatars");
  const root = $("#avatars");
  for (const a of avatars) {
    const img = el("img", { alt: "" });
    const b = el("button", { "data-avatar": a.name, title: a.description, onclick: () => pickAvatar(a.name) }, img, a.name.replace("photo:", "photo · "));
    root.append(b);
    // Thumbnails come from the render API itself.
    fetch("/v1/render", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ avatar: a.name, size: 128, format: "webp", expression: "happy" }) })
      .then((r) => (r.ok ? r.blob() : null)).then((b) => { if (b) img.src = URL.createObjectURL(b); });
  }
  markAvatar();
}
function markAvatar() { for (const b of document.querySelectorAll("#avatars button")) b.classList.toggle("on", b.dataset.avatar === S.avatar); }
function pickAvatar(name) { S.avatar = name; markAvatar(); showOBS(); conn.send({ type: "config", avatar: name }); if (S.av && S.mode === "avatar" && S.render === "client") load3d(); }

// ------------------------------------------------------------------------------------------ client rendering
// The avatar module (and three.js) load only when first needed: the effects studio stays light.
let av3d = null;
async function ensure3d() {
  if (!av3d) av3d = import("./avatar3d.js").then(({ Avatar3D }) => { const a = new Avatar3D($("#out3d")); a.start(); return a; });
  S.av = await av3d;
  return S.av;
}
async function load3d() {
  const a = await ensure3d(), name = S.avatar;
  if (S.loaded3d === name && a.stats.ready) return;
  S.loaded3d = name;
  $("#empty").classList.remove("hidden"); $("#empty").textContent = `Loading ${name} in 3D…`;
  if (await a.load(S.avatarURL || avatarURL(name))) $("#empty").classList.add("hidden");
  else { S.loaded3d = null; $("#empty").textContent = a.stats.error; toast(a.stats.error); }
}
function onWeights(f) {
  S.weightsIn++; S.weightBytes += f.payload.byteLength + 16;
  if (!S.av || S.activeMode !== "avatar") return;
  S.av.setWeightsBinary(f.payload, f.timestamp);
  const t = now();
  if (warmup > 0) warmup--;
  else {
    const st = S.av.stats;
    if (st.latency !== null) $("#lat").textContent = `${Math.round(latEMA.add(st.latency))} ms`;
    if (lastShown) $("#fps").textContent = `${Math.round(1000 / fpsEMA.add(t - lastShown))} fps`;
  }
  lastShown = t;
}
function showRenderer() {
  const client = S.mode === "avatar" && S.render === "client";
  $("#out").classList.toggle("hidden", client); $("#out3d").classList.toggle("hidden", !client);
  $("#stage").style.backgroundColor = client && $("#bg").value ? $("#bg").value : "";
  if (client) load3d();
}

function setMode(mode) {
  S.mode = mode;
  $("#mode-effects").classList.toggle("on", mode === "effects");
  $("#mode-avatar").classList.toggle("on", mode === "avatar");
  $("#effects-panel").classList.toggle("hidden", mode !== "effects");
  $("#avatar-panel").classList.toggle("hidden", mode !== "avatar");
  $("#stage").classList.toggle("checker", mode === "avatar" && !$("#bg").value);
  S.inflight = 0; showRenderer(); startSession();
}
$("#mode-effects").onclick = () => setMode("effects");
$("#mode-avatar").onclick = () => setMode("avatar");
$("#bg").onchange = () => {
  const v = $("#bg").value; $("#stage").classList.toggle("checker", !v);
  if (S.render === "client") showRenderer(); else conn.send({ type: "config", alpha: !v, background: v || null });
};
$("#render").value = S.render;
$("#render").onchange = () => { S.render = $("#render").value; showRenderer(); startSession(); };
$("#expr").onchange = () => conn.send({ type: "config", expression: $("#expr").value });
$("#calibrate").onclick = () => { conn.send({ type: "config", calibrate: true }); toast("Calibrated to your neutral face", "info"); };

// ------------------------------------------------------------------------------------------ recording
$("#rec").onclick = () => {
  if (S.recording) { S.recording.stop(); return; }
  const chunks = [];
  const mime = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"].find((m) => MediaRecorder.isTypeSupported(m));
  const rec = new MediaRecorder((S.mode === "avatar" && S.render === "client" ? $("#out3d") : out).captureStream(30), mime ? { mimeType: mime } : {});
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  rec.onstop = () => {
    const blob = new Blob(chunks, { type: "video/webm" });
    S.clipBytes = blob.size; S.recording = null;
    const a = $("#download"); a.href = URL.createObjectURL(blob); a.classList.remove("hidden");
    $("#rec").innerHTML = '<span class="recdot"></span>Record clip'; $("#rec-pill").classList.add("hidden");
  };
  rec.start(250); S.recording = rec;
  $("#rec").innerHTML = '<span class="recdot stop"></span>Stop'; $("#rec-pill").classList.remove("hidden");
};

function showOBS() {  // the OBS page draws the avatar itself in client mode: it needs the avatar's name
  $("#obs-url").textContent = `${location.origin}/output.html?channel=${encodeURIComponent(channel)}&avatar=${encodeURIComponent(S.avatar)}`;
}
showOBS();
loadCatalog().catch((e) => toast(`Could not load effects: ${e.message}`));
loadAvatars().catch((e) => toast(`Could not load avatars: ${e.message}`));
conn.open();
startCamera();
