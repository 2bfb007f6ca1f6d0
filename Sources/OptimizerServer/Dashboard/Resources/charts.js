// optimizerd dashboard charts: one <figure> per chart spec, drawn as hand-written SVG (no library,
// nothing loaded from elsewhere: the daemon's Content-Security-Policy allows this origin only, and no
// inline script or style), with a hover readout, gaps at missing values, red marks at skipped steps
// and a linear/log toggle. chart-specs.js builds the specs and dashboard.js lays the figures out,
// both through window.OptimizerdCharts; index.html loads this file first.
"use strict";

window.OptimizerdCharts = (function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE_SIZE = 8;
  const MARGIN = { left: 58, right: 12, top: 10, bottom: 26 };

  /// Chart key → log y axis; kept across redraws and re-renders of the same chart.
  const logAxes = {};

  /// A <figure> for `spec` ({key, title, series: [{name, value(record)}], logToggle?, small?, layer?})
  /// over `records`, with a `draw()` method to call once it is in the document (and on resize).
  function chartFigure(spec, records) {
    const figure = document.createElement("figure");
    figure.className = "chart" + (spec.small ? " small" : "");
    figure.dataset.chart = spec.key;
    if (spec.layer) figure.dataset.layer = spec.layer;
    const caption = document.createElement("figcaption");
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = spec.title;
    const readout = document.createElement("span");
    readout.className = "readout";
    caption.append(title, readout);
    if (spec.logToggle) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "toggle secondary";
      toggle.textContent = logAxes[spec.key] ? "linear" : "log";
      toggle.title = "switch the y axis between linear and logarithmic";
      toggle.addEventListener("click", () => {
        logAxes[spec.key] = !logAxes[spec.key];
        toggle.textContent = logAxes[spec.key] ? "linear" : "log";
        figure.draw();
      });
      caption.append(toggle);
    }
    figure.append(caption);
    const steps = records.map((r) => r.step);
    // A skipped step changed nothing: only its loss is an observation; the other charts show a gap.
    const keep = (r) => spec.key === "loss" || !r.skipped;
    const columns = spec.series.map((s) => records.map((r) => (keep(r) ? finite(s.value(r)) : null)));
    const skipped = records.filter((r) => r.skipped).map((r) => r.step);
    const counts = columns.map((values) => values.filter((v) => v != null).length);
    figure.dataset.points = String(counts[0]);
    figure.dataset.series = String(spec.series.length);
    figure.dataset.skipped = String(skipped.length);
    figure.dataset.firstStep = String(steps[0]);
    figure.dataset.lastStep = String(steps[steps.length - 1]);
    const lastIndex = lastFiniteIndex(columns[0]);
    if (lastIndex >= 0) figure.dataset.last = String(columns[0][lastIndex]);
    const defaultReadout = () => {
      if (lastIndex < 0) return "no values";
      const values = spec.series.map((s, k) => (spec.series.length > 1 ? s.name + " " : "") + valueText(columns[k][lastIndex]));
      return "step " + integer(steps[lastIndex]) + ": " + values.join(", ");
    };
    readout.textContent = defaultReadout();
    figure.draw = () => {
      const width = Math.max(260, Math.floor(figure.clientWidth || 480));
      const height = spec.small ? 150 : 200;
      const svg = drawChart({ spec, steps, columns, skipped, width, height, log: !!logAxes[spec.key] });
      const old = figure.querySelector("svg");
      if (old) old.replaceWith(svg);
      else figure.append(svg);
      attachHover(svg, { spec, steps, columns, readout, defaultReadout });
      if (spec.series.length > 1) {
        let legend = figure.querySelector(".legend");
        if (!legend) {
          legend = document.createElement("div");
          legend.className = "legend";
          legend.append(
            ...spec.series.map((s, k) => {
              const item = document.createElement("span");
              item.className = "key s" + (k % PALETTE_SIZE);
              item.textContent = s.name;
              return item;
            })
          );
          figure.append(legend);
        }
      }
    };
    return figure;
  }

  function drawChart({ spec, steps, columns, skipped, width, height, log }) {
    const svg = svgElement("svg", { viewBox: "0 0 " + width + " " + height, width, height, class: "plot", role: "img" });
    svg.setAttribute("aria-label", spec.title + " over steps " + steps[0] + " to " + steps[steps.length - 1]);
    const plot = { x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };

    let values = columns.flat().filter((v) => v != null);
    if (log) values = values.filter((v) => v > 0);
    const yScale = log ? logScale(values, plot) : linearScale(values, plot);
    const xScale = stepScale(steps[0], steps[steps.length - 1], plot);
    const toY = (v) => (v == null || (log && v <= 0) ? null : yScale.map(v));

    const grid = svgElement("g", { class: "grid" });
    const axis = svgElement("g", { class: "axis" });
    for (const t of yScale.ticks) {
      const y = yScale.map(t);
      grid.append(svgElement("line", { x1: plot.x0, x2: plot.x1, y1: y, y2: y }));
      axis.append(svgText(plot.x0 - 6, y + 4, tickText(t), "tick y"));
    }
    for (const t of xScale.ticks) {
      const x = xScale.map(t);
      grid.append(svgElement("line", { x1: x, x2: x, y1: plot.y0, y2: plot.y1, class: "vertical" }));
      axis.append(svgText(x, plot.y0 + 17, integer(t), "tick x"));
    }
    axis.append(svgElement("line", { x1: plot.x0, x2: plot.x1, y1: plot.y0, y2: plot.y0, class: "baseline" }));
    svg.append(grid, axis);

    if (skipped.length) {
      const marks = svgElement("g", { class: "skips" });
      for (const step of skipped) {
        const x = xScale.map(step);
        const mark = svgElement("line", { x1: x, x2: x, y1: plot.y0, y2: plot.y1, class: "skip" });
        mark.dataset.step = String(step);
        const tip = svgElement("title", {});
        tip.textContent = "step " + step + " skipped (non-finite gradient)";
        mark.append(tip);
        marks.append(mark);
      }
      svg.append(marks);
    }

    columns.forEach((column, k) => {
      const points = [];
      for (let i = 0; i < steps.length; i++) points.push([xScale.map(steps[i]), toY(column[i])]);
      const path = svgElement("path", { d: pathData(points, plot.x1 - plot.x0), class: "series s" + (k % PALETTE_SIZE) });
      path.dataset.series = spec.series[k].name;
      path.dataset.points = String(points.filter((p) => p[1] != null).length);
      svg.append(path);
      const drawn = points.filter((p) => p[1] != null);
      if (drawn.length <= 60) {
        const dots = svgElement("g", { class: "dots s" + (k % PALETTE_SIZE) });
        for (const [x, y] of drawn) dots.append(svgElement("circle", { cx: x, cy: y, r: 2.5 }));
        svg.append(dots);
      }
    });

    const cursor = svgElement("line", { x1: 0, x2: 0, y1: plot.y0, y2: plot.y1, class: "cursor", visibility: "hidden" });
    const hover = svgElement("rect", { x: plot.x0, y: plot.y1, width: plot.x1 - plot.x0, height: plot.y0 - plot.y1, class: "hover" });
    svg.append(cursor, hover);
    svg.xScale = xScale;
    return svg;
  }

  function attachHover(svg, { spec, steps, columns, readout, defaultReadout }) {
    const hover = svg.querySelector("rect.hover");
    const cursor = svg.querySelector("line.cursor");
    hover.addEventListener("pointermove", (event) => {
      const box = svg.getBoundingClientRect();
      const x = ((event.clientX - box.left) * svg.viewBox.baseVal.width) / box.width;
      const i = nearestIndex(steps, svg.xScale.invert(x));
      const cx = svg.xScale.map(steps[i]);
      cursor.setAttribute("x1", cx);
      cursor.setAttribute("x2", cx);
      cursor.setAttribute("visibility", "visible");
      const values = spec.series.map((s, k) => (spec.series.length > 1 ? s.name + " " : "") + valueText(columns[k][i]));
      readout.textContent = "step " + integer(steps[i]) + ": " + values.join(", ");
    });
    hover.addEventListener("pointerleave", () => {
      cursor.setAttribute("visibility", "hidden");
      readout.textContent = defaultReadout();
    });
  }

  /// Path data with gaps at missing values; columns of many points per pixel keep their
  /// first, lowest, highest and last point, so spikes survive.
  function pathData(points, pixels) {
    let d = "";
    let pen = false;
    const emit = (x, y) => {
      d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      pen = true;
    };
    if (points.length <= pixels * 2) {
      for (const [x, y] of points) {
        if (y == null) pen = false;
        else emit(x, y);
      }
      return d;
    }
    let bucket = [];
    let column = null;
    const flush = () => {
      if (!bucket.length) return;
      let low = bucket[0];
      let high = bucket[0];
      for (const p of bucket) {
        if (p[1] > low[1]) low = p; // SVG y grows downwards
        if (p[1] < high[1]) high = p;
      }
      const keep = [bucket[0], low, high, bucket[bucket.length - 1]].sort((a, b) => a[0] - b[0]);
      let previous = null;
      for (const p of keep) {
        if (p !== previous) emit(p[0], p[1]);
        previous = p;
      }
      bucket = [];
    };
    for (const p of points) {
      if (p[1] == null) {
        flush();
        pen = false;
        continue;
      }
      const c = Math.round(p[0]);
      if (c !== column) {
        flush();
        column = c;
      }
      bucket.push(p);
    }
    flush();
    return d;
  }

  // MARK: scales

  function stepScale(first, last, plot) {
    let lo = first;
    let hi = last;
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const span = plot.x1 - plot.x0;
    const map = (s) => plot.x0 + ((s - lo) / (hi - lo)) * span;
    const invert = (x) => lo + ((x - plot.x0) / span) * (hi - lo);
    const count = Math.max(2, Math.floor(span / 80));
    const step = Math.max(1, niceStep((hi - lo) / count));
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) if (t >= first && t <= last) ticks.push(t);
    if (!ticks.length) ticks.push(first);
    return { map, invert, ticks };
  }

  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return [lo, hi];
  }

  function linearScale(values, plot) {
    let [lo, hi] = values.length ? extent(values) : [0, 1];
    if (lo === hi) {
      const pad = Math.abs(lo) * 0.1 || 1;
      lo -= pad;
      hi += pad;
    }
    const step = niceStep((hi - lo) / 4);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
    const map = (v) => plot.y0 - ((v - lo) / (hi - lo)) * (plot.y0 - plot.y1);
    return { map, ticks };
  }

  function logScale(values, plot) {
    if (!values.length) return linearScale(values, plot);
    const [min, max] = extent(values);
    let lo = Math.floor(Math.log10(min));
    let hi = Math.ceil(Math.log10(max));
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const stride = Math.max(1, Math.ceil((hi - lo) / 6));
    const ticks = [];
    for (let e = lo; e <= hi; e += stride) ticks.push(Math.pow(10, e));
    const map = (v) => plot.y0 - ((Math.log10(v) - lo) / (hi - lo)) * (plot.y0 - plot.y1);
    return { map, ticks };
  }

  function niceStep(raw) {
    if (!(raw > 0) || !isFinite(raw)) return 1;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / magnitude;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * magnitude;
  }

  // MARK: small helpers

  function svgElement(name, attributes) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    return element;
  }

  function svgText(x, y, text, className) {
    const element = svgElement("text", { x, y, class: className });
    element.textContent = text;
    return element;
  }

  function nearestIndex(sorted, target) {
    let lo = 0;
    let hi = sorted.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < target) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && Math.abs(sorted[lo - 1] - target) <= Math.abs(sorted[lo] - target)) return lo - 1;
    return lo;
  }

  function lastFiniteIndex(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return i;
    return -1;
  }

  // MARK: numbers (dashboard.js uses finite, integer and precise too)

  /// Numbers only; the daemon writes NaN and ±Infinity as strings.
  function finite(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function integer(value) {
    return value == null ? "—" : Number(value).toLocaleString("en-US");
  }

  function precise(value) {
    const v = finite(value);
    if (v == null) return String(value);
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e6 || a < 1e-4 ? v.toExponential(4) : String(Number(v.toPrecision(6)));
  }

  function valueText(value) {
    return value == null ? "—" : precise(value);
  }

  function tickText(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
    return String(Number(v.toPrecision(3)));
  }

  return Object.freeze({ chartFigure, finite, integer, precise });
})();
