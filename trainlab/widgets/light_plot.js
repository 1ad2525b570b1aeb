// The light renderer (live_figure.js uses it while a dashboard plays): a plotly figure's JSON
// drawn with uPlot on a canvas. A plotly.js redraw costs 40-60 ms of the page's CPU whatever the
// method; this costs well under one, so the loss curve can move every frame.
//
// It draws what the live plots use: scatter traces (lines, markers, open rings, "hv" steps, bands
// filled to the line before; one colour, or a colour per point on a colour scale; lines that go
// back and forth, in NaN-separated pieces, as the neuron view's weights), bars over named
// categories, heatmaps (blitted as an image, with a text per cell when given: a confusion matrix's
// counts), vertical/horizontal line shapes and text annotations, a legend, log and fixed axes. A figure
// with anything else (lightPlottable() says) stays with plotly.js.

const LIGHT_TRACES = new Set(["scatter", "bar", "heatmap"]);
const TITLE_HEIGHT = 24;
const FONT = "11px 'Open Sans', verdana, arial, sans-serif";
const DASHES = { dot: [2, 3], dash: [6, 4], dashdot: [6, 3, 2, 3] };

// Whether the light renderer can draw every trace of the figure.
function lightPlottable(figure) {
  return figure.data.every((trace) => !trace || LIGHT_TRACES.has(trace.type || "scatter"));
}

const shown = (trace) => trace && trace.visible !== false && trace.visible !== "legendonly";
const isArray = (value) => Array.isArray(value) || ArrayBuffer.isView(value);

// A plotly axis as uPlot sees it: its scale (log, fixed range) and its title.
function axisOf(axis = {}, userRange) {
  const log = axis.type === "log";
  let range = userRange || (axis.autorange === true ? null : axis.range);
  if (range && log) range = range.map((v) => 10 ** v); // plotly gives a log axis's range as log10
  // Ticks the figure names itself (tickvals, with their ticktext): a confusion matrix's classes, not 0.5 steps.
  const ticks = axis.tickmode === "array" && isArray(axis.tickvals) ? Array.from(axis.tickvals, Number) : null;
  return { log, range: range && range.map(Number), title: (axis.title && axis.title.text) || "", visible: axis.visible !== false,
    ticks, labels: ticks && isArray(axis.ticktext) ? Array.from(axis.ticktext, String) : null };
}

// The colour of `value` on a plotly colour scale ([[0, "#f59322"], [0.5, "#f7f7f7"], [1, "#0877bd"]]).
function colorScale(scale, low, high) {
  const stops = (scale || [[0, "#000000"], [1, "#ffffff"]]).map(([at, color]) => [Number(at), rgb(color)]);
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 1;
    while (k < stops.length - 1 && stops[k][0] < t) k++;
    const [t0, c0] = stops[k - 1], [t1, c1] = stops[k];
    const f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    for (let c = 0; c < 3; c++) lut[3 * i + c] = c0[c] + f * (c1[c] - c0[c]);
  }
  const span = high - low || 1;
  return (value) => {
    const i = Math.round(255 * Math.min(1, Math.max(0, (value - low) / span))) * 3;
    return [lut[i], lut[i + 1], lut[i + 2]];
  };
}

function rgb(color) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return [n >> 16, (n >> 8) & 255, n & 255];
  }
  const parts = String(color).match(/[\d.]+/g) || [0, 0, 0];
  return parts.slice(0, 3).map(Number);
}

function withOpacity(color, opacity) {
  if (opacity === undefined || opacity >= 1) return color;
  const [r, g, b] = rgb(color);
  return `rgba(${r},${g},${b},${opacity})`;
}

// A value for uPlot: a number, or null for a gap (NaN, or not positive on a log axis).
const cleaner = (log) => (value) => (value === null || !Number.isFinite(value) || (log && value <= 0) ? null : value);

// Whether the x values never go back (NaN aside): uPlot draws only such series.
function ascending(x) {
  let last = -Infinity;
  for (const value of x) {
    if (Number.isNaN(value)) continue;
    if (value < last) return false;
    last = value;
  }
  return true;
}

// How a trace is drawn: "series" (by uPlot), "free" (lines that go back and forth, in NaN-separated
// pieces: drawFreeLines), "points" (a colour per point: drawPoints), "heatmap", or "none" (hidden, empty).
function roleOf(trace) {
  if (!shown(trace)) return "none";
  const type = trace.type || "scatter";
  if (type === "heatmap") return "heatmap";
  if (trace.marker && isArray(trace.marker.color)) return trace.x ? "points" : "none";
  if (type === "bar") return "series";
  if (!trace.y || !trace.y.length) return "none";
  return trace.x && (trace.mode || "lines").includes("lines") && !ascending(trace.x) ? "free" : "series";
}

