// The side panels: run counters, the task board, and one agent (transcript, tool calls, findings, cost).

import { clear, fmt, h } from "./dom.js";
import { roleColour } from "./graph.js";
import { AGENT_STATUSES, SEVERITIES, TASK_STATUSES } from "./model.js";

const MAX_BOARD_ROWS = 200;
const MAX_RESULT_CHARS = 4000;

function chip(text, cls) {
  return h("span", { class: `chip ${cls || ""}`, text });
}

export function statusChip(status) {
  return chip(status, `st-${status}`);
}

function roleDot(role) {
  return h("span", { class: "dot", style: { background: roleColour(role) } });
}

export function renderCounters(el, counters, run) {
  clear(el);
  const tiles = h("div", { class: "tiles" },
    tile("agents", fmt.int(counters.total)),
    tile("active", fmt.int(counters.active)),
    tile("done", fmt.int(counters.agents.done)),
    tile("failed", fmt.int(counters.agents.failed + counters.agents.stopped), counters.agents.failed ? "bad" : ""),
    tile("tokens", fmt.tokens(counters.tokens)),
    tile("cost", fmt.usd(counters.cost_usd)),
  );
  const statuses = h("div", { class: "row wrap" },
    AGENT_STATUSES.filter((s) => counters.agents[s]).map((s) => h("span", { class: "stat" }, statusChip(s),
      h("b", { text: fmt.int(counters.agents[s]) }))));
  const roles = h("table", { class: "roles" },
    h("thead", {}, h("tr", {}, ["role", "active", "done", "failed", "tokens", "cost"].map((c) => h("th", { text: c })))),
    h("tbody", {}, counters.roles.map((r) => h("tr", {},
      h("td", {}, roleDot(r.role), r.role), h("td", { text: fmt.int(r.active) }), h("td", { text: fmt.int(r.done) }),
      h("td", { text: fmt.int(r.failed), class: r.failed ? "bad" : "" }), h("td", { text: fmt.tokens(r.tokens) }),
      h("td", { text: fmt.usd(r.cost_usd) })))));
  // One severity count: the report's merged one once it is written; before, the raw one, said so.
  const merged = run && run.result && typeof run.result === "object" && run.result.by_severity;
  const bySeverity = merged || counters.findings;
  const findings = h("div", { class: "row wrap", id: "findings-count" },
    h("span", { class: "muted", text: merged ? "findings" : "findings so far (raw, not merged)" }),
    SEVERITIES.map((s) => h("span", { class: "stat" }, chip(s, `sev-${s}`), h("b", { text: fmt.int(bySeverity[s]) }))));
  const tasks = h("div", { class: "row wrap" }, h("span", { class: "muted", text: "tasks" }),
    TASK_STATUSES.map((s) => h("span", { class: "stat" }, chip(s, `ts-${s}`), h("b", { text: fmt.int(counters.tasks[s]) }))));
  el.append(tiles, statuses, roles, findings, tasks);
  const outcome = run && run.outcome;
  if (outcome && outcome.status !== "completed") {
    const classes = Object.entries({ ...outcome.failed, ...outcome.stopped }).map(([c, n]) => `${n} ${c}`).join(", ");
    const left = outcome.left_out_total ? ` · ${fmt.int(outcome.left_out_total)} left out` : "";
    el.append(h("div", { class: "bad small", text: `${outcome.status}: ${classes || "work not done"}${left}` }));
  }
  if (run && run.reason) el.append(h("div", { class: "muted small", text: run.reason }));
}

function tile(label, value, cls) {
  return h("div", { class: `tile ${cls || ""}` }, h("div", { class: "tile-value", text: value }),
    h("div", { class: "tile-label", text: label }));
}

