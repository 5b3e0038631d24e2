// lightseg browser demo: the manifest's preprocessing, onnxruntime-web (WASM), argmax mask and
// overlay, with the same numbers as lightseg/data/preprocessing.py and android_demo's Java.
// Strings from the manifest or the server reach the page only as text (textContent, Option):
// never parsed as HTML, so an artifact named like markup stays a name.
"use strict";

const PALETTE = [0x000000, 0xff3030, 0x30ff30, 0x3080ff, 0xffd030];
const ALPHA = 128;
const params = new URLSearchParams(location.search);
const RUNS = Math.max(1, parseInt(params.get("runs") || "20", 10));
const WARMUP = 2;
const $ = (id) => document.getElementById(id);
const f32 = Math.fround;

// ---- preprocessing (float32 arithmetic, like numpy on float32 arrays) ----
class Preprocessing {
  constructor(d) {
    this.level = d.window_level ?? 0;
    this.width = d.window_width ?? 600;
    this.channels = d.channels ?? 3;
    this.size = d.size ?? 256;
    this.fit = d.fit ?? "pad";
    if (!(this.width > 0 && this.channels >= 1 && this.size >= 1)) {
      throw new Error("preprocessing: window_width, channels and size must be positive");
    }
    if (this.fit !== "pad" && this.fit !== "resize") {
      throw new Error(`preprocessing: fit must be 'pad' or 'resize', got '${this.fit}'`);
    }
  }

  window(hu) {
    const lo = f32(this.level - this.width / 2);
    const w = f32(this.width);
    const out = new Float32Array(hu.length);
    for (let k = 0; k < hu.length; k++) {
      const v = hu[k];
      if (!Number.isFinite(v)) throw new Error("preprocessing: image contains NaN or Inf values");
      const y = f32(f32(v - lo) / w);
      out[k] = y < 0 ? 0 : y > 1 ? 1 : y;
    }
    return out;
  }

  padGeometry(h, w) {
    const s = this.size;
    const half = (n) => Math.floor(n / 2);
    return [Math.max(0, half(h - s)), Math.max(0, half(w - s)), Math.max(0, half(s - h)),
      Math.max(0, half(s - w)), Math.min(h, s), Math.min(w, s)];
  }

  fit2d(a, h, w) {
    const s = this.size;
    if (this.fit === "resize") return h === s && w === s ? a.slice() : this.resize(a, h, w);
    const out = new Float32Array(s * s);
    const [sy, sx, dy, dx, ch, cw] = this.padGeometry(h, w);
    for (let y = 0; y < ch; y++) {
      out.set(a.subarray((sy + y) * w + sx, (sy + y) * w + sx + cw), (dy + y) * s + dx);
    }
    return out;
  }

  resize(a, h, w) { // scipy.ndimage.zoom, order 1, grid_mode=False
    const s = this.size;
    const out = new Float32Array(s * s);
    const zy = s > 1 ? (h - 1) / (s - 1) : 0;
    const zx = s > 1 ? (w - 1) / (s - 1) : 0;
    for (let oy = 0; oy < s; oy++) {
      const fy = oy * zy, y0 = Math.min(Math.floor(fy), h - 1), y1 = Math.min(y0 + 1, h - 1);
      const ty = fy - y0;
      for (let ox = 0; ox < s; ox++) {
        const fx = ox * zx, x0 = Math.min(Math.floor(fx), w - 1), x1 = Math.min(x0 + 1, w - 1);
        const tx = fx - x0;
        const top = a[y0 * w + x0] * (1 - tx) + a[y0 * w + x1] * tx;
        const bot = a[y1 * w + x0] * (1 - tx) + a[y1 * w + x1] * tx;
        out[oy * s + ox] = top * (1 - ty) + bot * ty;
      }
    }
    return out;
  }

  apply(hu, h, w) {
    if (hu.length !== h * w) throw new Error(`image: ${hu.length} values is not ${h} x ${w}`);
    const plane = this.fit2d(this.window(hu), h, w);
    const out = new Float32Array(this.channels * plane.length);
    for (let c = 0; c < this.channels; c++) out.set(plane, c * plane.length);
    return out;
  }
}

// ---- post-processing ----
function argmax(logits, k, hw) {
  const mask = new Uint8Array(hw);
  for (let p = 0; p < hw; p++) {
    if (k === 1) { mask[p] = logits[p] > 0 ? 1 : 0; continue; }
    let best = logits[p], arg = 0;
    for (let c = 1; c < k; c++) {
      const v = logits[c * hw + p];
      if (v > best) { best = v; arg = c; }
    }
    mask[p] = arg;
  }
  return mask;
}

