// The dashboard page: pick a run, load its snapshot, then follow its event stream (server-sent
// events) so the graph, counters, board and the open agent stay live without reloading or polling.

import { clear, fmt, getJSON, h, throttle } from "./dom.js";
import { GraphView, ROLE_COLOURS, roleColour, STATUS_RING } from "./graph.js";
import { RunModel, TERMINAL } from "./model.js";
import { renderAgent, renderBanner, renderBoard, renderCounters, renderFindings, statusChip } from "./panels.js";

const $ = (id) => document.getElementById(id);
const els = {
  runs: $("runs"), refresh: $("refresh-runs"), runStatus: $("run-status"), live: $("live"), title: $("run-title"),
  nodeCount: $("node-count"), counters: $("counters"), board: $("board"), panel: $("agent-panel"),
  panelBody: $("agent-body"), tooltip: $("tooltip"), legend: $("legend"), fit: $("fit"), notice: $("notice"),
  reason: $("run-reason"), banner: $("banner"), findings: $("findings"), search: $("search"),
  role: $("filter-role"), state: $("filter-state"),
};
const state = {
  run: null, model: null, source: null, selected: null, selectToken: 0, boardFilter: "all",
  warnings: [], merged: null, detailTimer: null,
};
const WARNINGS_EVERY_MS = 10000; // queue consumers change without events: the run's detail is read again
const UNFINISHED = new Set(["failed", "stopped", "cancelled"]);
const RUN_ENDED = new Set(["completed", "partial", "failed", "cancelled"]);
const enc = encodeURIComponent;

const graph = new GraphView($("graph"), $("overlay"), { onSelect: (id) => select(id), onHover: tooltip });

// -- runs ------------------------------------------------------------------------------------------
async function loadRuns() {
  const { runs } = await getJSON("/api/runs");
  const current = state.run;
  clear(els.runs);
  if (!runs.length) els.runs.append(h("option", { value: "", text: "no runs yet" }));
  for (const r of runs) {
    const label = `${r.title || r.kind} · ${r.status} · ${fmt.ago(r.created)} · ${r.id}`;
    els.runs.append(h("option", { value: r.id, text: label, selected: r.id === current }));
  }
  return runs;
}

function wantedRun(runs) {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("run");
  if (fromHash) return fromHash;
  return runs.length ? runs[0].id : null;
}

function notice(text) {
  els.notice.textContent = text || "";
  els.notice.hidden = !text;
}

async function openRun(runId) {
  if (state.source) state.source.close();
  state.source = null;
  state.run = runId;
  state.warnings = [];
  state.merged = null;
  clearTimeout(state.detailTimer);
  closePanel();
  graph.reset();
  applyFilter();
  notice("");
  if (!runId) {
    notice("No runs yet: start one with `swarm review` or the Python API, then refresh.");
    return;
  }
  if (location.hash !== `#run=${runId}`) history.replaceState(null, "", `#run=${enc(runId)}`);
  els.runs.value = runId;
  const model = (state.model = new RunModel(runId));
  wire(model);
  try {
    // The run detail's cursor is read first, so following the stream from it can only repeat
    // what the snapshots below already hold (applied idempotently), never miss anything.
    const detail = await getJSON(`/api/runs/${enc(runId)}`);
    model.loadRun(detail);
    state.warnings = detail.warnings || [];
    const agents = new Map();
    let after = null;
    do {
      const page = await getJSON(`/api/runs/${enc(runId)}/agents${after ? `?after=${enc(after)}` : ""}`);
      for (const a of page.agents) agents.set(a.id, a);
      after = page.next;
    } while (after);
    const board = await getJSON(`/api/runs/${enc(runId)}/board`);
    if (state.model !== model) return; // another run was picked meanwhile
    graph.seedLayout(agents);
    model.loadAgents(agents.values());
    model.loadBoard(board);
    updateRun();
    follow(model, detail.cursor);
    loadFindings(model);
    scheduleDetail(model);
  } catch (err) {
    notice(`Cannot show run ${runId}: ${err.message}`);
  }
}

