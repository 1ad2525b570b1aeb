// A trainlab live figure (live_figure.py): plotly.js draws the frames the kernel sends.
//
// Kernel -> page: {kind: "frame", frame, whole, traces: [{index, set}], layout}, numpy arrays
//   as binary buffers ({"$buffer": i, dtype, shape} in the JSON; with "keep": k, the first k
//   values the trace has, then these).
// Page -> kernel: "hello" (send me everything), "drawn" (frame n is on screen), "alive" (every 2 s
//   while the kernel sets "watched").

const LIBRARY_PREFIX = "IPY_MODEL_";
const PLOTLY = Symbol.for("trainlab.plotly.js"); // page-global: version -> Promise<Plotly>
const TICKER = Symbol.for("trainlab.heartbeat");
const CONFIG = { displaylogo: false, responsive: false };
const ARRAYS = { float32: Float32Array, float64: Float64Array };

// The page's one copy of plotly.js (run once per page and version, shared by every figure), and the templates.
async function library(model) {
  const id = String(model.get("library")).slice(LIBRARY_PREFIX.length);
  const lib = await model.widget_manager.get_model(id);
  const loaded = (globalThis[PLOTLY] ??= {});
  loaded[lib.get("version")] ??= run(lib.get("source"));
  return { Plotly: await loaded[lib.get("version")], templates: lib.get("templates") };
}

async function run(source) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    await import(/* webpackIgnore: true */ url); // plotly.js sets window.Plotly
  } finally {
    URL.revokeObjectURL(url);
  }
  return window.Plotly;
}

// A numpy array from its buffer: 1-D as a typed array, 2-D (a heatmap's z) as an array of rows.
function decode(value, buffers, old) {
  if (Array.isArray(value)) return value.map((item) => decode(item, buffers));
  if (value === null || typeof value !== "object") return value;
  if (!("$buffer" in value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v, buffers)]));
  }
  const view = buffers[value.$buffer];
  const bytes = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength); // aligned copy
  const flat = new ARRAYS[value.dtype](bytes);
  if (value.keep) return joined(old, value.keep, flat);
  if (value.shape.length < 2) return flat;
  const [rows, columns] = value.shape;
  return Array.from({ length: rows }, (_, r) => flat.subarray(r * columns, (r + 1) * columns));
}

// The first `keep` values of `old`, then `tail`.
function joined(old, keep, tail) {
  const out = new tail.constructor(keep + tail.length);
  out.set(old.subarray(0, keep));
  out.set(tail, keep);
  return out;
}

// Whether the page is dark: JupyterLab says so on <body>; elsewhere, judge its background colour.
function pageIsDark() {
  const light = document.body.dataset.jpThemeLight;
  if (light !== undefined) return light === "false";
  const color = getComputedStyle(document.body).getPropertyValue("--jp-layout-color0").trim();
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (!hex) return false;
  const n = parseInt(hex[1], 16);
  return 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255) < 128;
}

// The layout with the page's template; on a dark page, the light see-through boxes behind legends and labels go dark.
function themed(layout, templates, revision) {
  const dark = pageIsDark();
  const out = { ...layout, template: dark ? templates.dark : templates.light, datarevision: revision };
  if (dark) {
    const shade = (box) => (box && box.bgcolor ? { ...box, bgcolor: "rgba(17,17,17,0.7)" } : box);
    out.legend = shade(layout.legend);
    out.annotations = (layout.annotations || []).map(shade);
  }
  return out;
}

// One timer per page, in a worker where possible: hidden tabs throttle the page's own timers.
function everyTwoSeconds(fn) {
  if (!globalThis[TICKER]) {
    const listeners = new Set();
    const tick = () => listeners.forEach((listener) => listener());
    try {
      const code = "setInterval(() => postMessage(0), 2000);";
      const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
      worker.onmessage = tick;
    } catch (error) {
      setInterval(tick, 2000);
    }
    globalThis[TICKER] = listeners;
  }
  globalThis[TICKER].add(fn);
  return () => globalThis[TICKER].delete(fn);
}

function render({ model, el }) {
  const div = document.createElement("div");
  div.className = "trainlab-live-figure";
  el.appendChild(div);
  const figure = { data: [], layout: {} };
  const ready = library(model);
  let received = 0; // the newest frame applied to `figure`; 0: none yet, and only a whole one will do
  let drawn = 0; // the newest frame on screen
  let scheduled = false;
  let drawing = false;
  let closed = false;

  const say = (content) => {
    if (closed) return;
    try {
      model.send(content);
    } catch (error) {
      closed = true; // the kernel is gone: nobody to tell
    }
  };

  // Apply every frame at once (cheap); draw only the newest, at the next animation frame.
  const onMessage = (message, buffers) => {
    if (!message || message.kind !== "frame" || (!message.whole && !received)) return;
    if (message.whole) figure.data = [];
    for (const { index, set } of message.traces) {
      const trace = { ...(figure.data[index] || {}) };
      for (const [name, value] of Object.entries(set)) trace[name] = decode(value, buffers, trace[name]);
      figure.data[index] = trace;
    }
    if (message.layout) figure.layout = decode(message.layout, buffers);
    received = message.frame;
    schedule();
  };

  const schedule = () => {
    if (scheduled || closed) return;
    scheduled = true;
    requestAnimationFrame(draw);
  };

  const draw = async () => {
    scheduled = false;
    if (drawing || closed) return; // the draw under way schedules the next one
    drawing = true;
    const frame = received;
    try {
      const { Plotly, templates } = await ready;
      // Fresh objects each time: Plotly.react finds what changed by comparing with the last ones.
      const data = figure.data.filter(Boolean).map((trace) => ({ ...trace }));
      await Plotly.react(div, data, themed(figure.layout, templates, frame), CONFIG);
    } catch (error) {
      console.error("trainlab live figure: could not draw", error);
    } finally {
      drawing = false;
    }
    if (frame > drawn) {
      drawn = frame;
      say({ kind: "drawn", frame });
    }
    if (received !== frame) schedule();
  };

  model.on("msg:custom", onMessage);
  // Only while the kernel listens (a dashboard plays): every message makes the kernel look busy,
  // and a paused dashboard in a forgotten tab must let its kernel go idle (and be culled).
  const stopHeartbeat = everyTwoSeconds(() => model.get("watched") && say({ kind: "alive" }));
  // Follow JupyterLab's theme when the learner switches it.
  const themeWatch = new MutationObserver(schedule);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  say({ kind: "hello" });

  return () => {
    closed = true;
    model.off("msg:custom", onMessage);
    stopHeartbeat();
    themeWatch.disconnect();
    ready.then(({ Plotly }) => Plotly.purge(div)).catch(() => {});
  };
}

export default { render };
