"""What the dashboard shows, read from Redis: runs, counters, the agent tree, one agent, the task board.

Plain synchronous readers over a read-only :class:`SwarmClient`; the aiohttp handlers run them in a
thread so a slow read never stalls the event streams of other pages. Every view that carries text an
agent, a model or a repository wrote (titles, results, findings, transcripts, tool calls, task errors,
events) goes through the same masking pass as the reports (:meth:`Redactor.tree`, over the whole view
at once); the agent list carries ids, enums and numbers only.
"""

from __future__ import annotations

import json
import logging

import redis
from pydantic import BaseModel, JsonValue

from coordination.errors import NotFound
from coordination.keys import check_id
from coordination.tasks import Task, TaskStatus
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunRecord
from swarm_tasks.security import Redactor

log = logging.getLogger("swarm_tasks.dashboard")
BATCH = 500  # records per get_many round trip: big enough to be quick, small enough not to block Redis
MAX_TEXT = 20_000  # characters of one transcript message shown; the rest is elided
MAX_CHILDREN = 500
SEVERITIES = ("critical", "high", "medium", "low", "info")


class RunSummary(BaseModel):
    """One line of the run selector."""

    id: str
    kind: str
    status: str
    title: str
    created: float
    ended: float | None = None


class RoleCounters(BaseModel):
    role: str
    agents: int
    active: int
    ended: int
    tokens: int
    cost_usd: float


class RunCounters(BaseModel):
    """The run's counters: agents by status and role, tasks by status, findings, usage."""

    agents: dict[str, int]
    roles: list[RoleCounters]
    tasks: dict[str, int]
    findings: dict[str, int]
    tokens: int
    cost_usd: float
    model_calls: int
    tool_calls: int
    counters: dict[str, int]


class AgentNode(BaseModel):
    """An agent as a node of the tree: what the graph needs, nothing more."""

    id: str
    parent: str | None
    role: str
    spec: str
    status: str
    kind: str
    depth: int
    turn: int
    tokens: int
    cost_usd: float
    label: str = ""  # what it works on: its file, task or batch (shown on hover and for a selected node)
    reason_class: str | None = None  # why it did not finish

    @classmethod
    def of(cls, a: AgentState) -> AgentNode:
        batch = a.labels.get("batch")
        return cls(id=a.id, parent=a.parent, role=a.role, spec=a.spec, status=a.status.value, kind=a.kind,
                   depth=a.depth, turn=a.turn, tokens=a.usage.tokens, cost_usd=round(a.usage.cost_usd, 6),
                   label=a.labels.get("file") or a.labels.get("task") or (f"batch {batch}" if batch else ""),
                   reason_class=a.reason_class.value if a.reason_class else None)


class ToolCallView(BaseModel):
    """A tool call of the transcript with the result that answered it."""

    id: str
    name: str
    arguments: JsonValue
    result: str | None
    message: int  # index of the assistant message that made the call


class AgentDetail(BaseModel):
    agent: dict[str, JsonValue]
    usage: dict[str, float]
    transcript: list[dict[str, JsonValue]]
    tool_calls: list[ToolCallView]
    findings: list[JsonValue]
    children: list[AgentNode]
    children_total: int


class TaskView(BaseModel):
    id: str
    role: str
    title: str
    status: str
    parent: str | None
    claimant: str | None
    attempts: int
    error: str | None
    priority: int
    updated_at: float

    @classmethod
    def of(cls, t: Task) -> TaskView:
        return cls(id=t.id, role=t.role, title=t.title, status=t.status.value, parent=t.parent, claimant=t.claimant,
                   attempts=t.attempts, error=t.error, priority=t.priority, updated_at=t.updated_at)


