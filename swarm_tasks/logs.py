"""What happened in a run, for when something went wrong (``swarm logs RUN [AGENT]``): the run's event
timeline, an agent's transcript (messages, tool calls and their results), and the lines of the local
workers' logs that name the run or the agent.

Worker logs are read from ``<state dir>/logs`` (the workers ``swarm review``, ``build``, ``retry`` and
``resume`` start there write them); workers started elsewhere log where they were started (their
terminal, ``docker compose logs``, ``kubectl logs``), and the listing says so. Everything shown goes
through the same masking pass as reports and the dashboard, and is made inert for the terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue
from rich.console import Group
from rich.text import Text

from coordination.events import Event, EventLog
from swarm_tasks.agent_list import AgentRow
from swarm_tasks.agents.services import RunContext
from swarm_tasks.agents.state import AgentState
from swarm_tasks.display import inert
from swarm_tasks.security import Redactor

EVENT_PAGE = 1000
MAX_LOG_LINES = 400
_AGENT_ID = re.compile(r"\ba-[0-9a-f]{20}\b")


@dataclass
class RunLogs:
    """A run's (or one agent's) events, transcript and worker log lines, masked."""

    run_id: str
    agent: AgentRow | None = None
    transcript: list[dict[str, JsonValue]] = field(default_factory=list)
    events: list[dict[str, JsonValue]] = field(default_factory=list)
    worker_logs: list[dict[str, str]] = field(default_factory=list)
    log_dir: str = ""

    def as_json(self) -> dict[str, JsonValue]:
        return {"run": self.run_id, "agent": self.agent.model_dump(mode="json") if self.agent else None,
                "transcript": self.transcript, "events": self.events,  # type: ignore[dict-item]
                "worker_logs": self.worker_logs, "log_dir": self.log_dir}  # type: ignore[dict-item]


def collect(ctx: RunContext, redactor: Redactor, log_dir: Path, agent: AgentState | None = None,
            *, agent_ids: set[str] | None = None) -> RunLogs:
    """The logs of the run, or of ``agent`` in it. ``agent_ids``: whose worker log lines a run's listing
    shows besides the run's own (its agents that did not finish, say)."""
    events = [_event(e) for e in _events(ctx) if agent is None or e.subject == agent.id]
    needles = {agent.id} if agent is not None else {ctx.run_id, *(agent_ids or set())}
    logs = RunLogs(run_id=ctx.run_id, events=events, worker_logs=worker_lines(log_dir, needles),
                   log_dir=str(log_dir))
    if agent is not None:
        logs.agent = AgentRow.of(agent)
        logs.transcript = [dict(m) for m in ctx.agents.conversation(agent)]  # type: ignore[misc]
    masked = redactor.tree(logs.as_json())  # one pass over all of it: a secret seen anywhere is masked everywhere
    assert isinstance(masked, dict)
    logs.transcript = masked["transcript"]  # type: ignore[assignment]
    logs.events = masked["events"]  # type: ignore[assignment]
    logs.worker_logs = masked["worker_logs"]  # type: ignore[assignment]
    if logs.agent is not None and isinstance(masked["agent"], dict):
        logs.agent = AgentRow.model_validate(masked["agent"])
    return logs


def _events(ctx: RunContext) -> list[Event]:
    log = EventLog(ctx.state.redis, ctx.state.keys)
    out: list[Event] = []
    after = "0-0"
    while True:
        page = log.read(after, EVENT_PAGE)
        out += page
        if len(page) < EVENT_PAGE:
            return out
        after = page[-1].id


def _event(event: Event) -> dict[str, JsonValue]:
    return {"id": event.id, "ts": event.ts, "type": event.type, "subject": event.subject, "data": event.data}


def worker_lines(log_dir: Path, needles: set[str], limit: int = MAX_LOG_LINES) -> list[dict[str, str]]:
    """Lines of the worker logs in ``log_dir`` naming one of ``needles`` (a run id or agent ids), the
    newest ``limit``, each with its file."""
    found: list[dict[str, str]] = []
    agent_needles = {n for n in needles if _AGENT_ID.fullmatch(n)}
    others = needles - agent_needles
    for path in sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if any(n in line for n in others) or (agent_needles and agent_needles & set(_AGENT_ID.findall(line))):
                found.append({"file": path.name, "line": line})
    return found[-limit:]


def render(logs: RunLogs, *, width: int = 2000) -> Group:
    """The logs for the terminal: the agent (if one), its transcript, the events, the worker log lines.
    ``width``: characters of one message or result shown (``--full``: all of them)."""
    parts: list[Text] = []
    if logs.agent is not None:
        a = logs.agent
        head = f"agent {a.agent_id}  {a.role} ({a.spec})  {a.status}"
        head += f" [{a.reason_class}]" if a.reason_class else ""
        parts.append(Text(head, style="bold"))
        if a.subject:
            parts.append(Text(f"on {inert(a.subject)}"))
        facts = f"model {a.model or 'none'}, {a.turns} turns, {a.tokens:,} tokens, ${a.cost_usd:.4f}"
        facts += (f", retried {a.retries}x" if a.retries else "") + (f", last on {a.node}" if a.node else "")
        parts.append(Text(facts, style="dim"))
        if a.reason:
            parts.append(Text(f"reason: {inert(a.reason)}", style="yellow"))
        parts.append(Text(f"\ntranscript ({len(logs.transcript)} messages)", style="bold"))
        parts += [_message(m, width) for m in logs.transcript] or [Text("  (none: a program agent, or no turn yet)")]
    parts.append(Text(f"\nevents ({len(logs.events)})", style="bold"))
    start = logs.events[0]["ts"] if logs.events else 0.0
    for e in logs.events:
        data = e.get("data") if isinstance(e.get("data"), dict) else {}
        assert isinstance(data, dict)
        detail = " ".join(f"{k}={inert(str(v))[:200]}" for k, v in data.items() if v not in (None, "", [], {}))
        offset = float(e["ts"] or 0) - float(start or 0)  # type: ignore[arg-type]
        parts.append(Text(f"  +{offset:8.2f}s  {e['type']}  {e['subject']}  {detail}".rstrip()))
    where = f"{logs.log_dir}/*.log" if logs.log_dir else "no local log directory"
    parts.append(Text(f"\nworker log lines ({len(logs.worker_logs)}, from {where}; workers started elsewhere log "
                      "where they were started)", style="bold"))
    parts += [Text(f"  {w['file']}: {inert(w['line'])}") for w in logs.worker_logs]
    return Group(*parts)


def _message(message: dict[str, JsonValue], width: int) -> Text:
    role = str(message.get("role", "?"))
    text = Text(f"  [{role}] ", style="bold cyan" if role == "assistant" else "bold")
    content = message.get("content")
    if isinstance(content, str) and content:
        text.append(_clip(inert(content, multiline=True), width))
    for call in message.get("tool_calls") or []:  # type: ignore[union-attr]
        if isinstance(call, dict):
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            assert isinstance(function, dict)
            text.append(f"\n    -> {function.get('name')}({_clip(inert(str(function.get('arguments', ''))), width)})",
                        style="cyan")
    return text


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return f"{text[:width]} ... ({len(text) - width:,} more characters; --full shows all)"


__all__ = ["RunLogs", "collect", "render", "worker_lines"]
