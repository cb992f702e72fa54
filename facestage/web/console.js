// Brand console: sign in with a brand key, edit the virtual employee, and talk to it (voice + lip-synced face).
import { Connection, Kind, avatarURL, drawEncoded, getJSON, toast, el } from "./fs.js";

const $ = (s) => document.querySelector(s);
const C = window.fsConsole = { brand: null, key: null, profile: null, replies: [], audioChunks: 0, audioSeconds: 0,
  framesShown: 0, frames: [], errors: [], replyEnded: 0 };
let conn = null, audio = null, replyStart = null, currentReply = null, pendingAudio = [], botBubble = null;

function authHeaders(json = true) {
  const h = { Authorization: `Bearer ${C.key}` };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

// ------------------------------------------------------------------------------------------- sign in
function remember(brand, key) { localStorage.setItem("fs-brand", JSON.stringify({ brand, key })); }
async function openBrand(brand, key) {
  C.brand = brand; C.key = key;
  const { profile } = await getJSON(`/v1/brands/${encodeURIComponent(brand)}`, { headers: authHeaders(false) });
  remember(brand, key);
  C.profile = profile;
  $("#login").classList.add("hidden"); $("#app").classList.remove("hidden"); $("#signout").classList.remove("hidden");
  fillForm(profile); connectTalk();
}
$("#demo").onclick = async () => {
  try { const d = await getJSON("/v1/demo"); await openBrand(d.brand, d.key); } catch (e) { toast(e.message); }
};
$("#open").onclick = () => openBrand($("#open-id").value.trim(), $("#open-key").value.trim()).catch((e) => toast(e.message));
$("#create").onclick = async () => {
  const id = $("#new-id").value.trim().toLowerCase(), company = $("#new-company").value.trim() || id;
  const name = $("#new-name").value.trim() || "Sam";
  const profile = { id, name, company, role: "customer service assistant", tone: "friendly",
    persona: `${name} is the friendly virtual employee of ${company}. ${name} answers briefly and never invents facts.`,
    greeting: { en: `Hi, I'm ${name} from ${company}. How can I help?` }, avatar: "ava", knowledge: { faq: [], products: [] } };
  try {
    const res = await getJSON("/v1/brands", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(profile) });
    await openBrand(id, res.key);
    $("#newkey-value").textContent = res.key; $("#newkey").classList.remove("hidden");
  } catch (e) { toast(e.message); }
};
$("#signout").onclick = () => { localStorage.removeItem("fs-brand"); location.reload(); };

// ------------------------------------------------------------------------------------------- editor
function fillForm(p) {
  $("#brand-label").textContent = `${p.company} · ${p.id}`;
  $("#talk-name").textContent = p.name;
  for (const f of ["name", "role", "company", "tone", "persona"]) $(`#f-${f}`).value = p[f] || "";
  $("#f-greeting").value = (p.greeting || {}).en || "";
  $("#f-voice").value = p.voice || "";
  $("#f-lang-en").checked = p.languages.includes("en"); $("#f-lang-zh").checked = p.languages.includes("zh");
  $("#f-primary").value = (p.colors || {}).primary || "#1e6fd9";
  $("#f-background").value = /^#[0-9a-f]{6}$/i.test(p.background) ? p.background : "#ffffff";
  $("#faq").innerHTML = "";
  for (const e of p.knowledge.faq) addFaqRow(e);
  const n = p.knowledge.faq.length;
  $("#faq-count").textContent = `${n} ${n === 1 ? "entry" : "entries"} · the employee answers from these, in the customer's language`;
  markAvatar();
}
function addFaqRow(e = { id: "", lang: "en", question: "", answer: "", alternates: [] }) {
  const lang = el("select", {}, el("option", { value: "en" }, "en"), el("option", { value: "zh" }, "zh")); lang.value = e.lang;
  const q = el("textarea", { rows: 1 }); q.value = e.question;
  const a = el("textarea", { rows: 1 }); a.value = e.answer;
  const tr = el("tr", {}, el("td", {}, lang), el("td", {}, q), el("td", {}, a),
    el("td", {}, el("button", { class: "danger", title: "remove", type: "button", onclick: () => tr.remove() }, "✕")));
  tr._entry = e; tr._get = () => ({ ...e, lang: lang.value, question: q.value.trim(), answer: a.value.trim(),
    id: e.id || slug(q.value) || `q${Date.now()}`, alternates: e.alternates || [] });
  $("#faq").append(tr);
  return tr;
}
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
$("#faq-add").onclick = () => addFaqRow().querySelector("textarea").focus();