function freeLinesOf(figure) {
  return figure.data.filter((trace) => roleOf(trace) === "free");
}

// The figure's series: one table [x, y] per line/bar trace, in the order they are drawn.
function seriesOf(figure, colors, yLog) {
  const clean = cleaner(yLog);
  const tables = [], series = [], categories = [];
  figure.data.forEach((trace, index) => {
    if (roleOf(trace) !== "series") return;
    const marker = trace.marker || {};
    let x = Array.from(trace.x || [], Number), y = Array.from(trace.y || [], clean);
    if (trace.type === "bar") {
      categories.splice(0, categories.length, ...Array.from(trace.x || [], String));
      x = categories.map((_, i) => i);
    } else if (!trace.x) {
      x = y.map((_, i) => i);
    }
    const n = Math.min(x.length, y.length);
    tables.push([x.slice(0, n), y.slice(0, n)]);
    series.push({ trace, index, color: (trace.line && trace.line.color) || marker.color || colors[index % colors.length] });
  });
  return { tables, series, categories };
}

// Training points coloured each by its own value (the decision boundary's data).
function pointsOf(figure) {
  return figure.data.filter((trace) => roleOf(trace) === "points");
}

// One x column shared by every table (uPlot's data layout); null in a table stays a gap.
function joined(uPlot, tables) {
  if (!tables.length) return [[]];
  if (tables.length === 1) return tables[0];
  return uPlot.join(tables);
}

function uPlotSeries(uPlot, item) {
  const { trace, color } = item;
  const line = trace.line || {}, marker = trace.marker || {};
  const mode = trace.mode || "lines";
  const stroke = withOpacity(color, trace.opacity);
  const out = { label: trace.name || "", stroke, width: line.width ?? 2, spanGaps: false, points: { show: false } };
  if (trace.type === "bar") {
    return { ...out, fill: stroke, width: 0, paths: uPlot.paths.bars({ size: [0.6, 60] }) };
  }
  if (line.dash && DASHES[line.dash]) out.dash = DASHES[line.dash];
  if (line.shape === "hv") out.paths = uPlot.paths.stepped({ align: 1 });
  if (!mode.includes("lines")) out.paths = () => null;
  if (mode.includes("markers")) out.points = { show: true, size: (marker.size ?? 6), fill: stroke, stroke };
  return out;
}

// Everything that, when it changes, needs a new uPlot (cheap to compare; no data arrays in it).
function structureKey(figure, dark, ranges) {
  const traces = figure.data.map((t) => t && [roleOf(t), t.type, t.name, t.mode, t.visible, t.showlegend, t.opacity,
    t.fill, t.fillcolor, JSON.stringify(t.line || {}), t.marker && !isArray(t.marker.color) ? JSON.stringify(t.marker) : "",
    t.type === "bar" ? Array.from(t.x || []).join("|") : ""]);
  const { xaxis, yaxis, title, width, height } = figure.layout;
  return JSON.stringify([traces, xaxis, yaxis, title, width, height, dark, ranges]);
}

// A light plot in `host`: draw(figure, dark, ranges) as often as wanted; destroy() when done.
function lightPlot(uPlot, host) {
  let plot = null, key = null;
  let current = { figure: { data: [], layout: {} }, series: [], categories: [], dark: false };

  const destroy = () => {
    if (plot) plot.destroy();
    plot = null;
    key = null;
  };

  const draw = (figure, dark, ranges = {}) => {
    const layout = figure.layout || {};
    const x = axisOf(layout.xaxis, ranges.x), y = axisOf(layout.yaxis, ranges.y);
    const colors = (layout.colorway || []).length ? layout.colorway : PLOTLY_COLORS;
    const { tables, series, categories } = seriesOf(figure, colors, y.log);
    current = { figure, series, categories, dark, x, y };
    const data = joined(uPlot, tables);
    const newKey = structureKey(figure, dark, ranges);
    if (plot && newKey === key && plot.series.length === data.length) {
      plot.setData(data, true);
      return;
    }
    destroy();
    key = newKey;
    plot = new uPlot(options(uPlot, figure, series, categories, x, y, dark, () => current), data, host);
  };

  // Where a click at (clientX, clientY) lands in the plot's values: {x, y}, or null outside the plotting area.
  const valueAt = (clientX, clientY) => {
    if (!plot) return null;
    const box = plot.over.getBoundingClientRect();
    const left = clientX - box.left, top = clientY - box.top;
    if (left < 0 || top < 0 || left > box.width || top > box.height) return null;
    return { x: plot.posToVal(left, "x"), y: plot.posToVal(top, "y"), trace: -1 };
  };

  return { draw, destroy, valueAt };
}