export function renderBoard(el, tasks, filter, onFilter, run) {
  clear(el);
  if (run && run.kind === "review" && !tasks.size) {
    // Not a bug: a review's work is not claimed from a board. Its inventory starts a scan per file and each
    // flagged file gets its reviewers as sub-agents; builds file and claim tasks here.
    el.append(h("div", { class: "muted small", id: "board-note", text: "A review does not use the task board: its "
      + "agents are started per file (a scan each, then reviewers for flagged files), so its work is the agent "
      + "tree and its results are under Findings. Builds plan their work as tasks here." }));
    return;
  }
  const all = [...tasks.values()];
  const filters = h("div", { class: "row wrap filters" }, ["all", ...TASK_STATUSES].map((s) => {
    const n = s === "all" ? all.length : all.filter((t) => t.status === s).length;
    return h("button", { class: `filter ${filter === s ? "on" : ""}`, onclick: () => onFilter(s) }, `${s} ${n}`);
  }));
  const shown = all.filter((t) => filter === "all" || t.status === filter)
    .sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0));
  const list = h("ul", { class: "tasks" }, shown.slice(0, MAX_BOARD_ROWS).map((t) => h("li", {},
    h("div", { class: "row" }, chip(t.status, `ts-${t.status}`), h("span", { class: "task-title", text: t.title || t.id })),
    h("div", { class: "muted small" }, `${t.role} · ${t.id}`, t.claimant ? ` · ${t.claimant}` : "",
      t.attempts ? ` · attempt ${t.attempts}` : ""),
    t.error ? h("div", { class: "bad small", text: fmt.clip(t.error, 300) }) : null)));
  el.append(filters, shown.length ? list : h("div", { class: "muted empty", text: "no tasks on the board" }));
  if (shown.length > MAX_BOARD_ROWS) el.append(h("div", { class: "muted small", text: `…and ${shown.length - MAX_BOARD_ROWS} more` }));
}