function overlayPixels(grey, mask, alpha) {
  const px = new Uint8ClampedArray(grey.length * 4);
  const blend = (g, c) => Math.floor((g * (255 - alpha) + c * alpha + 127) / 255);
  for (let p = 0; p < grey.length; p++) {
    const v = grey[p] < 0 ? 0 : grey[p] > 1 ? 1 : grey[p];
    const g = Math.floor(f32(f32(v * 255) + 0.5));
    let r = g, gr = g, b = g;
    const m = mask ? mask[p] : 0;
    if (m > 0) {
      const c = PALETTE[1 + ((m - 1) % (PALETTE.length - 1))];
      r = blend(g, (c >> 16) & 255); gr = blend(g, (c >> 8) & 255); b = blend(g, c & 255);
    }
    px.set([r, gr, b, 255], p * 4);
  }
  return px;
}

function draw(canvasId, grey, mask, size) {
  const cv = $(canvasId);
  cv.width = size; cv.height = size;
  cv.getContext("2d").putImageData(new ImageData(overlayPixels(grey, mask, ALPHA), size, size), 0, 0);
}

// ---- inputs ----
function readF32(buf) {
  const dv = new DataView(buf), out = new Float32Array(buf.byteLength / 4);
  for (let k = 0; k < out.length; k++) out[k] = dv.getFloat32(4 * k, true);
  return out;
}

function readNpy(buf) {
  const b = new Uint8Array(buf);
  if (b[0] !== 0x93 || String.fromCharCode(...b.subarray(1, 6)) !== "NUMPY") throw new Error("not a .npy file");
  const dv = new DataView(buf);
  const v1 = b[6] === 1;
  const hlen = v1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = (v1 ? 10 : 12) + hlen;
  const header = new TextDecoder().decode(b.subarray(v1 ? 10 : 12, start));
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(".npy: Fortran order is not supported");
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(",").filter((t) => t.trim()).map(Number);
  const dims = shape.filter((d) => d !== 1);
  if (dims.length !== 2) throw new Error(`.npy: expected a 2-D slice, got shape (${shape})`);
  const read = {
    "<f4": [4, (o) => dv.getFloat32(o, true)], "<f8": [8, (o) => dv.getFloat64(o, true)],
    "<i2": [2, (o) => dv.getInt16(o, true)], "<u2": [2, (o) => dv.getUint16(o, true)],
    "<i4": [4, (o) => dv.getInt32(o, true)], "|u1": [1, (o) => dv.getUint8(o)],
    "|i1": [1, (o) => dv.getInt8(o)],
  }[descr];
  if (!read) throw new Error(`.npy: dtype ${descr} is not supported`);
  const n = dims[0] * dims[1], hu = new Float32Array(n);
  for (let k = 0; k < n; k++) hu[k] = read[1](start + k * read[0]);
  return { hu, h: dims[0], w: dims[1] };
}

async function readImage(file, pre) { // grey levels are the window: 0 -> lo, 255 -> hi
  const bmp = await createImageBitmap(file);
  const cv = new OffscreenCanvas(bmp.width, bmp.height), ctx = cv.getContext("2d");
  ctx.drawImage(bmp, 0, 0);
  const d = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
  const hu = new Float32Array(bmp.width * bmp.height), lo = pre.level - pre.width / 2;
  for (let p = 0; p < hu.length; p++) hu[p] = lo + (d[p * 4] / 255) * pre.width;
  return { hu, h: bmp.height, w: bmp.width };
}

async function readFile(file, pre) {
  const name = file.name.toLowerCase();
  if (name.endsWith(".npy")) return readNpy(await file.arrayBuffer());
  if (name.endsWith(".f32")) {
    const hu = readF32(await file.arrayBuffer()), s = Math.round(Math.sqrt(hu.length));
    if (s * s !== hu.length) throw new Error(".f32: a raw slice must be square (or use .npy)");
    return { hu, h: s, w: s };
  }
  return readImage(file, pre);
}

// ---- model ----
async function sha256hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

function defaultArtifact(arts) {
  const want = params.get("artifact");
  if (want) {
    const a = arts.find((x) => x.name === want);
    if (!a) throw new Error(`no artifact '${want}' (has: ${arts.map((x) => x.name).join(", ")})`);
    return a;
  }
  const web = arts.filter((a) => (a.targets || []).includes("web-wasm"));
  return web.find((a) => a.precision === "fp32") || web[0]
    || arts.find((a) => a.format === "onnx" && a.precision === "fp32") || arts[0];
}