class Views:
    """Read models of the dashboard over one client."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.redactor = Redactor.from_settings(client.settings)

    def event(self, event: dict[str, JsonValue]) -> JsonValue:
        """One event of a run's stream as the page gets it."""
        return self.redactor.tree(event)

    def runs(self, limit: int = 100) -> list[RunSummary]:
        runs = [RunSummary(id=r.id, kind=r.kind, status=r.status.value, title=r.title, created=r.created_at,
                           ended=r.ended_at) for r in self.client.runs.list(limit)]
        return [self.redactor.model(r) for r in runs]

    def context(self, run_id: str) -> tuple[RunContext, RunRecord]:
        """The run's context; :class:`RunNotFound` (also for an id that cannot be a run's)."""
        record = self.client.runs.get(run_id)
        return self.client.run(run_id), record

    def cursor(self, ctx: RunContext) -> str:
        """The id of the run's newest event: a page that read a snapshot follows the stream from here."""
        last = self.client.client.xrevrange(ctx.state.keys.events(), count=1)
        if not last:
            return "0-0"
        entry_id = last[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def roles(self, ctx: RunContext) -> list[str]:
        # The per-role usage hashes are the only index of the run's roles; SCAN with a large COUNT keeps
        # this to a few round trips even on a Redis holding many runs.
        prefix = ctx.state.keys.usage("role:")
        found = {k.decode().removeprefix(prefix) for k in self.client.client.scan_iter(match=prefix + "*", count=2000)}
        return sorted(found)

    def counters(self, ctx: RunContext) -> RunCounters:
        agents = ctx.agents
        run = agents.usage("run")
        raw = {k: int(v) for k, v in agents.usage("counters").items()}
        roles: list[RoleCounters] = []
        for role in self.roles(ctx):
            u = agents.usage(f"role:{role}")
            started, ended = int(u.get("agents", 0)), int(u.get("agents_ended", 0))
            roles.append(RoleCounters(role=role, agents=started, active=started - ended, ended=ended,
                                      tokens=int(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)),
                                      cost_usd=round(u.get("cost_usd", 0.0), 6)))
        return RunCounters(
            agents={s.value: n for s, n in agents.counts().items()}, roles=roles,
            tasks={s.value: n for s, n in ctx.state.board.counts().items()},
            findings={s: raw.get(f"findings.{s}", 0) for s in SEVERITIES},
            tokens=int(run.get("prompt_tokens", 0) + run.get("completion_tokens", 0)),
            cost_usd=round(run.get("cost_usd", 0.0), 6), model_calls=int(run.get("model_calls", 0)),
            tool_calls=int(run.get("tool_calls", 0)), counters=raw)

    def run_detail(self, run_id: str) -> dict[str, JsonValue]:
        """The run, its counters and, while it runs, a warning per queue it waits on that no live worker
        consumes (the page's banner)."""
        ctx, record = self.context(run_id)
        cursor = self.cursor(ctx)
        shown = self.redactor.tree({"run": record.model_dump(mode="json")})
        assert isinstance(shown, dict)
        warnings: list[JsonValue] = []
        if not record.status.terminal:
            from swarm_tasks.worker.consumers import queue_needs

            try:
                warnings = [n.warning() for n in queue_needs(self.client, ctx) if n.starved]
            except redis.RedisError as exc:  # the banner goes without: the run's view still answers
                log.warning("queue consumers of run %s not read: %s", run_id, exc)
        return {**shown, "counters": self.counters(ctx).model_dump(mode="json"), "cursor": cursor,
                "warnings": warnings}

    def findings(self, run_id: str) -> dict[str, JsonValue]:
        """The run's findings: merged (the report's) once it is written, else raw so far; masked."""
        from swarm_tasks.dashboard.findings import findings_view
        from swarm_tasks.review.workflow import load_report

        ctx, record = self.context(run_id)
        report = load_report(self.client, run_id) if record.kind == "review" else None
        shown = self.redactor.tree(findings_view(self.client, ctx, report))
        assert isinstance(shown, dict)
        return shown

    def report(self, run_id: str, fmt: str) -> str:
        """The run's report as Markdown, JSON or SARIF (stored masked); :class:`NotFound` before it exists."""
        from swarm_tasks.review.report_json import render_json
        from swarm_tasks.review.report_markdown import render_markdown
        from swarm_tasks.review.report_sarif import render_sarif
        from swarm_tasks.review.workflow import load_report

        self.context(run_id)
        report = load_report(self.client, run_id)
        if report is None:
            raise NotFound(f"run {run_id!r} has no report yet: a review writes it when its last agent ends")
        if fmt == "md":
            return render_markdown(report)
        return render_json(report) if fmt == "json" else render_sarif(report)

    def agent_ids(self, ctx: RunContext) -> list[str]:
        pipe = self.client.client.pipeline(transaction=False)
        for status in AgentStatus:
            pipe.smembers(ctx.state.keys.agent_status(status))
        return sorted({m.decode() for members in pipe.execute() for m in members})

    def agents(self, run_id: str, *, after: str | None = None, limit: int = 20_000) -> dict[str, JsonValue]:
        """A page of the run's agents in id order, after the agent id ``after``."""
        ctx, _record = self.context(run_id)
        cursor = self.cursor(ctx)  # before the snapshot: replaying from it can only repeat, never miss
        ids = self.agent_ids(ctx)
        start = 0
        if after:
            start = next((i for i, a in enumerate(ids) if a > after), len(ids))
        page = ids[start:start + limit]
        nodes: list[JsonValue] = []
        for i in range(0, len(page), BATCH):
            nodes += [AgentNode.of(a).model_dump(mode="json") for a in ctx.agents.get_many(page[i:i + BATCH])
                      if a is not None]
        more = start + limit < len(ids)
        return {"agents": nodes, "total": len(ids), "next": page[-1] if more and page else None, "cursor": cursor}

    def agent(self, run_id: str, agent_id: str) -> AgentDetail:
        ctx, _record = self.context(run_id)
        try:
            agent = ctx.agents.get(check_id(agent_id, "agent id"))
        except ValueError:  # not even a possible id: as absent as any other
            raise NotFound(f"no agent {agent_id!r} in run {run_id!r}") from None
        messages = ctx.agents.conversation(agent)
        child_ids = ctx.agents.children(agent.id)
        children = [AgentNode.of(c) for c in ctx.agents.get_many(child_ids[:MAX_CHILDREN]) if c is not None]
        # One pass over the whole view: a secret a finding names is masked in the transcript too.
        return self.redactor.model(AgentDetail(
            agent=agent.model_dump(mode="json"), usage=ctx.agents.usage(f"agent:{agent.id}"),
            transcript=[_clip_message(m) for m in messages], tool_calls=tool_calls(messages),
            findings=findings(agent), children=children, children_total=len(child_ids)))

    def board(self, run_id: str, *, limit: int = 5_000) -> dict[str, JsonValue]:
        ctx, _record = self.context(run_id)
        cursor = self.cursor(ctx)
        board = ctx.state.board
        tasks = sorted(board.tasks(), key=lambda t: t.updated_at, reverse=True)
        shown = self.redactor.tree([TaskView.of(t).model_dump(mode="json") for t in tasks[:limit]])
        return {"tasks": shown, "total": len(tasks),
                "counts": {s.value: n for s, n in board.counts().items()}, "cursor": cursor,
                "statuses": [s.value for s in TaskStatus]}