function formProfile() {
  const langs = ["en", "zh"].filter((l) => $(`#f-lang-${l}`).checked);
  const faq = [...$("#faq").children].map((tr) => tr._get()).filter((e) => e.question && e.answer);
  return { name: $("#f-name").value.trim(), role: $("#f-role").value.trim(), company: $("#f-company").value.trim(),
    tone: $("#f-tone").value.trim() || "friendly", persona: $("#f-persona").value.trim(), languages: langs.length ? langs : ["en"],
    greeting: { ...(C.profile.greeting || {}), en: $("#f-greeting").value.trim() || `Hi, I'm ${$("#f-name").value.trim()}.` },
    voice: $("#f-voice").value || null, colors: { ...(C.profile.colors || {}), primary: $("#f-primary").value },
    background: $("#f-background").value, avatar: C.profile.avatar,
    knowledge: { faq, products: C.profile.knowledge.products || [] } };
}
async function save() {
  $("#save-status").textContent = "saving…";
  try {
    const { profile } = await getJSON(`/v1/brands/${C.brand}`, { method: "PUT", headers: authHeaders(), body: JSON.stringify(formProfile()) });
    C.profile = profile; fillForm(profile);
    $("#save-status").textContent = `saved ${new Date().toLocaleTimeString()}`;
    connectTalk();  // the employee reloads its knowledge
  } catch (e) { $("#save-status").textContent = ""; toast(e.message); }
}
$("#save").onclick = save;

async function loadAvatars() {
  const { avatars } = await getJSON("/v1/avatars");
  for (const a of avatars) {
    const img = el("img", { alt: "" });
    $("#avatars").append(el("button", { "data-avatar": a.name, type: "button", title: a.description, onclick: () => pickAvatar(a.name) }, img, a.name.replace("photo:", "photo · ")));
    fetch("/v1/render", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ avatar: a.name, size: 128, format: "webp", expression: "happy" }) })
      .then((r) => (r.ok ? r.blob() : null)).then((b) => { if (b) img.src = URL.createObjectURL(b); });
  }
  markAvatar();
}
function markAvatar() {
  const cur = C.profile ? (C.profile.avatar === "default" ? "ava" : C.profile.avatar) : "";
  for (const b of document.querySelectorAll("#avatars button")) b.classList.toggle("on", b.dataset.avatar === cur);
  $("#upload-status").textContent = cur.startsWith("upload:") ? `using your upload (${cur.slice(7)})` : "";
}
function pickAvatar(name) { C.profile.avatar = name; markAvatar(); save(); }
$("#upload").onchange = async () => {
  const file = $("#upload").files[0]; if (!file) return;
  $("#upload-status").textContent = "building your avatar… (a photo takes a few seconds)";
  try {
    const res = await getJSON(`/v1/brands/${C.brand}/avatar?filename=${encodeURIComponent(file.name)}`,
      { method: "POST", headers: { Authorization: `Bearer ${C.key}`, "Content-Type": "application/octet-stream" }, body: file });
    C.profile = res.profile; markAvatar(); connectTalk();
  } catch (e) { $("#upload-status").textContent = ""; toast(e.message); }
};

// ------------------------------------------------------------------------------------------- talking
// Test hooks (window.fsConsole): audioLog = every scheduled chunk {reply, start, end, stoppedAt} in AudioContext
// seconds (so tests can prove two answers never sound at once), partials/heard texts, bargeIns, events.
Object.assign(C, { audioLog: [], partials: [], heard: [], bargeIns: [], events: [], cancelled: [], talking: false,
  mouthAtRest: true, restDrawn: 0 });