function follow(model, after) {
  const source = new EventSource(`/api/runs/${enc(model.runId)}/events?after=${enc(after)}`);
  state.source = source;
  source.onopen = () => setLive(true);
  source.onerror = () => setLive(false); // EventSource reconnects by itself, sending Last-Event-ID
  source.onmessage = (e) => {
    if (state.model !== model) return;
    const event = JSON.parse(e.data);
    event.id = e.lastEventId;
    model.lastEventId = e.lastEventId || model.lastEventId;
    if (event.type === "stream.gap") {
      openRun(model.runId); // events were trimmed before we saw them: start again from a snapshot
      return;
    }
    model.apply(event);
  };
}

function setLive(on) {
  els.live.className = on ? "live on" : "live";
  els.live.textContent = on ? "live" : "reconnecting";
}

// The run's detail again while it runs: its warnings (a queue nobody consumes) change without events.
function scheduleDetail(model) {
  clearTimeout(state.detailTimer);
  if (!model.run || RUN_ENDED.has(model.run.status)) {
    state.warnings = [];
    drawBanner();
    return;
  }
  state.detailTimer = setTimeout(async () => {
    if (state.model !== model) return;
    try {
      const detail = await getJSON(`/api/runs/${enc(model.runId)}`);
      if (state.model !== model) return;
      state.warnings = detail.warnings || [];
      Object.assign(model.run, { outcome: detail.run.outcome, result: detail.run.result, reason: detail.run.reason });
      drawBanner();
    } catch { /* the next try says it */ }
    scheduleDetail(model);
  }, WARNINGS_EVERY_MS);
}

// Merged findings once the report is written (they are fetched then); raw ones from the events before.
async function loadFindings(model) {
  const run = model.run;
  const ended = run && RUN_ENDED.has(run.status);
  if (!ended) {
    drawFindings();
    return;
  }
  try {
    const view = await getJSON(`/api/runs/${enc(model.runId)}/findings`);
    if (state.model === model) {
      state.merged = view.merged ? view : null;
      drawFindings();
    }
  } catch { /* shown as raw */ }
}

const drawFindings = throttle(() => {
  const model = state.model;
  if (!model) return;
  const view = state.merged || { merged: false, total: model.rawFindings.length, findings: rawSorted(model) };
  renderFindings(els.findings, view, { onSelect: (id) => select(id), reportBase: `/api/runs/${enc(model.runId)}`,
    nameOf: (id) => (model.agents.get(id) || {}).spec || id });
}, 500);

const RANK = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };
function rawSorted(model) {
  return [...model.rawFindings].sort((a, b) => (RANK[a.severity] ?? 5) - (RANK[b.severity] ?? 5));
}

function drawBanner() {
  const model = state.model;
  renderBanner(els.banner, model && model.run, state.warnings, model ? model.counters() : null, {
    onShowFailed: () => { els.state.value = "failed"; applyFilter(); },
  });
}

// Search and filters: the graph dims every node they leave out.
function applyFilter() {
  const text = els.search.value.trim().toLowerCase();
  const role = els.role.value;
  const st = els.state.value;
  if (!text && !role && !st) {
    graph.setFilter(null);
    return;
  }
  graph.setFilter((n) => (!role || n.role === role)
    && (!st || (st === "active" ? !TERMINAL.has(n.status) : n.status === st))
    && (!text || `${n.label || ""} ${n.spec} ${n.id}`.toLowerCase().includes(text)));
}

function fillRoles(roles) {
  const have = new Set([...els.role.options].map((o) => o.value));
  for (const r of roles) if (!have.has(r.role)) els.role.append(h("option", { value: r.role, text: r.role }));
}