const PLOTLY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

function options(uPlot, figure, series, categories, x, y, dark, now) {
  const layout = figure.layout;
  const ink = dark ? "#f2f5fa" : "#444444", grid = dark ? "#283442" : "#ebf0f8";
  const title = (layout.title && layout.title.text) || "";
  const axis = (label, visible, values, named) => ({
    show: visible, label, stroke: ink, font: FONT, labelFont: FONT, labelSize: 16, size: 44,
    grid: { stroke: grid, width: 1, show: !named }, ticks: { stroke: grid, width: 1, size: 4 }, ...(values ? { values } : {}),
    ...(named ? { splits: () => named.ticks, values: (u, splits) => splits.map((v, i) => (named.labels || [])[i] ?? String(v)) } : {}),
  });
  const scaleOf = (axis, bars) => ({
    auto: !axis.range, ...(axis.range ? { range: axis.range } : {}), ...(axis.log ? { distr: 3 } : {}),
    ...(bars ? { range: [-0.5, Math.max(0.5, categories.length - 0.5)] } : {}), time: false,
  });
  const bars = categories.length > 0;
  // A legend beside the plot takes its room from the plot, as plotly's does.
  const legendRoom = legendOutside(layout) ? legendWidth(legendEntries(series)) : 0;
  return {
    padding: [null, legendRoom ? legendRoom + 2 * LEGEND_PAD : null, null, null],
    width: layout.width || 460,
    height: (layout.height || 280) - (title ? TITLE_HEIGHT : 0),
    title,
    legend: { show: false },
    cursor: { show: false },
    select: { show: false },
    scales: { x: scaleOf(x, bars), y: scaleOf(y, false) },
    axes: [bars ? { ...axis(x.title, x.visible, (u, splits) => splits.map((v) => categories[v] ?? "")), rotate: -30, size: 64 }
      : axis(x.title, x.visible, null, x.ticks && x),
      axis(y.title, y.visible, y.log ? (u, splits) => splits.map(shortNumber) : null, y.ticks && y)],
    series: [{}, ...series.map((item) => uPlotSeries(uPlot, item))],
    bands: bandsOf(series),
    hooks: {
      drawClear: [(u) => drawHeatmaps(u, now())],
      draw: [(u) => {
        drawFreeLines(u, now());
        drawPoints(u, now());
        drawShapes(u, now());
        drawAnnotations(u, now());
        drawLegend(u, now());
      }],
    },
  };
}

// plotly's fill: "tonexty" (a band between a line and the one before it: a distribution's percentiles) as uPlot bands.
function bandsOf(series) {
  const bands = [];
  series.forEach(({ trace }, i) => {
    if (i > 0 && trace.fill === "tonexty") {
      bands.push({ series: [i + 1, i], fill: trace.fillcolor || withOpacity(series[i].color, 0.3) });
    }
  });
  return bands;
}

function shortNumber(value) {
  if (value === null) return "";
  const text = value.toPrecision(1);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? String(Number(text)) : Number(value).toExponential(0);
}

// Heatmaps: each cell one pixel of a small image, stretched over the cells' extent.
function drawHeatmaps(u, { figure }) {
  const ctx = u.ctx;
  for (const trace of figure.data) {
    if (!shown(trace) || trace.type !== "heatmap" || !trace.z || !trace.z.length) continue;
    const rows = trace.z.length, columns = trace.z[0].length;
    const image = new ImageData(columns, rows);
    const color = colorScale(trace.colorscale, trace.zmin ?? 0, trace.zmax ?? 1);
    const alpha = Math.round(255 * (trace.opacity ?? 1));
    for (let r = 0; r < rows; r++) {
      const row = trace.z[r];
      for (let c = 0; c < columns; c++) {
        const at = 4 * ((rows - 1 - r) * columns + c); // row 0 is the bottom of the plot
        const value = row[c];
        if (value === null || !Number.isFinite(value)) continue;
        const [red, green, blue] = color(value);
        image.data[at] = red;
        image.data[at + 1] = green;
        image.data[at + 2] = blue;
        image.data[at + 3] = alpha;
      }
    }
    const cells = new OffscreenCanvas(columns, rows);
    cells.getContext("2d").putImageData(image, 0, 0);
    const xs = trace.x || Array.from({ length: columns }, (_, i) => i);
    const ys = trace.y || Array.from({ length: rows }, (_, i) => i);
    const half = (values) => (values.length > 1 ? (values[1] - values[0]) / 2 : 0.5);
    const left = u.valToPos(xs[0] - half(xs), "x", true), right = u.valToPos(xs[xs.length - 1] + half(xs), "x", true);
    const bottom = u.valToPos(ys[0] - half(ys), "y", true), top = u.valToPos(ys[ys.length - 1] + half(ys), "y", true);
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cells, left, top, right - left, bottom - top);
    if (Array.isArray(trace.text)) drawCellTexts(u, trace, xs, ys, color);
    ctx.restore();
  }
}

