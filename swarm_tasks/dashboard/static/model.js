// The page's copy of one run: agents, tasks and counters, built from a snapshot and then kept
// current by the run's event stream alone (no polling).

export const AGENT_STATUSES = ["queued", "ready", "running", "waiting", "done", "failed", "stopped", "cancelled"];
export const TERMINAL = new Set(["done", "failed", "stopped", "cancelled"]);
export const TASK_STATUSES = ["pending", "blocked", "claimed", "done", "failed", "cancelled"];
export const SEVERITIES = ["critical", "high", "medium", "low", "info"];

// What an agent works on, for people: its file, its task, or its batch (the server's AgentNode.label).
export function labelOf(labels) {
  if (!labels) return "";
  return labels.file || labels.task || (labels.batch !== undefined ? `batch ${labels.batch}` : "");
}

export class RunModel {
  constructor(runId) {
    this.runId = runId;
    this.run = null; // the run record
    this.agents = new Map(); // id -> {id, parent, role, spec, status, kind, depth, turn, tokens, cost_usd}
    this.tasks = new Map();
    this.findings = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    this.findingIds = new Set();
    this.rawFindings = []; // as reported, before the report merges them: {id, severity, file, line, rule, agents}
    this.eventsSeen = 0;
    this.lastEventId = null;
    this.listeners = { agent: [], task: [], run: [], activity: [], any: [] };
  }

  on(kind, fn) {
    this.listeners[kind].push(fn);
  }

  emit(kind, ...args) {
    for (const fn of this.listeners[kind]) fn(...args);
  }

  loadRun(detail) {
    this.run = detail.run;
    for (const s of SEVERITIES) this.findings[s] = (detail.counters.findings || {})[s] || 0;
  }

  loadAgents(list) {
    for (const a of list) this.upsertAgent(a);
  }

  loadBoard(board) {
    for (const t of board.tasks) this.tasks.set(t.id, t);
    this.emit("task", null);
  }

  upsertAgent(fields) {
    const known = this.agents.get(fields.id);
    if (known) {
      const changed = known.status !== fields.status;
      Object.assign(known, fields);
      this.emit("agent", known, changed ? "status" : "update");
      return known;
    }
    const agent = { tokens: 0, cost_usd: 0, turn: 0, depth: 0, kind: "llm", ...fields };
    this.agents.set(agent.id, agent);
    this.emit("agent", agent, "new");
    return agent;
  }

  // One entry of the event stream.
  apply(event) {
    this.eventsSeen += 1;
    const { type, subject } = event;
    const data = event.data || {};
    if (type.startsWith("agent.")) {
      const what = type.slice(6);
      if (AGENT_STATUSES.includes(what)) {
        this.upsertAgent({
          id: subject, status: what, role: data.role, spec: data.spec, parent: data.parent ?? null,
          depth: data.depth ?? 0, kind: data.kind || "llm", turn: data.turn ?? 0,
          tokens: data.tokens ?? 0, cost_usd: data.cost_usd ?? 0, label: labelOf(data.labels),
          reason: data.reason || null, reason_class: data.class || null,
        });
      } else if (what === "turn") {
        // Per-turn usage deltas: the cumulative totals arrive with the status event of the same write.
        const agent = this.agents.get(subject);
        if (agent) this.emit("activity", agent, data.tools || []);
      }
    } else if (type.startsWith("task.")) {
      const task = this.tasks.get(subject) || { id: subject, priority: 0 };
      Object.assign(task, {
        status: type.slice(5), role: data.role ?? task.role, title: data.title ?? task.title,
        parent: data.parent ?? task.parent ?? null, claimant: data.claimant ?? null,
        attempts: data.attempts ?? task.attempts ?? 0, error: data.error ?? null, updated_at: event.ts,
      });
      this.tasks.set(subject, task);
      this.emit("task", task);
    } else if (type === "finding") {
      if (!this.findingIds.has(subject)) {
        this.findingIds.add(subject);
        const sev = SEVERITIES.includes(data.severity) ? data.severity : "info";
        this.findings[sev] += 1;
        this.rawFindings.push({ id: subject, severity: sev, title: data.rule, file: data.file, line: data.line,
          rule: data.rule, agents: data.agent ? [data.agent] : [] });
        const agent = data.agent && this.agents.get(data.agent);
        if (agent) this.emit("activity", agent, ["finding"]);
      }
    } else if (type.startsWith("run.")) {
      if (this.run) {
        this.run.status = type.slice(4);
        if (data && data.reason) this.run.reason = data.reason; // why it ended partial or failed
        if (data && data.reopened_from) Object.assign(this.run, { reason: null, outcome: null, result: null });
      }
      this.emit("run", this.run);
    } else if (type === "message.sent") {
      const from = this.agents.get(data.from);
      if (from) this.emit("activity", from, ["send_message"]);
    }
    this.emit("any", event);
  }

  // Counters derived from the agents and tasks the page holds: exact, and live with every event.
  counters() {
    const byStatus = Object.fromEntries(AGENT_STATUSES.map((s) => [s, 0]));
    const roles = new Map();
    let tokens = 0;
    let cost = 0;
    const failedClasses = {};
    for (const a of this.agents.values()) {
      byStatus[a.status] = (byStatus[a.status] || 0) + 1;
      if (a.status === "failed") failedClasses[a.reason_class || "failed"] = (failedClasses[a.reason_class || "failed"] || 0) + 1;
      let r = roles.get(a.role);
      if (!r) {
        r = { role: a.role, agents: 0, active: 0, done: 0, failed: 0, tokens: 0, cost_usd: 0 };
        roles.set(a.role, r);
      }
      r.agents += 1;
      if (!TERMINAL.has(a.status)) r.active += 1;
      else if (a.status === "done") r.done += 1;
      else r.failed += 1;
      r.tokens += a.tokens || 0;
      r.cost_usd += a.cost_usd || 0;
      tokens += a.tokens || 0;
      cost += a.cost_usd || 0;
    }
    const tasks = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0]));
    for (const t of this.tasks.values()) tasks[t.status] = (tasks[t.status] || 0) + 1;
    const active = AGENT_STATUSES.filter((s) => !TERMINAL.has(s)).reduce((n, s) => n + byStatus[s], 0);
    return {
      agents: byStatus, total: this.agents.size, active,
      roles: [...roles.values()].sort((a, b) => b.agents - a.agents || a.role.localeCompare(b.role)),
      tasks, findings: { ...this.findings }, tokens, cost_usd: cost, failedClasses,
    };
  }
}
