// A trainlab live figure (live_figure.py): the frames the kernel sends, drawn by plotly.js when
// the dashboard is paused (hover, zoom, legend clicks, the toolbar) and by the light renderer
// (light_plot.js, uPlot on a canvas) while it plays, where plotly.js's 40-60 ms a redraw would
// take the page's whole core.
//
// Kernel -> page: {kind: "frame", frame, whole, traces: [{index, set}], layout}, numpy arrays
//   as binary buffers ({"$buffer": i, dtype, shape} in the JSON; with "keep": k, the first k
//   values the trace has, then these); or {kind: "frames", frames: [frame + {figure, offset}]}:
//   several figures' frames in one message, each part for the figure it names (its buffers
//   from `offset` on).
// Page -> kernel: "hello" ({view}: a new view, send me everything), "seen" ({view, visible}: the
//   view scrolled into or out of sight; out of sight, it draws nothing and the kernel sends it
//   nothing), "click" ({x, y, trace}: the learner clicked the plot there, in its axes' values; only
//   for a figure whose kernel side listens, `clickable`). For all the figures of one kernel at once (through any one of them, so each costs
//   the kernel one message, not one per figure):
//   "drawn" ({frames: {model id: newest frame on screen}}, at most every ACK_EVERY ms), "alive"
//   ({ids}, every 2 s while the kernel sets "watched", i.e. while a dashboard plays).

const LIBRARY_PREFIX = "IPY_MODEL_";
const PLOTLY = Symbol.for("trainlab.plotly.js"); // page-global: version -> Promise<Plotly>
const LIGHT = Symbol.for("trainlab.light.js"); // page-global: version -> Promise<{uPlot, lightPlot, lightPlottable}>
const TICKER = Symbol.for("trainlab.heartbeat");
const KERNELS = Symbol.for("trainlab.kernels"); // page-global: widget manager -> its figures' outbox
const CLOCK = Symbol.for("trainlab.clock"); // page-global: the draws due at the next shared frame
const VIEWS = Symbol.for("trainlab.views"); // page-global: figure id -> its views' message handlers
const CONFIG = { displaylogo: false, responsive: false };
const ARRAYS = { float32: Float32Array, float64: Float64Array, uint8: Uint8Array };
const ACK_EVERY = 500; // ms: "drawn" goes out at most this often per kernel (each message costs it a busy/idle pair)
// ms between the page's drawing frames: every figure due draws in the same one, so the browser
// composites (copies each changed canvas, repaints) once for all of them, at most ~15 times a second.
const FRAME_EVERY = 66;
// ms: frames this close together, the last this recent, and a figure no dashboard plays draws light too
// (a fit in a cell, a neuron view beside a playing dashboard)
const STREAMING = 1500;

// The page's one copy of plotly.js and of the light renderer (run once per page and version, shared by every figure).
function libraries(model) {
  const lib = model.widget_manager.get_model(String(model.get("library")).slice(LIBRARY_PREFIX.length));
  const once = (symbol, version, load) => {
    const loaded = (globalThis[symbol] ??= {});
    return (loaded[version] ??= load());
  };
  const plotly = lib.then((l) => once(PLOTLY, l.get("version"), () => run(l.get("source"), () => window.Plotly)));
  const light = lib.then((l) => once(LIGHT, l.get("light_version"), () => {
    const style = document.createElement("style");
    style.textContent = l.get("light_css");
    document.head.appendChild(style);
    return run(l.get("light_source"), (module) => module);
  }));
  return { plotly, light, templates: lib.then((l) => l.get("templates")) };
}

async function run(source, pick) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return pick(await import(/* webpackIgnore: true */ url)); // plotly.js sets window.Plotly; the light renderer exports
  } finally {
    URL.revokeObjectURL(url);
  }
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
  const flat = value.scale ? unquantized(new Uint8Array(bytes), value.scale) : new ARRAYS[value.dtype](bytes);
  if (value.keep) return joinedTail(old, value.keep, flat);
  if (value.shape.length < 2) return flat;
  const [rows, columns] = value.shape;
  return Array.from({ length: rows }, (_, r) => flat.subarray(r * columns, (r + 1) * columns));
}

// Bytes back to numbers: 0..254 over [low, high], 255 for NaN (live_figure.py's Quantized).
function unquantized(codes, [low, high]) {
  const out = new Float32Array(codes.length), step = (high - low) / 254;
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] === 255 ? NaN : low + codes[i] * step;
  return out;
}