// A heatmap's text per cell (a confusion matrix's counts), centred, dark or light against the cell's colour.
function drawCellTexts(u, trace, xs, ys, color) {
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  ctx.font = `${((trace.textfont && trace.textfont.size) || 10) * ratio}px 'Open Sans', verdana, arial, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  trace.text.forEach((row, r) => {
    (row || []).forEach((text, c) => {
      if (text === null || text === undefined || text === "") return;
      const value = trace.z[r] && trace.z[r][c];
      const [red, green, blue] = Number.isFinite(value) ? color(value) : [255, 255, 255];
      ctx.fillStyle = 0.299 * red + 0.587 * green + 0.114 * blue < 140 ? "#ffffff" : "#222222";
      ctx.fillText(String(text), u.valToPos(xs[c], "x", true), u.valToPos(ys[r], "y", true));
    });
  });
}

function drawFreeLines(u, { figure }) {
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  ctx.save();
  for (const trace of freeLinesOf(figure)) {
    const line = trace.line || {};
    ctx.strokeStyle = withOpacity(line.color || "#444444", trace.opacity);
    ctx.lineWidth = (line.width ?? 2) * ratio;
    ctx.beginPath();
    let pen = false; // NaN lifts the pen: the next point starts a new piece
    for (let i = 0; i < trace.x.length; i++) {
      const x = trace.x[i], y = trace.y[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        pen = false;
        continue;
      }
      const px = u.valToPos(x, "x", true), py = u.valToPos(y, "y", true);
      if (pen) ctx.lineTo(px, py);
      else ctx.moveTo(px, py);
      pen = true;
    }
    ctx.stroke();
  }
  ctx.restore();
}

// Points with a colour each (on the trace's colour scale), ringed as plotly rings them; an open symbol
// ("circle-open") is the ring alone.
function drawPoints(u, { figure }) {
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  for (const trace of pointsOf(figure)) {
    const marker = trace.marker;
    const color = colorScale(marker.colorscale, marker.cmin ?? 0, marker.cmax ?? 1);
    const radius = ((marker.size ?? 6) / 2) * ratio;
    const ring = marker.line || {};
    const open = String(marker.symbol || "").endsWith("-open"); // a ring in the point's colour, nothing inside
    ctx.save();
    ctx.lineWidth = (ring.width ?? (open ? 2 : 0)) * ratio;
    ctx.strokeStyle = ring.color || "white";
    for (let i = 0; i < trace.x.length; i++) {
      const [r, g, b] = color(marker.color[i]);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      if (open) ctx.strokeStyle = ctx.fillStyle;
      ctx.beginPath();
      ctx.arc(u.valToPos(trace.x[i], "x", true), u.valToPos(trace.y[i], "y", true), radius, 0, 2 * Math.PI);
      if (!open) ctx.fill();
      if (ctx.lineWidth) ctx.stroke();
    }
    ctx.restore();
  }
}

// Where a shape's or annotation's coordinate lands, in canvas pixels ("paper"/"domain": 0..1 of the plot).
function position(u, value, ref, scale, log, isAnnotation) {
  const { left, top, width, height } = u.bbox;
  if (ref === "paper" || (ref && ref.endsWith("domain"))) {
    return scale === "x" ? left + value * width : top + (1 - value) * height;
  }
  const v = isAnnotation && log ? 10 ** value : value; // plotly places annotations on log axes by log10
  return u.valToPos(v, scale, true);
}

function drawShapes(u, { figure, x, y }) {
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  ctx.save();
  ctx.beginPath();
  ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
  ctx.clip();
  for (const shape of figure.layout.shapes || []) {
    if (shape.type !== "line") continue;
    const line = shape.line || {};
    ctx.strokeStyle = line.color || "#7f7f7f";
    ctx.lineWidth = (line.width ?? 1) * ratio;
    ctx.setLineDash((DASHES[line.dash] || []).map((d) => d * ratio));
    ctx.beginPath();
    ctx.moveTo(position(u, shape.x0, shape.xref, "x", x.log), position(u, shape.y0, shape.yref, "y", y.log));
    ctx.lineTo(position(u, shape.x1, shape.xref, "x", x.log), position(u, shape.y1, shape.yref, "y", y.log));
    ctx.stroke();
  }
  ctx.restore();
}

function drawAnnotations(u, { figure, x, y, dark }) {
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  ctx.save();
  for (const note of figure.layout.annotations || []) {
    if (!note.text) continue;
    const size = ((note.font && note.font.size) || 12) * ratio;
    ctx.font = `${size}px 'Open Sans', verdana, arial, sans-serif`;
    ctx.fillStyle = (note.font && note.font.color) || (dark ? "#f2f5fa" : "#444444");
    ctx.textAlign = { left: "left", right: "right" }[note.xanchor] || "center";
    ctx.textBaseline = { top: "top", bottom: "bottom" }[note.yanchor] || "middle";
    const px = position(u, note.x ?? 0.5, note.xref, "x", x.log, true);
    const py = position(u, note.y ?? 0.5, note.yref, "y", y.log, true);
    String(note.text).split("<br>").forEach((text, i) => ctx.fillText(text.replace(/<[^>]+>/g, ""), px, py + i * size * 1.2));
  }
  ctx.restore();
}

// The traces the legend names (plotly shows one only for two traces or more, unless asked).
function legendEntries(series) {
  const entries = series.filter(({ trace }) => trace.showlegend !== false && trace.name);
  return entries.length >= 2 || (entries.length === 1 && entries[0].trace.showlegend === true) ? entries : [];
}

// Whether the layout puts the legend outside the plot, on its right (plot_style.LEGEND), as plotly does.
const legendOutside = (layout) => ((layout.legend || {}).x ?? 1) >= 1 && (layout.legend || {}).xanchor !== "right";

const LEGEND_SAMPLE = 18, LEGEND_PAD = 4, LEGEND_ROW = 14, LEGEND_FONT = "10px 'Open Sans', verdana, arial, sans-serif";

// The legend's width in CSS pixels: a line sample and the longest name.
function legendWidth(entries) {
  if (!entries.length) return 0;
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = LEGEND_FONT;
  return Math.max(...entries.map(({ trace }) => ctx.measureText(trace.name).width)) + LEGEND_SAMPLE + 3 * LEGEND_PAD;
}

// The legend, as plotly draws it: beside the plot on its right (the plot narrowed to make room), or
// in its top right corner; a line sample and a name per trace.
function drawLegend(u, { figure, series, dark }) {
  const entries = legendEntries(series);
  if (!entries.length) return;
  const ctx = u.ctx, ratio = devicePixelRatio || 1;
  const row = LEGEND_ROW * ratio, sample = LEGEND_SAMPLE * ratio, pad = LEGEND_PAD * ratio;
  const width = legendWidth(entries) * ratio;
  const outside = legendOutside(figure.layout);
  const left = outside ? u.bbox.left + u.bbox.width + 2 * pad : u.bbox.left + u.bbox.width - width;
  const top = u.bbox.top;
  ctx.save();
  ctx.font = LEGEND_FONT.replace("10px", `${10 * ratio}px`);
  if (!outside) {
    ctx.fillStyle = dark ? "rgba(17,17,17,0.7)" : "rgba(255,255,255,0.6)";
    ctx.fillRect(left, top, width, entries.length * row + pad);
  }
  ctx.textBaseline = "middle";
  ctx.textAlign = "left"; // uPlot leaves its axis labels' alignment behind
  entries.forEach(({ trace, color }, i) => {
    const middle = top + pad / 2 + (i + 0.5) * row;
    ctx.strokeStyle = withOpacity(color, trace.opacity);
    ctx.lineWidth = 2 * ratio;
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo(left + pad, middle);
    ctx.lineTo(left + pad + sample, middle);
    ctx.stroke();
    ctx.fillStyle = dark ? "#f2f5fa" : "#444444";
    ctx.fillText(trace.name, left + 2 * pad + sample, middle);
  });
  ctx.restore();
}
