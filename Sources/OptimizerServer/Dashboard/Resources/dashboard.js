// optimizerd dashboard: lists the sessions and charts the selected session's step history
// (GET /v1/sessions, /v1/sessions/{id}, /v1/sessions/{id}/history?since=N), polling every 2 s
// while the tab is visible.
//
// The token is typed into the page once and kept in sessionStorage: it survives reloads of this
// tab but not closing it, and other tabs and windows never see it (localStorage would keep an
// admin token on disk indefinitely and share it with every tab). It is sent only as
// "Authorization: Bearer" on fetch, never in a URL.
//
// Charts are hand-written SVG; no library, nothing loaded from elsewhere (the daemon's
// Content-Security-Policy allows this origin only, and no inline script or style).
"use strict";

(function () {
  const POLL_MS = 2000;
  const PAGE_LIMIT = 5000;
  const SUMMARY_EVERY = 5; // polls between summary refreshes when nothing stepped
  const TOKEN_KEY = "optimizerd.token";
  const SESSION_KEY = "optimizerd.session";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE_SIZE = 8;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    // The session to show: from the URL's #session=ID, else the one shown last in this tab.
    wanted: sessionFromHash() || sessionStorage.getItem(SESSION_KEY) || "",
    mode: "none", // "list": GET /v1/sessions works; "single": one session's token, no list
    sessions: [],
    view: null, // the selected session: {id, records, lastStep, summary, ...}
    timer: null,
    busy: false,
    again: false,
    logScale: {}, // chart key → log y axis
    lastError: null,
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  // MARK: API

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store", credentials: "omit", redirect: "error" });
    } catch (error) {
      throw new ApiError(0, "the daemon does not answer (" + error.message + ")");
    }
    if (!response.ok) {
      let detail = response.statusText || "HTTP " + response.status;
      try {
        const body = await response.json();
        if (body && body.detail) detail = body.detail;
      } catch (_) {
        // not problem+json
      }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  const sessionPath = (id) => "/v1/sessions/" + encodeURIComponent(id);

  // MARK: refresh loop

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, POLL_MS);
  }

  function tick() {
    if (document.visibilityState !== "visible") {
      setStatus("paused", "paused while the tab is hidden");
      return; // visibilitychange starts again
    }
    refresh();
  }

  async function refresh() {
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    try {
      await refreshSessions();
      await refreshView();
      if (!state.lastError) setStatus("live", "live · updated " + new Date().toLocaleTimeString());
    } catch (error) {
      reportError(error);
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  /// The list (admin token, or a daemon without one), else the single session the token opens.
  async function refreshSessions() {
    state.lastError = null;
    try {
      const list = await api("/v1/sessions");
      state.mode = "list";
      state.sessions = list.sessions || [];
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) throw error;
      if (state.token && state.wanted) {
        state.mode = "single";
        state.sessions = state.view && state.view.summary ? [entryFromSummary(state.view.summary)] : [];
      } else {
        state.mode = "none";
        state.sessions = [];
        state.view = null;
        state.lastError = error;
        if (error.status === 401 && !state.token) {
          // The first visit: nothing went wrong yet, the page just needs a token.
          showLogin("", "This daemon has an admin token. Enter it to see every session, or a session's token and its id to see that session.");
          setStatus("idle", "enter a token");
        } else if (error.status === 401) {
          showLogin("401: the daemon did not accept the token. Enter the admin token, or a session's token and its id.");
          setStatus("error", "401: the token was not accepted");
        } else {
          showLogin("This token cannot list sessions: it is not the admin token. If it is a session's token, enter that session's id too.");
          setStatus("error", "403: the token cannot list sessions");
        }
      }
    }
    if (state.mode === "list" && !state.token) {
      setHint("Sessions are listed without a token on this daemon. To see a session's charts, enter its token (or the admin token).");
    }
    const ids = state.sessions.map((s) => s.id);
    if (state.view && state.mode === "list" && !ids.includes(state.view.id)) {
      showMessage("info", "Session " + state.view.id + " no longer exists.");
      state.view = null;
    }
    if (!state.view && state.mode !== "none") {
      const id = ids.includes(state.wanted) ? state.wanted : state.mode === "single" ? state.wanted : pickDefault();
      if (id) select(id, false);
    }
    document.body.dataset.mode = state.mode;
    renderSessions();
  }

  function pickDefault() {
    const stepped = state.sessions.filter((s) => s.step > 0);
    const pool = stepped.length ? stepped : state.sessions;
    return pool.length ? pool[pool.length - 1].id : "";
  }

  /// New history records since the last one seen, and the summary now and then.
  async function refreshView() {
    const view = state.view;
    if (!view || view.blocked) return;
    let changed = false;
    try {
      for (let pages = 0; pages < 50; pages++) {
        const page = await api(sessionPath(view.id) + "/history?since=" + view.lastStep + "&limit=" + PAGE_LIMIT);
        if (state.view !== view) return;
        if (page.step < view.lastStep) {
          // The session went back (a checkpoint was restored): start over.
          view.records = [];
          view.lastStep = 0;
          changed = true;
          continue;
        }
        view.step = page.step;
        view.capacity = page.capacity;
        view.oldestStep = page.oldest_step;
        if (page.records.length) {
          view.records.push(...page.records);
          view.lastStep = page.records[page.records.length - 1].step;
          changed = true;
        }
        if (page.records.length < PAGE_LIMIT) break;
      }
      if (view.oldestStep != null && view.records.length && view.records[0].step < view.oldestStep) {
        view.records = view.records.filter((r) => r.step >= view.oldestStep); // keep the daemon's window
      }
      if (changed || !view.summary || ++view.summaryAge >= SUMMARY_EVERY) {
        const summary = await api(sessionPath(view.id));
        if (state.view !== view) return;
        view.summary = summary;
        view.summaryAge = 0;
        if (state.mode === "single") state.sessions = [entryFromSummary(summary)];
        renderSessions();
      }
    } catch (error) {
      if (state.view !== view) return;
      if (error.status === 401) {
        view.blocked = true;
        const hint = "The charts of session " + label(view) + " need its token (or the admin token).";
        state.lastError = error;
        if (state.token) {
          showLogin("401: " + hint, hint);
          setStatus("error", "401: a token is needed");
        } else {
          showLogin("", hint); // a daemon without an admin token lists sessions openly: not an error yet
          setStatus("idle", "enter a session's token");
        }
        renderView();
        return;
      }
      if (error.status === 403) {
        view.blocked = true;
        showLogin("This token is not valid for session " + label(view) + ": enter that session's token or the admin token.");
        state.lastError = error;
        setStatus("error", "403: the token is not valid for this session");
        renderView();
        return;
      }
      if (error.status === 404) {
        showMessage("error", "Session " + view.id + " does not exist (deleted, or a wrong id).");
        state.lastError = error;
        setStatus("error", "404: no such session");
        state.view = null;
        if (state.wanted === view.id) state.wanted = "";
        renderView();
        return;
      }
      throw error;
    }
    if (!state.lastError) clearMessage();
    if (changed || !view.rendered) renderView();
    else renderFacts(view);
  }

  function reportError(error) {
    state.lastError = error;
    if (error.status === 0) {
      setStatus("error", "daemon unreachable, retrying");
      showMessage("error", "The daemon does not answer; retrying every few seconds.");
    } else {
      setStatus("error", "error " + error.status);
      showMessage("error", "HTTP " + error.status + ": " + error.detail);
    }
  }

  // MARK: actions

  function select(id, refreshNow = true) {
    if (state.view && state.view.id === id && !state.view.blocked) return;
    state.view = {
      id,
      records: [],
      lastStep: 0,
      summary: null,
      summaryAge: 0,
      step: 0,
      capacity: null,
      oldestStep: null,
      blocked: false,
      rendered: false,
    };
    state.wanted = id;
    sessionStorage.setItem(SESSION_KEY, id);
    history.replaceState(null, "", "#session=" + encodeURIComponent(id));
    $("charts").replaceChildren();
    renderSessions();
    renderView();
    if (refreshNow) refresh();
  }

  function connectWith(token, id) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    if (id) {
      state.wanted = id;
      sessionStorage.setItem(SESSION_KEY, id);
    }
    state.view = null;
    state.sessions = [];
    clearMessage(true);
    renderAuth();
    setStatus("loading", "connecting…");
    refresh();
  }

  function onLogin(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    const id = $("session-id").value.trim();
    $("token").value = ""; // the page keeps it in sessionStorage, not in the form
    if (!token) {
      showMessage("error", "Enter a token.");
      return;
    }
    $("login").hidden = true;
    connectWith(token, id);
  }

  function forget() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(SESSION_KEY);
    state.wanted = "";
    $("session-id").value = "";
    connectWith("", "");
    $("login").hidden = false;
  }

  // MARK: rendering: header, messages

  function setStatus(kind, text) {
    const status = $("status");
    status.dataset.state = kind;
    status.textContent = text;
  }

  function showMessage(kind, text) {
    const box = $("message");
    box.className = "message " + kind;
    box.textContent = text;
    box.hidden = false;
  }

  /// Clears an error message; an informational one stays until the next connect.
  function clearMessage(all = false) {
    const box = $("message");
    if (all || box.classList.contains("error")) box.hidden = true;
  }

  function setHint(text) {
    $("login-hint").textContent = text;
  }

  /// Shows the token form with `problem` as an error message (none when empty) and `hint` in the form.
  function showLogin(problem, hint = "Enter the admin token to see every session, or a session's token and its id to see that session.") {
    setHint(hint);
    $("login").hidden = false;
    if (state.view) $("session-id").value = state.view.id;
    else if (state.wanted) $("session-id").value = state.wanted;
    if (problem) showMessage("error", problem);
    else clearMessage(true);
  }

  function renderAuth() {
    $("auth-summary").textContent = state.token ? "token set for this tab" : "no token";
    $("forget").hidden = !state.token;
    $("change-token").hidden = !state.token;
    if (!state.token) $("login").hidden = false;
  }

  // MARK: rendering: session list

  function entryFromSummary(summary) {
    return {
      id: summary.id,
      name: summary.name,
      optimizer: summary.optimizer,
      step: summary.step,
      durable_step: summary.durable_step,
      parameter_count: summary.parameter_count,
      last_step: summary.last_step,
    };
  }

  function label(view) {
    const name = view.summary && view.summary.name;
    return name ? "“" + name + "” (" + view.id + ")" : view.id;
  }

  function renderSessions() {
    const section = $("sessions");
    section.hidden = state.mode === "none";
    $("session-count").textContent = state.mode === "single" ? "(this token's session)" : "(" + state.sessions.length + ")";
    $("no-sessions").hidden = state.sessions.length > 0;
    const rows = state.sessions.map((entry) => {
      const row = document.createElement("tr");
      row.dataset.sessionId = entry.id;
      if (state.view && state.view.id === entry.id) row.classList.add("selected");
      const nameCell = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = entry.name || entry.id.slice(0, 8);
      button.addEventListener("click", () => select(entry.id));
      const idLine = document.createElement("div");
      idLine.className = "id";
      idLine.textContent = entry.id;
      nameCell.append(button, idLine);
      const summary = state.view && state.view.id === entry.id ? state.view.summary : null;
      // The selected session's summary is read under its lock: fresher than the list's snapshot.
      const durable = summary && summary.durable_step != null ? summary.durable_step : entry.durable_step;
      const loss = entry.last_step ? entry.last_step.loss : null;
      row.append(
        nameCell,
        cell(entry.optimizer, "optimizer"),
        cell(integer(entry.step), "step", true),
        cell(durable == null ? "—" : integer(durable), "durable_step", true),
        cell(loss == null ? "—" : precise(loss), "last_loss", true),
        cell(integer(entry.parameter_count), "parameter_count", true)
      );
      return row;
    });
    $("session-list").tBodies[0].replaceChildren(...rows);
  }

  function cell(text, field, numeric) {
    const td = document.createElement("td");
    td.textContent = text == null ? "—" : String(text);
    td.dataset.field = field;
    if (numeric) td.className = "num";
    return td;
  }

  // MARK: rendering: the selected session

  function renderView() {
    const view = state.view;
    const detail = $("detail");
    if (!view) {
      detail.hidden = true;
      delete detail.dataset.sessionId;
      return;
    }
    detail.hidden = false;
    detail.dataset.sessionId = view.id;
    renderFacts(view);
    if (view.blocked) {
      $("charts").replaceChildren(note("No charts without a valid token for this session."));
      return;
    }
    renderCharts(view);
    view.rendered = view.summary != null;
  }

  function renderFacts(view) {
    const summary = view.summary;
    const name = summary && summary.name;
    $("detail-title").textContent = name ? name : "Session " + view.id.slice(0, 8);
    document.title = "optimizerd · " + (name || view.id.slice(0, 8));
    const records = view.records;
    const last = records.length ? records[records.length - 1] : null;
    const skipped = records.filter((r) => r.skipped).length;
    const facts = [
      ["id", "Session id", view.id],
      ["optimizer", "Optimizer", summary ? summary.optimizer : "…"],
      ["step", "Step", summary ? integer(Math.max(summary.step, view.step)) : integer(view.step)],
      ["durable_step", "Durable step", summary && summary.durable_step != null ? integer(summary.durable_step) : "—"],
      ["last_loss", "Last loss", last && finite(last.loss) != null ? precise(last.loss) : "—"],
      ["parameters", "Parameters", summary ? integer(summary.parameter_count) + " in " + plural((summary.parameters || []).length, "tensor") : "…"],
      ["state", "Optimizer state", summary && summary.state_dtype ? summary.state_dtype + " · " + integer(summary.state_bytes) + " bytes" : "…"],
      ["skipped", "Skipped steps", integer(skipped)],
      [
        "history",
        "History kept",
        records.length ? "steps " + integer(records[0].step) + "–" + integer(last.step) + (view.capacity ? " (last " + integer(view.capacity) + " kept)" : "") : "no steps yet",
      ],
    ];
    const list = $("detail-facts");
    list.replaceChildren(
      ...facts.map(([key, title, value]) => {
        const item = document.createElement("div");
        item.dataset.fact = key;
        const dt = document.createElement("dt");
        dt.textContent = title;
        const dd = document.createElement("dd");
        dd.textContent = value;
        item.append(dt, dd);
        return item;
      })
    );
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = text;
    return p;
  }

  /// What to chart for this session: the fixed charts, then clipping and MTAdam's when present.
  function chartSpecs(view) {
    const optimizer = view.summary ? view.summary.optimizer : "";
    const records = view.records;
    const momo = optimizer === "momo" || optimizer === "momo_adam";
    const lrTitle = momo
      ? "Adaptive step size τ (MoMo)"
      : optimizer === "adafactor"
        ? "Learning rate (relative step when lr is unset)"
        : "Learning rate";
    const specs = [
      { key: "loss", title: "Loss", series: [{ name: "loss", value: (r) => r.loss }], logToggle: true },
      { key: "lr", title: lrTitle, series: [{ name: momo ? "τ" : "lr", value: (r) => r.lr }] },
      { key: "grad_norm", title: "Gradient norm", series: [{ name: "‖g‖", value: (r) => r.grad_norm }], logToggle: true },
      { key: "update_norm", title: "Update norm", series: [{ name: "‖Δθ‖", value: (r) => r.update_norm }], logToggle: true },
    ];
    if (records.some((r) => finite(r.clip_coefficient) != null)) {
      specs.push({ key: "clip_coefficient", title: "Clip coefficient", series: [{ name: "clip", value: (r) => r.clip_coefficient }] });
    }
    const terms = records.reduce((n, r) => Math.max(n, (r.term_grad_norms || []).length), 0);
    if (terms > 0) {
      specs.push({
        key: "term_grad_norms",
        title: "Per-term gradient norms (MTAdam)",
        logToggle: true,
        series: range(terms).map((k) => ({ name: "term " + k, value: (r) => (r.term_grad_norms || [])[k] })),
      });
    }
    return specs;
  }

  /// MTAdam: one small chart per layer, one line per term.
  function termWeightSpecs(view) {
    const layers = new Set();
    let terms = 0;
    for (const r of view.records) {
      if (!r.term_weights) continue;
      for (const [layer, weights] of Object.entries(r.term_weights)) {
        layers.add(layer);
        terms = Math.max(terms, weights.length);
      }
    }
    return [...layers].sort().map((layer) => ({
      key: "term_weights:" + layer,
      layer,
      title: layer,
      small: true,
      series: range(terms).map((k) => ({
        name: "term " + k,
        value: (r) => (r.term_weights && r.term_weights[layer] ? r.term_weights[layer][k] : null),
      })),
    }));
  }

  function renderCharts(view) {
    const container = $("charts");
    if (!view.records.length) {
      container.replaceChildren(note(view.summary ? "No steps yet: the charts appear with the first step." : "Loading…"));
      container.dataset.points = "0";
      return;
    }
    const main = document.createElement("div");
    main.className = "chart-grid";
    const figures = chartSpecs(view).map((spec) => chartFigure(spec, view.records));
    main.append(...figures);
    const parts = [main];
    const layers = termWeightSpecs(view);
    if (layers.length) {
      const group = document.createElement("section");
      group.className = "chart-group";
      group.dataset.group = "term-weights";
      const heading = document.createElement("h3");
      heading.textContent = "MTAdam term weights per layer";
      const grid = document.createElement("div");
      grid.className = "chart-grid small";
      grid.append(...layers.map((spec) => chartFigure(spec, view.records)));
      group.append(heading, grid);
      parts.push(group);
    }
    container.replaceChildren(...parts);
    container.dataset.points = String(view.records.length);
    // Widths are known only once in the document: draw now.
    for (const figure of container.querySelectorAll("figure.chart")) figure.draw();
  }

  // MARK: charts

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
      toggle.textContent = state.logScale[spec.key] ? "linear" : "log";
      toggle.title = "switch the y axis between linear and logarithmic";
      toggle.addEventListener("click", () => {
        state.logScale[spec.key] = !state.logScale[spec.key];
        toggle.textContent = state.logScale[spec.key] ? "linear" : "log";
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
      const svg = drawChart({ spec, steps, columns, skipped, width, height, log: !!state.logScale[spec.key] });
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

  const MARGIN = { left: 58, right: 12, top: 10, bottom: 26 };

  function drawChart({ spec, steps, columns, skipped, width, height, log }) {
    const svg = svgElement("svg", { viewBox: "0 0 " + width + " " + height, width, height, class: "plot", role: "img" });
    svg.setAttribute("aria-label", spec.title + " over steps " + steps[0] + " to " + steps[steps.length - 1]);
    const plot = { x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };

    let values = columns.flat().filter((v) => v != null);
    if (log) values = values.filter((v) => v > 0);
    const yScale = log ? logScale(values, plot) : linearScale(values, plot);
    const xScale = stepScale(steps[0], steps[steps.length - 1], plot, width);
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

  /// Numbers only; the daemon writes NaN and ±Infinity as strings.
  function finite(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function range(n) {
    return Array.from({ length: n }, (_, i) => i);
  }

  function plural(count, noun) {
    return integer(count) + " " + noun + (count === 1 ? "" : "s");
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

  function sessionFromHash() {
    const match = /^#session=([^&]+)$/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // MARK: start

  function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("forget").addEventListener("click", forget);
    $("change-token").addEventListener("click", () => {
      $("login").hidden = false;
      $("token").focus();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") refresh();
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const figure of document.querySelectorAll("figure.chart")) figure.draw();
      }, 150);
    });
    if (state.wanted) $("session-id").value = state.wanted;
    renderAuth();
    if (state.token) $("login").hidden = true;
    setStatus("loading", "connecting…");
    refresh();
  }

  start();
})();