let restFrame = null, sources = [], replyVisemes = [];
// A reply's first chunk is scheduled this far ahead: room for the audio thread's next render quanta (3 ms each)
// and a few ms of main-thread jitter. A later chunk that arrives after its slot shifts the reply's clock (below)
// instead of playing over its predecessor, so the lead need not cover synthesis jitter.
const LEAD_S = 0.05;
const ev = (type, extra = {}) => C.events.push({ type, t: performance.now(), ...extra });

// ------------------------------------------------------------------------------------------- the face
// In 3D by this browser (avatar3d.js, the employee's VRM from GET /v1/avatars/NAME.vrm), its mouth driven by the
// viseme track of each audio chunk on the Web Audio clock. Without WebGL, or when the model cannot load, the
// server renders the face instead (JPEG frames timed on the same clock, the 2D canvas).
let av = null, avName = null;
const webgl = (() => { try { return !!document.createElement("canvas").getContext("webgl2"); } catch (e) { return false; } })();
async function face3d() {
  if (!webgl) return false;
  const name = C.profile.avatar === "default" || !C.profile.avatar ? "ava" : C.profile.avatar;
  try {
    if (!av) { const { Avatar3D } = await import("./avatar3d.js"); av = new Avatar3D($("#face3d"), { framing: "head" }); av.start(); C.av = av; }
    if (avName !== name) {
      avName = name;
      if (!(await av.load(avatarURL(name, C.brand), { Authorization: `Bearer ${C.key}` }))) throw new Error(av.stats.error);
    }
    $("#face3d").classList.remove("hidden"); $("#face").classList.add("hidden");
    // the brand's background colour behind the transparent 3D canvas, as the server-rendered face has it
    $("#talk-stage").style.background = /^#[0-9a-f]{6}$/i.test(C.profile.background) ? C.profile.background : "";
    return true;
  } catch (e) {
    avName = null; toast(`3D view unavailable (${e.message}): the server draws the face`, "info");
    $("#face3d").classList.add("hidden"); $("#face").classList.remove("hidden");
    return false;
  }
}
// The audio position heard now, in seconds into the reply: the chunk schedule is on audio.currentTime, and
// what leaves the speakers lags it by the output latency.
const replyClock = () => audio.currentTime - (audio.baseLatency || 0) - (audio.outputLatency || 0) - replyStart;