// -- model -> views ---------------------------------------------------------------------------------
const drawCounters = throttle(() => {
  if (!state.model) return;
  const counters = state.model.counters();
  renderCounters(els.counters, counters, state.model.run);
  els.nodeCount.textContent = `${fmt.int(counters.total)} agents`;
  els.nodeCount.dataset.count = String(counters.total);
  renderLegend(counters.roles);
  fillRoles(counters.roles);
  drawBanner();
}, 250);
const drawBoard = throttle(() => {
  if (state.model) {
    renderBoard(els.board, state.model.tasks, state.boardFilter, (f) => { state.boardFilter = f; drawBoard(); },
      state.model.run);
  }
}, 400);
const refreshPanel = throttle(() => state.selected && select(state.selected, { keepScroll: true }), 1000);

function wire(model) {
  model.on("agent", (agent, change) => {
    if (change === "new") graph.add(agent);
    else graph.update(agent);
    drawCounters();
    if (agent.id === state.selected) refreshPanel();
  });
  model.on("activity", (agent) => {
    graph.pulse(agent.id);
    if (agent.id === state.selected) refreshPanel();
  });
  model.on("task", () => {
    drawBoard();
    drawCounters();
  });
  model.on("any", (event) => {
    drawCounters(); // findings and anything else counted: throttled, so cheap
    if (event.type === "finding" && !state.merged) drawFindings();
  });
  model.on("run", () => {
    updateRun();
    loadRuns().catch(() => {}); // the selector shows each run's status too
    if (model.run && RUN_ENDED.has(model.run.status)) {
      // its end: the outcome, reason and result (merged counts) are on the record now
      getJSON(`/api/runs/${enc(model.runId)}`).then((detail) => {
        if (state.model !== model) return;
        Object.assign(model.run, detail.run);
        updateRun();
        loadFindings(model);
        scheduleDetail(model);
      }).catch(() => {});
    } else {
      state.merged = null;
      scheduleDetail(model);
    }
  });
}

function updateRun() {
  const run = state.model && state.model.run;
  if (!run) return;
  clear(els.runStatus).append(statusChip(run.status));
  els.title.textContent = run.title || run.kind;
  // How it ended and why, in the header: a failed or partial run says so where the eye lands first.
  const outcome = run.outcome;
  const classes = outcome ? Object.entries({ ...outcome.failed, ...outcome.stopped }).map(([c, n]) => `${n} ${c}`).join(", ") : "";
  els.reason.textContent = run.reason ? `${classes ? `${classes}: ` : ""}${run.reason}` : "";
  els.reason.title = run.reason || "";
  drawCounters();
  drawBoard();
}

function renderLegend(roles) {
  clear(els.legend);
  for (const r of roles.slice(0, 12)) {
    els.legend.append(h("span", { class: "legend-item" }, h("span", { class: "dot", style: { background: roleColour(r.role) } }), r.role));
  }
  const ring = (label, colour, extra) => h("span", { class: "legend-item" },
    h("span", { class: `ring ${extra || ""}`, style: { borderColor: colour || "transparent" } }), label);
  els.legend.append(h("br"), ring("running", STATUS_RING.running), ring("waiting", STATUS_RING.waiting),
    ring("failed", STATUS_RING.failed), ring("stopped", STATUS_RING.stopped),
    ring("cancelled", STATUS_RING.cancelled), ring("queued", "#94a3b8", "hollow"), ring("done", null, "faded"));
}

// -- the agent panel --------------------------------------------------------------------------------
async function select(id, { keepScroll = false } = {}) {
  const token = ++state.selectToken;
  const changed = state.selected !== id;
  state.selected = id;
  graph.select(id);
  els.panel.hidden = false;
  graph.setInset(els.panel.getBoundingClientRect().width);
  if (changed) {
    window.__swarm.panelAgent = null;
    clear(els.panelBody).append(h("div", { class: "muted empty", text: "loading…" }));
  }
  try {
    const detail = await getJSON(`/api/runs/${enc(state.run)}/agents/${enc(id)}`);
    if (token !== state.selectToken) return;
    const scroll = els.panelBody.scrollTop;
    renderAgent(els.panelBody, detail, { onSelect: (other) => select(other), onClose: closePanel });
    if (keepScroll && !changed) els.panelBody.scrollTop = scroll;
    window.__swarm.panelAgent = id;
  } catch (err) {
    if (token === state.selectToken) clear(els.panelBody).append(h("div", { class: "bad", text: err.message }));
  }
}