function pretty(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function finding(f) {
  if (!f || typeof f !== "object") return h("li", { text: pretty(f) });
  const sev = SEVERITIES.includes(f.severity) ? f.severity : "info";
  const where = f.file ? `${f.file}${f.start_line || f.line ? `:${f.start_line || f.line}` : ""}` : "";
  return h("li", { class: "finding" },
    h("div", { class: "row" }, chip(sev, `sev-${sev}`), h("b", { text: f.title || f.message || f.rule || "finding" })),
    h("div", { class: "muted small mono" }, [where, f.rule, f.category].filter(Boolean).join(" · ")),
    f.description || f.detail ? h("div", { class: "small", text: fmt.clip(f.description || f.detail, 600) }) : null);
}

function messageBlock(m, callsById) {
  const parts = [];
  if (m.content) parts.push(h("pre", { class: "content", text: m.content }));
  for (const tc of m.tool_calls || []) {
    const fn = tc.function || {};
    const call = callsById.get(tc.id);
    parts.push(h("details", { class: "call" },
      h("summary", {}, h("span", { class: "call-name", text: `→ ${fn.name || "?"}` }),
        h("span", { class: "muted small mono", text: ` ${fmt.clip(typeof fn.arguments === "string" ? fn.arguments : pretty(fn.arguments), 120)}` })),
      h("pre", { class: "args", text: call ? pretty(call.arguments) : fn.arguments || "" })));
  }
  const label = m.role === "tool" ? `tool result${m.name ? ` · ${m.name}` : ""}` : m.role;
  const body = m.role === "tool"
    ? h("details", { class: "result", open: (m.content || "").length < 400 },
      h("summary", { class: "muted small", text: `${(m.content || "").length.toLocaleString()} characters` }),
      h("pre", { class: "content", text: m.content || "" }))
    : parts;
  return h("div", { class: `msg msg-${m.role}` }, h("div", { class: "msg-role", text: label }), body);
}

export function renderAgent(el, detail, { onSelect, onClose }) {
  clear(el);
  const a = detail.agent;
  const u = detail.usage || {};
  const tokens = (u.prompt_tokens || 0) + (u.completion_tokens || 0);
  const callsById = new Map(detail.tool_calls.map((c) => [c.id, c]));
  const counts = new Map();
  for (const c of detail.tool_calls) counts.set(c.name, (counts.get(c.name) || 0) + 1);
  const result = a.result && typeof a.result === "object" ? a.result : null;

  el.append(
    h("div", { class: "panel-head" },
      h("div", { class: "row" }, roleDot(a.role), h("h2", { text: a.spec }), statusChip(a.status),
        h("button", { class: "close", title: "close", onclick: onClose, text: "×" })),
      h("div", { class: "muted small mono", id: "agent-id", text: a.id }),
      h("div", { class: "muted small" }, `${a.role} · ${a.kind} · depth ${a.depth} · turn ${a.turn}`,
        a.model ? ` · ${a.model}` : "", a.last_node ? ` · ${a.last_node}` : ""),
      a.parent ? h("div", { class: "small" }, "parent ", h("a", { href: "#", onclick: (e) => { e.preventDefault(); onSelect(a.parent); }, text: a.parent })) : null,
      a.reason ? h("div", { class: ["failed", "stopped"].includes(a.status) ? "bad small" : "small", text: a.reason }) : null),
    h("div", { class: "tiles small-tiles" },
      tile("tokens", fmt.tokens(tokens)), tile("prompt", fmt.tokens(u.prompt_tokens)),
      tile("completion", fmt.tokens(u.completion_tokens)), tile("cost", fmt.usd(u.cost_usd)),
      tile("model calls", fmt.int(u.model_calls)), tile("tool calls", fmt.int(u.tool_calls))),
  );
  if (result && (result.summary || result.result !== undefined)) {
    el.append(section("Result", h("div", {},
      result.summary ? h("div", { class: "summary", text: String(result.summary) }) : null,
      result.result !== undefined ? h("details", {}, h("summary", { class: "muted small", text: "result data" }),
        h("pre", { class: "args", text: fmt.clip(pretty(result.result), MAX_RESULT_CHARS) })) : null)));
  }
  el.append(section(`Findings (${detail.findings.length})`, detail.findings.length
    ? h("ul", { class: "findings" }, detail.findings.slice(0, 200).map(finding))
    : h("div", { class: "muted small", text: "none reported" })));
  if (detail.children_total) {
    el.append(section(`Sub-agents (${detail.children_total})`, h("div", { class: "row wrap" },
      detail.children.slice(0, 60).map((c) => h("button", { class: "child", onclick: () => onSelect(c.id) },
        roleDot(c.role), `${c.spec} `, statusChip(c.status))))));
  }
  el.append(section(`Tool calls (${detail.tool_calls.length})`, h("div", { class: "row wrap" },
    [...counts].map(([name, n]) => h("span", { class: "stat" }, chip(name, "tool"), h("b", { text: String(n) }))))));
  el.append(section(`Transcript (${detail.transcript.length} messages)`, h("div", { class: "transcript", id: "transcript" },
    detail.transcript.map((m) => messageBlock(m, callsById)))));
}

function section(title, body) {
  return h("section", { class: "sec" }, h("h3", { text: title }), body);
}

// The run's findings, each linked to the nodes of the agents that found it, and the report's links.
export function renderFindings(el, view, { onSelect, reportBase, nameOf = (id) => id }) {
  clear(el);
  if (!view) {
    el.append(h("div", { class: "muted small", text: "loading…" }));
    return;
  }
  const head = view.merged
    ? `${fmt.int(view.total)} findings (merged, as in the report)`
    : `${fmt.int(view.total)} raw findings so far (merged when the report is written)`;
  el.append(h("div", { class: "row wrap" }, h("span", { class: "muted small", id: "findings-head", text: head }),
    reportBase && view.merged ? ["md", "json", "sarif"].map((f) => h("a", {
      class: "small", href: `${reportBase}/report.${f}`, target: "_blank", rel: "noopener", text: `report.${f}` })) : null));
  if (!view.findings.length) {
    el.append(h("div", { class: "muted empty", text: "no findings yet" }));
    return;
  }
  el.append(h("ul", { class: "findings", id: "findings-list" }, view.findings.slice(0, 300).map((f) => {
    const sev = SEVERITIES.includes(f.severity) ? f.severity : "info";
    const where = `${f.file || ""}${f.line ? `:${f.line}` : ""}${f.count > 1 ? ` (${f.count} places)` : ""}`;
    return h("li", { class: "finding", "data-agents": (f.agents || []).join(" ") },
      h("div", { class: "row" }, chip(sev, `sev-${sev}`), h("b", { text: f.title || f.rule || "finding" })),
      h("div", { class: "muted small mono", text: [where, f.rule].filter(Boolean).join(" · ") }),
      (f.agents || []).length ? h("div", { class: "row wrap" }, h("span", { class: "muted small", text: "found by" }),
        f.agents.slice(0, 4).map((id) => h("button", { class: "child agent-link", title: id, onclick: () => onSelect(id),
          text: nameOf(id) }))) : null);
  })));
  if (view.findings.length > 300) el.append(h("div", { class: "muted small", text: `…and ${view.findings.length - 300} more` }));
}

// The banner over the graph: queues the run waits on that nobody consumes, and agents that failed.
export function renderBanner(el, run, warnings, counters, { onShowFailed }) {
  clear(el);
  const lines = [];
  for (const w of warnings || []) lines.push(h("div", { class: "warn", text: w }));
  const failed = counters ? counters.agents.failed : 0;
  if (failed) {
    const classes = Object.entries(counters.failedClasses || {}).map(([c, n]) => `${n} ${c}`).join(", ");
    lines.push(h("div", { class: "warn" }, `${fmt.int(failed)} agent${failed === 1 ? "" : "s"} failed (${classes}) `,
      h("button", { class: "filter", id: "show-failed", onclick: onShowFailed, text: "show them" })));
  }
  el.hidden = !lines.length;
  el.append(...lines);
}