let talkGen = 0;
async function connectTalk() {
  if (conn) { conn.close(); conn = null; }
  replyStart = null; C.frames = [];
  const gen = ++talkGen;
  C.face3d = await face3d();
  if (gen !== talkGen) return;  // a newer connectTalk (saved again meanwhile) owns the connection
  const frames = !C.face3d;  // a 3D face needs no server-rendered frames
  conn = new Connection({ onOpen: (c) => c.send({ type: "start", session: "employee", options: { brand: C.brand, key: C.key, size: 320, fps: 25, frames } }) });
  conn.on("started", (m) => { C.started = m; if (!$("#chat").children.length) bubble("bot", m.greeting); });
  conn.on("error", (m) => { C.errors.push(m); toast(m.message); });
  conn.on("reply", (m) => {
    ev("reply", { reply: m.reply, index: m.index });
    if (C.cancelled.includes(m.reply)) return;
    if (currentReply !== m.reply) { currentReply = m.reply; replyStart = null; C.frames = []; botBubble = bubble("bot", ""); }
    botBubble.textContent += (botBubble.textContent ? " " : "") + m.text;
    C.replies.push(m.text);
  });
  conn.on("audio", (m) => { ev("audio", { reply: m.reply, index: m.index }); pendingAudio.push(m); });
  conn.on("reply_end", (m) => { ev("reply_end", { reply: m.reply }); C.replyEnded++; });
  conn.on("listening", (m) => ev("listening", { mode: m.mode }));
  conn.on("speech_start", (m) => {  // the customer talks: stop the answer here at once, the server does too
    ev("speech_start", { utterance: m.utterance });
    if (isPlaying()) { C.bargeIns.push({ reply: currentReply, at: performance.now() }); cancelReply(currentReply, "barge_in"); }
  });
  conn.on("partial", (m) => { C.partials.push(m.text); $("#partial").textContent = `… ${m.text}`; ev("partial", { text: m.text }); });
  conn.on("heard", (m) => {
    $("#partial").textContent = ""; C.heard.push(m.text); ev("heard", { text: m.text, asr_ms: m.asr_ms });
    if (m.text) bubble("user", m.text); else toast("Sorry, I did not catch that.", "info");
  });
  conn.on("stopped", (m) => { if (m.reply) cancelReply(m.reply, m.reason); ev("stopped", { reply: m.reply, reason: m.reason }); });
  conn.onFrame((f) => {
    if (f.kind === Kind.PCM16) playChunk(pendingAudio.shift(), f.payload);
    else if (f.timestamp < 0) { restFrame = f; drawEncoded($("#face"), f.kind, f.payload); }  // the face at rest
    else if (f.kind === Kind.JPEG || f.kind === Kind.WEBP) { if (!C.cancelled.includes(currentReply)) C.frames.push(f); }
  });
  conn.open();
}
function bubble(who, text) {
  const b = el("div", { class: `msg ${who}` }, text); $("#chat").append(b); $("#chat").scrollTop = 1e9; return b;
}
const isPlaying = () => !!audio && sources.some((s) => s.rec.end > audio.currentTime);
function playChunk(meta, payload) {
  if (!meta || !audio || C.cancelled.includes(meta.reply)) return;  // a stopped answer's late chunks stay silent
  const pcm = new Int16Array(payload), f32 = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) f32[i] = pcm[i] / 32768;
  const buf = audio.createBuffer(1, f32.length, meta.sample_rate); buf.copyToChannel(f32, 0);
  const src = audio.createBufferSource(); src.buffer = buf; src.connect(audio.destination);
  if (replyStart === null) {
    replyStart = audio.currentTime + LEAD_S; replyVisemes = [];
    ev("first_audio", { reply: meta.reply, at: replyStart, lead_ms: LEAD_S * 1000 });
  }
  const late = audio.currentTime + 0.01 - (replyStart + meta.start_s);
  if (late > 0) { replyStart += late; C.lateShifts = (C.lateShifts || 0) + 1; }  // after the previous chunk ended: a gap, in sync
  const start = replyStart + meta.start_s;
  src.start(start);
  const rec = { reply: meta.reply, start, end: start + buf.duration, stoppedAt: null };
  sources.push({ src, rec }); C.audioLog.push(rec);
  C.audioChunks++; C.audioSeconds += buf.duration; C.mouthAtRest = false;
  if (av && C.face3d) {  // visemes are absolute within the reply, as the chunks' start_s
    replyVisemes.push(...meta.visemes);
    av.speak(replyVisemes, replyClock, { ctx: audio, start: replyStart });
  }
  $("#speaking").classList.remove("hidden");
  src.onended = () => { if (!isPlaying()) { $("#speaking").classList.add("hidden"); restMouth(); } };
}
// Stop an answer in the page: cancel every scheduled chunk, drop its frames, and put the mouth back at rest.
function cancelReply(reply, reason) {
  if (reply == null || C.cancelled.includes(reply)) return;
  C.cancelled.push(reply);
  const now = audio ? audio.currentTime : 0;
  for (const s of sources.filter((x) => x.rec.reply === reply)) {
    try { s.src.stop(); } catch (e) { /* already ended */ }
    s.rec.stoppedAt = now;  // a chunk scheduled later than now never sounds (stoppedAt < start)
  }
  sources = sources.filter((x) => x.rec.reply !== reply);
  // pendingAudio keeps its entries: each pairs with the next PCM frame in order (playChunk skips them)
  if (currentReply === reply) { C.frames = []; replyStart = null; }
  $("#speaking").classList.add("hidden"); restMouth(); ev("cancelled", { reply, reason, restDrawn: C.restDrawn });
}
function restMouth() {
  C.mouthAtRest = true;
  if (av && C.face3d) { av.silence(); C.restDrawn++; }
  if (restFrame) { drawEncoded($("#face"), restFrame.kind, restFrame.payload); C.restDrawn++; }
}
function playedSeconds() { return audio && replyStart !== null ? Math.max(0, audio.currentTime - replyStart) : 0; }
function stopAnswer() {  // the customer pressed stop, typed or pressed the mic: tell the server how much was heard
  if (!conn || !isPlaying()) return;
  conn.send({ type: "stop", played_s: playedSeconds() });
  cancelReply(currentReply, "stop");
}
$("#stop").onclick = stopAnswer;
// Show the newest frame whose media time has been reached by the audio clock: lips stay on the voice.
let drawing = false;
async function tick() {
  requestAnimationFrame(tick);
  if (drawing || replyStart === null || !audio || !C.frames.length) return;
  const t = (audio.currentTime - replyStart) * 1000;
  let idx = -1;
  for (let i = 0; i < C.frames.length && C.frames[i].timestamp <= t; i++) idx = i;
  if (idx < 0) return;
  const f = C.frames[idx]; C.frames.splice(0, idx + 1);
  drawing = true;
  try { await drawEncoded($("#face"), f.kind, f.payload); C.framesShown++; } finally { drawing = false; }
}
requestAnimationFrame(tick);
$("#ask").onsubmit = (evt) => {
  evt.preventDefault();
  const text = $("#question").value.trim(); if (!text || !conn) return;
  audio ||= new AudioContext();  // created on a click: browsers allow sound after a user gesture
  audio.resume();
  stopAnswer();
  bubble("user", text); $("#question").value = "";
  conn.send({ type: "say", text });
};