function closePanel() {
  state.selected = null;
  state.selectToken += 1;
  graph.select(null);
  els.panel.hidden = true;
  graph.setInset(0);
  if (window.__swarm) window.__swarm.panelAgent = null;
}

function tooltip(node, event) {
  if (!node || !event) {
    els.tooltip.hidden = true;
    return;
  }
  const a = (state.model && state.model.agents.get(node.id)) || node;
  clear(els.tooltip).append(h("b", { text: a.spec }), " ", statusChip(a.status),
    a.label ? h("div", { class: "mono small", id: "tooltip-label", text: a.label }) : null,
    h("div", { class: "muted small", text: `${a.role} · depth ${a.depth} · turn ${a.turn || 0}` }),
    a.reason && UNFINISHED.has(a.status) ? h("div", { class: "bad small", text: fmt.clip(a.reason, 200) }) : null,
    h("div", { class: "small", text: `${fmt.tokens(a.tokens)} tokens · ${fmt.usd(a.cost_usd)}` }));
  els.tooltip.hidden = false;
  els.tooltip.style.left = `${event.clientX + 14}px`;
  els.tooltip.style.top = `${event.clientY + 14}px`;
}

// -- hooks for tests and the curious ------------------------------------------------------------------
window.__swarm = {
  panelAgent: null,
  get run() { return state.run; },
  get nodeCount() { return graph.nodes.length; },
  get agentCount() { return state.model ? state.model.agents.size : 0; },
  get eventsSeen() { return state.model ? state.model.eventsSeen : 0; },
  get live() { return els.live.classList.contains("on"); },
  nodeIds: () => graph.nodes.map((n) => n.id),
  statuses: () => (state.model ? state.model.counters().agents : {}),
  // The drawn node with the most room around it among those matching `spec` (a safe place to click).
  clearNode: (spec) => {
    let best = null;
    for (const n of graph.nodes) {
      if (spec && n.spec !== spec) continue;
      let room = Infinity;
      for (const m of graph.nodes) if (m !== n) room = Math.min(room, Math.hypot(m.x - n.x, m.y - n.y) - m.r - n.r);
      if (!best || room > best.room) best = { id: n.id, room: room * graph.view.k };
    }
    return best;
  },
  screenPosition: (id) => graph.screenPosition(id),
  colours: () => ({ roles: { ...ROLE_COLOURS }, states: { ...STATUS_RING } }),
  label: (id) => ((state.model && state.model.agents.get(id)) || {}).label || null,
  matching: () => graph.nodes.filter((n) => !graph.match || graph.match(n)).map((n) => n.id),
  drawnLabels: () => [...(graph.renderer.labels || [])],
  nodeAtScreen: (x, y) => (graph.nodeAt(x, y) || {}).id || null,
  settled: () => graph.settled(),
  select: (id) => select(id),
  openRun: (id) => openRun(id),
  frameStats: () => graph.frameStats(),
  resetFrameStats: () => graph.resetFrameStats(),
};

els.runs.addEventListener("change", () => openRun(els.runs.value));
for (const el of [els.search, els.role, els.state]) el.addEventListener("input", applyFilter);
els.refresh.addEventListener("click", () => loadRuns());
els.fit.addEventListener("click", () => graph.refit());
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closePanel(); });
window.addEventListener("hashchange", () => {
  const id = new URLSearchParams(location.hash.slice(1)).get("run");
  if (id && id !== state.run) openRun(id);
});

loadRuns().then((runs) => openRun(wantedRun(runs))).catch((err) => notice(`Cannot list runs: ${err.message}`));
