// optimizerd dashboard: lists the sessions and charts the selected session's step history
// (GET /v1/sessions, /v1/sessions/{id}, /v1/sessions/{id}/history?since=N), polling every 2 s
// while the tab is visible.
//
// The token is typed into the page once and kept in sessionStorage: it survives reloads of this
// tab but not closing it, and other tabs and windows never see it (localStorage would keep an
// admin token on disk indefinitely and share it with every tab). It is sent only as
// "Authorization: Bearer" on fetch, never in a URL.
//
// Which charts a session gets comes from chart-specs.js (window.OptimizerdChartSpecs); charts.js
// (window.OptimizerdCharts) draws them. index.html loads both before this file.
"use strict";

(function () {
  const POLL_MS = 2000;
  const PAGE_LIMIT = 5000;
  const SUMMARY_EVERY = 5; // polls between summary refreshes when nothing stepped
  const TOKEN_KEY = "optimizerd.token";
  const SESSION_KEY = "optimizerd.session";

  const { chartFigure, finite, integer, precise } = window.OptimizerdCharts;
  const { chartSpecs, termWeightSpecs } = window.OptimizerdChartSpecs;
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
      ["snapshot", "Newest snapshot", snapshotFact(summary)],
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

  // The newest complete snapshot's step, or why the last background snapshot failed.
  function snapshotFact(summary) {
    if (!summary || summary.snapshot_step == null) return "—";
    const newest = "step " + integer(summary.snapshot_step);
    return summary.snapshot_problem ? newest + " · last snapshot failed: " + summary.snapshot_problem : newest;
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = text;
    return p;
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
    const optimizer = view.summary ? view.summary.optimizer : "";
    const figures = chartSpecs(optimizer, view.records).map((spec) => chartFigure(spec, view.records));
    main.append(...figures);
    const parts = [main];
    const layers = termWeightSpecs(view.records);
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

  // MARK: small helpers

  function plural(count, noun) {
    return integer(count) + " " + noun + (count === 1 ? "" : "s");
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
