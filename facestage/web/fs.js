// facestage protocol v1 client for browsers (see docs/protocol.md). ES module, no dependencies.
export const Kind = { JPEG: 1, WEBP: 2, PCM16: 3, WEIGHTS: 4, PNG: 5 };
export const MIME = { 1: "image/jpeg", 2: "image/webp", 5: "image/png" };
const HEADER = 16;

export function packFrame(kind, seq, timestamp, payload, flags = 0) {
  const body = new Uint8Array(payload);
  const out = new Uint8Array(HEADER + body.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, 1); dv.setUint8(1, kind); dv.setUint16(2, flags); dv.setUint32(4, seq >>> 0); dv.setFloat64(8, timestamp);
  out.set(body, HEADER);
  return out.buffer;
}

export function unpackFrame(buf) {
  const dv = new DataView(buf);
  return { version: dv.getUint8(0), kind: dv.getUint8(1), flags: dv.getUint16(2), seq: dv.getUint32(4),
           timestamp: dv.getFloat64(8), payload: buf.slice(HEADER) };
}

export const now = () => performance.timeOrigin + performance.now();

export function wsURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/v1/ws`;
}

// One WebSocket with typed message handlers and automatic reconnect. After a reconnect the page's next
// "start" of the same session type becomes a resume of the server's stored checkpoint (face ids, calibration,
// dialogue memory; the page's options still apply), so a restarted server or a killed cluster replica costs
// a viewer a moment, not the session. The session id rides in the URL for sticky routing in a cluster.
const FIRST_RETRY_MS = 50, MAX_RETRY_MS = 8000;
export class Connection {
  constructor({ onOpen, onClose } = {}) {
    this.handlers = {}; this.frameHandler = null; this.onOpen = onOpen; this.onClose = onClose;
    this.closedByUser = false; this.retry = FIRST_RETRY_MS;
    this.sessionId = null; this.lastStart = null; this.reconnected = false; this.pendingStart = null; this.resumes = 0;
  }
  on(type, fn) { (this.handlers[type] ||= []).push(fn); return this; }
  onFrame(fn) { this.frameHandler = fn; return this; }
  url() { return wsURL() + (this.sessionId ? `?session=${encodeURIComponent(this.sessionId)}` : ""); }
  open() {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.url());
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => { this.retry = FIRST_RETRY_MS; resolve(this); this.onOpen && this.onOpen(this); };
      ws.onmessage = (ev) => {
        if (typeof ev.data === "string") {
          const msg = JSON.parse(ev.data);
          if (msg.type === "started") {
            if (this.pendingStart && msg.session_id === this.sessionId) this.resumes += 1;
            this.sessionId = msg.session_id; this.pendingStart = null;
          } else if (msg.type === "error" && this.pendingStart && msg.code === "no_checkpoint") {
            const plain = this.pendingStart; this.pendingStart = null;  // expired: the same session afresh
            this.ws.send(JSON.stringify(plain));
            return;
          }
          for (const fn of (this.handlers[msg.type] || [])) fn(msg);
          for (const fn of (this.handlers["*"] || [])) fn(msg);
        } else if (this.frameHandler) {
          this.frameHandler(unpackFrame(ev.data));
        }
      };
      ws.onclose = () => {
        this.onClose && this.onClose(this);
        if (this.closedByUser) return;
        this.reconnected = true;
        setTimeout(() => this.open(), this.retry);
        this.retry = Math.min(this.retry * 1.5, MAX_RETRY_MS);  // 50, 75, 112 … ms: quick while a replica restarts
      };
    });
  }
  get ready() { return this.ws && this.ws.readyState === WebSocket.OPEN; }
  get buffered() { return this.ws ? this.ws.bufferedAmount : 0; }
  send(msg) {
    if (!this.ready) return;
    if (msg.type === "start") {
      const resume = this.reconnected && !msg.resume && this.sessionId && this.lastStart && this.lastStart.session === msg.session;
      this.reconnected = false; this.lastStart = msg;
      if (!resume) this.sessionId = null;
      this.pendingStart = resume ? msg : null;
      if (resume) msg = { ...msg, resume: { session_id: this.sessionId } };
    }
    this.ws.send(JSON.stringify(msg));
  }
  sendFrame(kind, seq, ts, payload) { if (this.ready) this.ws.send(packFrame(kind, seq, ts, payload)); }
  close() { this.closedByUser = true; this.ws && this.ws.close(); }
}

// Draw an encoded image (JPEG/WebP with alpha) onto a canvas, resizing it to the image.
export async function drawEncoded(canvas, kind, payload) {
  const bmp = await createImageBitmap(new Blob([payload], { type: MIME[kind] || "image/jpeg" }));
  if (canvas.width !== bmp.width || canvas.height !== bmp.height) { canvas.width = bmp.width; canvas.height = bmp.height; }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
}

// URL of an avatar's 3D model (facestage/serving/web_assets.py): NAME.vrm for built-ins, NAME.glb for photo avatars;
// "photo:x" / "upload:x" become URL-safe "photo-x" / "upload-x", and an upload names its brand.
export function avatarURL(name, brand = null) {
  const url = `/v1/avatars/${encodeURIComponent(name.replace(/^(photo|upload):/, "$1-"))}.${name.startsWith("photo:") ? "glb" : "vrm"}`;
  return name.startsWith("upload:") && brand ? `${url}?brand=${encodeURIComponent(brand)}` : url;
}

export async function getJSON(url, opts = {}) {
  const res = await fetch(url, opts);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || `${res.status} ${res.statusText}`);
  return body;
}

let toastTimer = null;
export function toast(text, kind = "error") {
  let el = document.querySelector(".toast");
  if (!el) { el = document.createElement("div"); el.className = "toast"; document.body.appendChild(el); }
  el.textContent = text; el.className = `toast show ${kind === "info" ? "info" : ""}`;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// Exponential moving average for fps/latency readouts.
export class EMA { constructor(a = 0.1) { this.a = a; this.v = null; } add(x) { this.v = this.v === null ? x : this.v + this.a * (x - this.v); return this.v; } }

// Status dot in the header.
export function setStatus(ok, text) {
  const dot = document.querySelector("#conn-dot"), label = document.querySelector("#conn-text");
  if (dot) dot.classList.toggle("ok", ok);
  if (label) label.textContent = text;
}