// The first `keep` values of `old`, then `tail`.
function joinedTail(old, keep, tail) {
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
function themed(layout, templates, revision, dark) {
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

// Several figures' frames in one message: each part to the views of the figure it names.
function handOut(message, buffers) {
  const views = globalThis[VIEWS] || new Map();
  for (const part of message.frames) {
    for (const view of views.get(part.figure) || []) view({ ...part, kind: "frame" }, buffers.slice(part.offset));
  }
}

// Run `draw` at the page's next drawing frame, with every other figure's due draw.
function atNextFrame(draw) {
  const clock = (globalThis[CLOCK] ??= { due: new Set(), requested: false, last: -Infinity });
  clock.due.add(draw);
  if (clock.requested) return;
  clock.requested = true;
  const tick = (now) => {
    const wait = clock.last + FRAME_EVERY - 4 - now; // 4 ms early is on time
    if (wait > 0) return setTimeout(() => requestAnimationFrame(tick), wait); // not a frame per vsync meanwhile
    clock.last = now;
    clock.requested = false;
    const due = [...clock.due];
    clock.due.clear();
    due.forEach((fn) => fn());
  };
  requestAnimationFrame(tick);
}

// What the figures of one kernel tell it, gathered: one "drawn" for all of them at most every
// ACK_EVERY ms, one "alive" for all of them every 2 s. Sent through any figure still open.
function outboxFor(manager) {
  const kernels = (globalThis[KERNELS] ??= new Map());
  let box = kernels.get(manager);
  if (box) return box;
  const figures = new Map(); // model id -> {send, watched}
  const drawn = {};
  let timer = null, last = -Infinity;
  const send = (content) => {
    last = performance.now();
    for (const figure of figures.values()) if (figure.send(content)) return;
  };
  const flush = () => {
    timer = null;
    if (!Object.keys(drawn).length) return;
    send({ kind: "drawn", frames: { ...drawn } });
    for (const id in drawn) delete drawn[id];
  };
  // "alive" only when nothing else was said lately: any message tells the kernel the page is there.
  const beat = () => {
    const ids = [...figures].filter(([, figure]) => figure.watched()).map(([id]) => id);
    if (ids.length && performance.now() - last > 1500) send({ kind: "alive", ids });
  };
  let stopBeat = null;
  box = {
    add(id, figure) {
      figures.set(id, figure);
      stopBeat ??= everyTwoSeconds(beat);
    },
    remove(id) {
      figures.delete(id);
      delete drawn[id];
      if (!figures.size) {
        stopBeat && stopBeat();
        kernels.delete(manager);
      }
    },
    drawn(id, frame) {
      drawn[id] = frame;
      if (timer === null) timer = setTimeout(flush, Math.max(0, last + ACK_EVERY - performance.now()));
    },
  };
  kernels.set(manager, box);
  return box;
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "trainlab-live-figure";
  const plotlyDiv = document.createElement("div"), lightDiv = document.createElement("div");
  lightDiv.className = "trainlab-light-plot";
  box.append(plotlyDiv, lightDiv);
  el.appendChild(box);
  const figure = { data: [], layout: {} };
  box.trainlabFigure = figure; // what the page shows, for tests and curious learners
  const { plotly, light: lightModule, templates } = libraries(model);
  const id = model.get("figure_id");
  box.dataset.figure = id;
  const outbox = outboxFor(model.widget_manager);
  let received = 0; // the newest frame applied to `figure`; 0: none yet, and only a whole one will do
  let drawn = 0; // the newest frame on screen
  let scheduled = false, drawing = false, closed = false;
  let light = null; // the light renderer, while playing
  let shownBy = null; // "plotly" or "light": who drew last
  let zoom = {}; // the ranges the learner zoomed to in plotly.js, kept while playing
  let arrivals = [-Infinity, -Infinity]; // when the last two frames came
  let visible = true; // in sight (IntersectionObserver): out of it, nothing is drawn
  const view = Math.random().toString(36).slice(2); // names this view in "hello" and "seen"
  let settle = null; // once frames stop coming, plotly.js draws again

  const say = (content) => {
    if (closed) return false;
    try {
      model.send(content);
      return true;
    } catch (error) {
      closed = true; // the kernel is gone: nobody to tell
      return false;
    }
  };

  // Apply every frame at once (cheap); draw only the newest, at the page's next drawing frame.
  const onMessage = (message, buffers) => {
    if (message && message.kind === "frames") return handOut(message, buffers);
    if (!message || message.kind !== "frame" || (!message.whole && !received)) return;
    if (message.frame <= received) return; // had it already (a frame handed out by two views of its carrier)
    if (message.whole) figure.data = [];
    for (const { index, set } of message.traces) {
      const trace = { ...(figure.data[index] || {}) };
      for (const [name, value] of Object.entries(set)) trace[name] = decode(value, buffers, trace[name]);
      figure.data[index] = trace;
    }
    if (message.layout) {
      figure.layout = decode(message.layout, buffers);
      box.dataset.title = (figure.layout.title && figure.layout.title.text) || "";
    }
    received = message.frame;
    arrivals = [arrivals[1], performance.now()];
    schedule();
  };

  const schedule = () => {
    if (scheduled || closed) return;
    scheduled = true;
    atNextFrame(draw);
  };

  // While playing (or frames stream in), the light renderer; paused, plotly.js (and the zoom a
  // learner set there carries over).
  const streaming = () => performance.now() - arrivals[1] < STREAMING && arrivals[1] - arrivals[0] < STREAMING;
  const wantsLight = async () => (model.get("watched") || streaming()) && (await lightModule).lightPlottable(figure);

  const drawLight = async (dark) => {
    if (!light) {
      const { uPlot, lightPlot } = await lightModule;
      light = lightPlot(uPlot, lightDiv);
    }
    if (shownBy !== "light") zoom = zoomOf(plotlyDiv);
    // The template's colours for traces that name none, as plotly.js would pick them.
    const colorway = (await templates)[dark ? "dark" : "light"].layout.colorway;
    light.draw({ data: figure.data, layout: { colorway, ...figure.layout } }, dark, zoom);
    plotlyDiv.style.display = "none";
    lightDiv.style.display = "";
    shownBy = "light";
    clearTimeout(settle);
    if (!model.get("watched")) settle = setTimeout(schedule, STREAMING); // back to plotly.js once quiet
  };

  // A click on the plot, for figures that ask (`clickable`): where it landed, in the plot's own values.
  const clicked = (point) => model.get("clickable") && say({ kind: "click", ...point });
  let clicksWired = false;
  lightDiv.addEventListener("click", (event) => {
    const point = light && light.valueAt(event.clientX, event.clientY);
    if (point) clicked(point);
  });

  const drawPlotly = async (dark, frame) => {
    const Plotly = await plotly;
    // Fresh objects each time: Plotly.react finds what changed by comparing with the last ones.
    const data = figure.data.filter(Boolean).map((trace) => ({ ...trace }));
    await Plotly.react(plotlyDiv, data, themed(figure.layout, await templates, frame, dark), CONFIG);
    if (!clicksWired && plotlyDiv.on) {
      clicksWired = true;
      plotlyDiv.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (point) clicked({ x: point.x, y: point.y, trace: point.curveNumber });
      });
    }
    lightDiv.style.display = "none";
    plotlyDiv.style.display = "";
    shownBy = "plotly";
  };

  const draw = async () => {
    scheduled = false;
    if (drawing || closed || !visible) return; // the draw under way schedules the next one; in sight again, one comes
    drawing = true;
    const frame = received;
    try {
      const dark = pageIsDark();
      if (await wantsLight()) await drawLight(dark);
      else await drawPlotly(dark, frame);
      if (box.dataset.frame !== String(frame)) box.dataset.frame = String(frame); // a change: a new picture
      box.dataset.renderer = shownBy;
    } catch (error) {
      console.error("trainlab live figure: could not draw", error);
    } finally {
      drawing = false;
    }
    if (frame > drawn) {
      drawn = frame;
      outbox.drawn(id, frame);
    }
    if (received !== frame) schedule();
  };

  const views = (globalThis[VIEWS] ??= new Map());
  if (!views.has(id)) views.set(id, new Set());
  views.get(id).add(onMessage);
  model.on("msg:custom", onMessage);
  // Pause: plotly.js draws the figure again at once. (Play: the first frame, coming anyway, draws light; redrawing
  // every figure light at the click would delay that first frame behind all of them.)
  const onWatched = () => model.get("watched") || schedule();
  model.on("change:watched", onWatched);
  outbox.add(id, { send: say, watched: () => model.get("watched") });
  // Follow JupyterLab's theme when the learner switches it.
  const themeWatch = new MutationObserver(schedule);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  // Out of sight (scrolled away, a collapsed output), a figure is neither drawn nor sent frames.
  const sight = new IntersectionObserver((entries) => {
    const now = entries[entries.length - 1].isIntersecting;
    if (now === visible) return;
    visible = now;
    say({ kind: "seen", view, visible });
    if (visible) schedule();
  });
  sight.observe(box);
  say({ kind: "hello", view });

  return () => {
    say({ kind: "seen", view, visible: false }); // a view that is gone sees nothing
    closed = true;
    clearTimeout(settle);
    model.off("msg:custom", onMessage);
    model.off("change:watched", onWatched);
    views.get(id).delete(onMessage);
    outbox.remove(id);
    themeWatch.disconnect();
    sight.disconnect();
    if (light) light.destroy();
    plotly.then((Plotly) => Plotly.purge(plotlyDiv)).catch(() => {});
  };
}

// The axis ranges plotly.js shows that are not its own autorange: a zoom, or a range the kernel fixed.
function zoomOf(div) {
  const layout = div.layout || {};
  const ranges = {};
  for (const [name, axis] of [["x", layout.xaxis], ["y", layout.yaxis]]) {
    if (axis && axis.autorange === false && axis.range) ranges[name] = axis.range.slice();
  }
  return ranges;
}

export default { render };