def tool_calls(messages: list[ChatMessage]) -> list[ToolCallView]:
    """Every tool call in the transcript, paired with the tool message that answered it."""
    results = {m.get("tool_call_id"): m.get("content") for m in messages if m.get("role") == "tool"}
    calls: list[ToolCallView] = []
    for index, message in enumerate(messages):
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            raw = function.get("arguments") or ""
            try:
                arguments: JsonValue = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError:  # models do send malformed arguments; show them as they came
                arguments = raw
            result = results.get(call.get("id"))
            calls.append(ToolCallView(id=str(call.get("id") or ""), name=str(function.get("name") or "?"),
                                      arguments=arguments, result=_clip(result) if isinstance(result, str) else None,
                                      message=index))
    return calls


def findings(agent: AgentState) -> list[JsonValue]:
    """Whatever findings the agent reported: model agents under result.result, programs under result."""
    result = agent.result if isinstance(agent.result, dict) else {}
    body = result.get("result")
    found: list[JsonValue] = []
    for holder in (body if isinstance(body, dict) else {}, result):
        for key in ("findings", "new_findings"):
            value = holder.get(key)
            if isinstance(value, list):
                found += value
    if isinstance(result.get("finding"), dict):
        found.append(result["finding"])
    return found


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}\n… ({len(text) - MAX_TEXT:,} more characters not shown)"


def _clip_message(message: ChatMessage) -> dict[str, JsonValue]:
    shown: dict[str, JsonValue] = dict(message)  # type: ignore[arg-type]  # a TypedDict of JSON values
    content = message.get("content")
    if isinstance(content, str) and len(content) > MAX_TEXT:
        shown["content"] = _clip(content)
    return shown
