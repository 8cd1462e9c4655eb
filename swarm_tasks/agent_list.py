"""A run's agents as people read them (``swarm agents``, ``swarm status --failed``): who, on what, how
each ended and why, in one listing for the terminal and for JSON.

The terminal form gives each agent a line of facts and, for one that did not finish, an indented line
with its reason, so it reads in 80 columns and an agent id is never cut (it is what ``swarm logs RUN
AGENT`` and ``swarm retry`` take).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel
from rich.console import Group
from rich.text import Text

from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.display import inert
from swarm_tasks.outcome import class_of

FAILED = frozenset({AgentStatus.FAILED})
STOPPED = frozenset({AgentStatus.STOPPED, AgentStatus.CANCELLED})
UNFINISHED = FAILED | STOPPED
_STYLE = {"done": "green", "failed": "bold red", "stopped": "yellow", "cancelled": "yellow", "running": "cyan"}


class AgentRow(BaseModel):
    """One agent of a run, listed (the fields of :class:`swarm_tasks.outcome.AgentEnd`, and its work)."""

    agent_id: str
    spec: str
    role: str
    status: str
    reason_class: str | None = None  # why it did not finish (see the README's reason classes)
    reason: str = ""
    subject: str = ""  # the file or task it works on
    model: str | None = None
    parent: str | None = None
    turns: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    node: str | None = None  # the worker that ran its latest turn

    @classmethod
    def of(cls, agent: AgentState) -> AgentRow:
        unfinished = agent.status in UNFINISHED
        return cls(agent_id=agent.id, spec=agent.spec, role=agent.role, status=agent.status.value,
                   reason_class=class_of(agent).value if unfinished else None,
                   reason=(agent.reason or "")[:500] if agent.status is not AgentStatus.DONE else "",
                   subject=agent.labels.get("file") or agent.labels.get("task") or "", model=agent.model,
                   parent=agent.parent, turns=agent.turn, tokens=agent.usage.tokens,
                   cost_usd=round(agent.usage.cost_usd, 6), retries=agent.retries, node=agent.last_node)


def select(agents: Iterable[AgentState], statuses: Iterable[AgentStatus] | None = None,
           role: str | None = None) -> list[AgentRow]:
    """The agents in ``statuses`` (all if None) of ``role`` (any if None): failed first, then by role,
    subject and id, so the list reads the same every time."""
    wanted = None if statuses is None else frozenset(statuses)
    rows = [AgentRow.of(a) for a in agents
            if (wanted is None or a.status in wanted) and (role is None or a.role == role)]
    return sorted(rows, key=lambda r: (r.status != "failed", r.status == "done", r.role, r.subject, r.agent_id))


def render(run_id: str, rows: list[AgentRow], *, what: str = "agents") -> Group | Text:
    """The listing for the terminal: a title, then a line per agent (and its reason on the next)."""
    if not rows:
        if what == "did not finish":
            return Text(f"run {run_id}: every agent that ended finished its work")
        return Text(f"run {run_id}: no {what}")
    title = f"run {run_id}: {len(rows)} agent{'' if len(rows) == 1 else 's'} " + (
        what if what == "did not finish" else f"({what})")
    lines: list[Text] = [Text(title, style="bold")]
    for row in rows:
        line = Text.assemble((row.agent_id, "bold"), "  ", row.role, "  ", (row.status, _STYLE.get(row.status, "")))
        if row.reason_class:
            line.append(f" [{row.reason_class}]")
        if row.subject:
            line.append(f"  {inert(row.subject)}")
        lines.append(line)
        facts = [f"{row.turns} turn{'' if row.turns == 1 else 's'}"] if row.turns else []
        if row.tokens:
            facts.append(f"{row.tokens:,} tokens ${row.cost_usd:.4f}")
        if row.retries:
            facts.append(f"retried {row.retries}x")
        if row.reason:
            facts.append(inert(row.reason))
        if facts:  # on a line of its own: the first keeps to what a user copies and reads at a glance
            lines.append(Text("    " + " · ".join(facts), style="dim"))
    return Group(*lines)


__all__ = ["FAILED", "STOPPED", "UNFINISHED", "AgentRow", "render", "select"]