const demo = {
  state: "loading", error: null, result: null, manifest: null, pre: null, session: null,
  artifact: null, loadMs: 0, input: null,

  async load(artifact) {
    setStatus(`loading ${artifact.name}…`);
    const t0 = performance.now();
    const buf = await (await fetch(`/model/${artifact.path}`)).arrayBuffer();
    if (crypto.subtle) {
      const got = await sha256hex(buf);
      if (got !== artifact.sha256) {
        throw new Error(`${artifact.name}: sha256 ${got.slice(0, 12)} but the manifest says ${artifact.sha256.slice(0, 12)}: refused`);
      }
    }
    if (this.session) await this.session.release();
    this.session = await ort.InferenceSession.create(new Uint8Array(buf), {
      executionProviders: ["wasm"], graphOptimizationLevel: "all",
    });
    this.loadMs = performance.now() - t0;
    this.artifact = artifact;
  },

  async runHU(hu, h, w) {
    const pre = this.pre, s = pre.size;
    const x = pre.apply(hu instanceof Float32Array ? hu : Float32Array.from(hu), h, w);
    draw("slice", x.subarray(0, s * s), null, s);
    const feeds = { [this.session.inputNames[0]]: new ort.Tensor("float32", x, [1, pre.channels, s, s]) };
    const out = this.session.outputNames[0];
    let t = performance.now();
    let y = (await this.session.run(feeds))[out];
    const firstMs = performance.now() - t;
    for (let i = 0; i < WARMUP; i++) await this.session.run(feeds);
    const ms = [];
    for (let i = 0; i < RUNS; i++) {
      t = performance.now();
      y = (await this.session.run(feeds))[out];
      ms.push(performance.now() - t);
    }
    const k = y.dims[1], hw = s * s, mask = argmax(y.data, k, hw);
    draw("overlay", x.subarray(0, hw), mask, s);
    const sorted = [...ms].sort((a, b) => a - b), q = (p) => {
      const pos = (p / 100) * (sorted.length - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1);
      return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    };
    let lesion = 0;
    for (const v of mask) lesion += v === 1;
    this.result = {
      artifact: this.artifact.name, format: this.artifact.format, precision: this.artifact.precision,
      input: x, logits: y.data, dims: y.dims, mask, latency_ms: ms, first_ms: firstMs,
      load_ms: this.loadMs, p50: q(50), p90: q(90), threads: ort.env.wasm.numThreads,
      lesion_pixels: lesion,
    };
    showStats(this.result, h, w);
    return this.result;
  },

  async runSample() {
    const meta = await (await fetch("/sample.json")).json();
    const hu = readF32(await (await fetch("/sample_hu.f32")).arrayBuffer());
    this.sampleName = meta.name;
    return this.runHU(hu, meta.height, meta.width);
  },
};

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function showStats(r, h, w) {
  const rows = [
    ["model", `${r.artifact} (${r.format}, ${r.precision})`],
    ["input", `${h} x ${w} -> ${r.dims.slice(1).join(" x ")} logits`],
    ["load", `${r.load_ms.toFixed(1)} ms`],
    ["first run", `${r.first_ms.toFixed(2)} ms`],
    [`p50 (${r.latency_ms.length} runs)`, `${r.p50.toFixed(2)} ms`],
    ["p90", `${r.p90.toFixed(2)} ms`],
    ["WASM threads", `${r.threads}${crossOriginIsolated ? " (isolated)" : ""}`],
    ["lesion pixels", `${r.lesion_pixels}`],
  ];
  // Built node by node: manifest strings (artifact names) are text, never markup.
  $("stats").replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    for (const cell of [k, v]) tr.appendChild(document.createElement("td")).textContent = cell;
    return tr;
  }));
}

async function guarded(fn) {
  demo.state = "running";
  try {
    await fn();
    demo.state = "done";
    setStatus(`done: ${demo.result.artifact}, p50 ${demo.result.p50.toFixed(2)} ms`);
  } catch (e) {
    demo.state = "error";
    demo.error = String(e.message || e);
    setStatus(`error: ${demo.error}`, true);
  }
}

async function main() {
  ort.env.wasm.wasmPaths = "/ort/";
  const threads = parseInt(params.get("threads") || "0", 10);
  ort.env.wasm.numThreads = threads || (crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
  const manifest = await (await fetch("/model/manifest.json")).json();
  demo.manifest = manifest;
  demo.pre = new Preprocessing(manifest.preprocessing);
  const arts = manifest.artifacts.filter((a) => a.format === "onnx" || a.format === "ort");
  if (!arts.length) throw new Error("the manifest lists no .onnx or .ort artifact");
  const sel = $("artifact");
  for (const a of arts) sel.add(new Option(`${a.name} (${a.precision})`, a.name));
  const first = defaultArtifact(arts);
  sel.value = first.name;
  sel.onchange = () => guarded(async () => {
    await demo.load(arts.find((a) => a.name === sel.value));
    await demo.runSample();
  });
  $("sample").onclick = () => guarded(() => demo.runSample());
  $("file").onchange = (ev) => guarded(async () => {
    const f = ev.target.files[0];
    const { hu, h, w } = await readFile(f, demo.pre);
    await demo.runHU(hu, h, w);
  });
  await demo.load(first);
  await demo.runSample();
}

window.lightseg = demo;
guarded(main);