// Microphone → PCM16 frames. Hold to talk: between "listen" and "listen_end", transcribed at the end.
// Talk (hands-free): mode "stream", the server's VAD finds each question, shows partial text and lets the
// customer interrupt the answer by speaking (echo cancellation keeps the employee's own voice out).
let mic = null;
async function openMic(mode) {
  audio ||= new AudioContext(); audio.resume();
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true,
    noiseSuppression: true, autoGainControl: true } });
  const src = audio.createMediaStreamSource(stream), proc = audio.createScriptProcessor(4096, 1, 1);
  const mute = audio.createGain(); mute.gain.value = 0;  // keeps the processor running without playing the mic
  let seq = 0;
  conn.send({ type: "listen", sample_rate: audio.sampleRate, mode });
  proc.onaudioprocess = (e) => {
    const f = e.inputBuffer.getChannelData(0), pcm = new Int16Array(f.length);
    for (let i = 0; i < f.length; i++) pcm[i] = Math.max(-1, Math.min(1, f[i])) * 32767;
    if (seq === 0) ev("mic_first_chunk", { rate: audio.sampleRate, label: stream.getAudioTracks()[0].label });
    conn.sendFrame(Kind.PCM16, seq++, 0, pcm.buffer);
  };
  src.connect(proc); proc.connect(mute); mute.connect(audio.destination);
  return { stream, src, proc, mute, mode };
}
function closeMic() {
  if (!mic) return;
  mic.proc.disconnect(); mic.src.disconnect(); mic.mute.disconnect(); mic.stream.getTracks().forEach((t) => t.stop());
  mic = null;
  conn.send({ type: "listen_end" });
}
async function micDown() {
  if (!conn || mic) return;
  stopAnswer();
  try { mic = await openMic("hold"); $("#mic").classList.add("on"); $("#mic").textContent = "Listening…"; }
  catch (e) { toast(`Microphone unavailable: ${e.message}`); }
}
function micUp() {
  if (!mic || mic.mode !== "hold") return;
  closeMic(); $("#mic").classList.remove("on"); $("#mic").textContent = "Hold to talk";
}
$("#mic").addEventListener("pointerdown", micDown);
for (const e of ["pointerup", "pointerleave"]) $("#mic").addEventListener(e, micUp);
$("#talk").onclick = async () => {
  if (!conn) return;
  if (mic && mic.mode === "stream") {
    closeMic(); C.talking = false; $("#talk").classList.remove("on"); $("#talk").textContent = "Talk"; return;
  }
  if (mic) return;
  try {
    mic = await openMic("stream"); C.talking = true; ev("talk_on");
    $("#talk").classList.add("on"); $("#talk").textContent = "Listening — click to end";
  } catch (e) { toast(`Microphone unavailable: ${e.message}`); }
};

// Re-open the last brand of this browser.
loadAvatars().catch((e) => toast(e.message));
const saved = JSON.parse(localStorage.getItem("fs-brand") || "null");
if (saved) openBrand(saved.brand, saved.key).catch(() => localStorage.removeItem("fs-brand"));
