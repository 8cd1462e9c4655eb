"""How a run ended, said honestly: its end state, a reason a user can act on, and counts behind it.

Every workflow (plain agent runs, reviews, builds) decides its end the same way: it tallies its
agents (by role, by status, and by *reason class*: why an agent failed or was stopped), lists the
work it left out, and calls :func:`decide`. ``completed`` only when every agent the run needed
finished and nothing was left out; ``failed`` when nothing useful came of it; ``partial`` otherwise.
The CLI, the Python API, the dashboard, Flower-facing task results and the reports all read the
same :class:`RunOutcome`, stored on the run record.

A leaf module (it imports nothing of swarm_tasks) so that runs, agents and every workflow can use it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

MAX_PROBLEMS = 50  # agents listed by name in an outcome (the counts cover all of them)
MAX_LEFT_OUT = 200  # work items listed by name
MAX_REASON_CHARS = 2000
_LISTED_IN_REASON = 5


class RunStatus(StrEnum):
    """Where a run is in its life."""

    RUNNING = "running"
    FINALIZING = "finalizing"
    COMPLETED = "completed"  # every agent the run needed finished its work
    PARTIAL = "partial"  # it ended, but part of its work was not done (agents failed or were stopped); see reason
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED)


class ReasonClass(StrEnum):
    """Why an agent did not finish its work: what a user would do about it differs by class."""

    # failed
    AUTH = "auth"  # the provider refused the credentials (401/403): fix the key
    MODEL_ERROR = "model_error"  # the model call failed otherwise (unknown model, bad request, 5xx after retries)
    RATE_LIMIT = "rate_limit"  # still rate limited after retries
    TIMEOUT = "timeout"  # model calls timed out after retries
    UNREACHABLE = "unreachable"  # the model endpoint could not be reached
    GUARD = "guard"  # the model guard (SWARM_MODEL_GUARD=local-only) refused the model
    NO_MODEL = "no_model"  # no model configured for its role
    CRASH = "crash"  # its program or a hook raised, or it could not be prepared
    AGENT_ERROR = "agent_error"  # the agent itself reported that it could not do its task
    # stopped
    BUDGET = "budget"  # its own budget (turns, tokens, cost, wall time)
    COST_CAP = "cost_cap"  # the run's (or its role's) dollar cap (--max-cost)
    LOOP = "loop"  # the loop guard: the same call over and over
    CANCELLED = "cancelled"  # the run was cancelled
    RUN_CAP = "run_cap"  # the run's agent cap (--max-agents) refused to start it

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ReasonClass.AUTH: "authentication refused", ReasonClass.MODEL_ERROR: "model error",
    ReasonClass.RATE_LIMIT: "rate limited", ReasonClass.TIMEOUT: "model timeout",
    ReasonClass.UNREACHABLE: "model unreachable", ReasonClass.GUARD: "refused by the model guard",
    ReasonClass.NO_MODEL: "no model configured", ReasonClass.CRASH: "crashed",
    ReasonClass.AGENT_ERROR: "reported failure", ReasonClass.BUDGET: "agent budget spent",
    ReasonClass.COST_CAP: "run cost cap reached", ReasonClass.LOOP: "loop detected",
    ReasonClass.CANCELLED: "cancelled", ReasonClass.RUN_CAP: "agent cap reached",
}
_MODEL_CLASSES = frozenset({ReasonClass.AUTH, ReasonClass.MODEL_ERROR, ReasonClass.RATE_LIMIT, ReasonClass.TIMEOUT,
                            ReasonClass.UNREACHABLE, ReasonClass.GUARD})
_DEFAULT_CLASS = {"failed": ReasonClass.AGENT_ERROR, "stopped": ReasonClass.BUDGET,
                  "cancelled": ReasonClass.CANCELLED}
_ENDED = ("done", "failed", "stopped", "cancelled")
_VERB = {"failed": "failed", "stopped": "stopped", "cancelled": "cancelled"}


class AgentLike(Protocol):
    """What a tally needs of an agent record (``swarm_tasks.agents.state.AgentState`` has it)."""

    id: str
    spec: str
    role: str
    reason: str | None
    reason_class: ReasonClass | None
    labels: dict[str, str]
    model: str | None

    @property
    def status(self) -> StrEnum: ...


class AgentEnd(BaseModel):
    """One agent that did not finish its work, and why."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str
    spec: str
    role: str
    status: str  # failed, stopped, cancelled (or queued/ready/... for one that never got to run)
    reason_class: ReasonClass
    reason: str = ""
    subject: str = ""  # what it was working on (a file, a task)
    model: str | None = None


class RunOutcome(BaseModel):
    """How a run ended: its status, the reason, agents by status, role and reason class, what was left out."""

    model_config = ConfigDict(extra="forbid")

    status: RunStatus
    reason: str | None = None
    agents: dict[str, int] = Field(default_factory=dict, description="Agents by status.")
    roles: dict[str, dict[str, int]] = Field(default_factory=dict, description="Per role: agents by status.")
    failed: dict[str, int] = Field(default_factory=dict, description="Failed agents by reason class.")
    stopped: dict[str, int] = Field(default_factory=dict, description="Stopped or cancelled agents by reason class.")
    refused: int = Field(default=0, ge=0, description="Agents the run's caps refused to start.")
    left_out: list[str] = Field(default_factory=list, description="Work not done, each with why (capped).")
    left_out_total: int = Field(default=0, ge=0)
    problems: list[AgentEnd] = Field(default_factory=list, description="Agents that did not finish (capped).")
    problems_total: int = Field(default=0, ge=0)

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.COMPLETED


def class_of(agent: AgentLike) -> ReasonClass:
    """The agent's reason class, inferred for records written before classes existed."""
    if agent.reason_class is not None:
        return agent.reason_class
    text = (agent.reason or "").lower()
    if text.startswith("loop detected"):
        return ReasonClass.LOOP
    if "budget exceeded" in text:
        return ReasonClass.COST_CAP if text.startswith(("run budget", "role ")) else ReasonClass.BUDGET
    return _DEFAULT_CLASS.get(agent.status.value, ReasonClass.AGENT_ERROR)


class Tally:
    """Counts a run's agents and the work it left out, then decides the outcome (see :func:`decide`)."""

    def __init__(self) -> None:
        self.agents: Counter[str] = Counter()
        self.roles: dict[str, Counter[str]] = {}
        self.failed: Counter[str] = Counter()
        self.stopped: Counter[str] = Counter()
        self.problems: list[AgentEnd] = []
        self.left_out: list[str] = []
        self.left_out_total = 0
        self._left_why: dict[str, list[str]] = {}  # why -> the first items left out for it
        self._left_count: Counter[str] = Counter()
        self.refused = 0
        self.notes: list[str] = []  # extra sentences for the reason (e.g. the budget that ran out)
        self.what = "item(s) of work left out"  # how the reason names left-out work ("file(s) left out")

    def add(self, agent: AgentLike) -> None:
        status = agent.status.value
        self.agents[status] += 1
        self.roles.setdefault(agent.role, Counter())[status] += 1
        if status == "done":
            return
        cls = class_of(agent) if status in _DEFAULT_CLASS else ReasonClass.CANCELLED
        (self.failed if status == "failed" else self.stopped)[cls.value] += 1
        self.problems.append(AgentEnd(agent_id=agent.id, spec=agent.spec, role=agent.role, status=status,
                                      reason_class=cls, reason=(agent.reason or "")[:500],
                                      subject=agent.labels.get("file") or agent.labels.get("task") or "",
                                      model=agent.model))

    def add_all(self, agents: Iterable[AgentLike]) -> Tally:
        for agent in agents:
            self.add(agent)
        return self

    def leave_out(self, item: str, why: str = "") -> None:
        """Record one piece of work not done: what (``"shop/db.py"``) and why (``"not scanned (...)"``);
        without ``why``, ``item`` says both."""
        self.left_out_total += 1
        if len(self.left_out) < MAX_LEFT_OUT:
            self.left_out.append(f"{item}: {why}" if why else item)
        self._left_count[why] += 1
        examples = self._left_why.setdefault(why, [])
        if len(examples) < _LISTED_IN_REASON:
            examples.append(item)

    def refuse(self, count: int) -> None:
        if count > 0:
            self.refused += count
            self.stopped[ReasonClass.RUN_CAP.value] += count

    @property
    def done(self) -> int:
        return self.agents["done"]

    @property
    def unfinished(self) -> int:
        return len(self.problems)

    def role_done(self, role: str) -> int:
        return self.roles.get(role, Counter())["done"]

    # -- deciding --------------------------------------------------------------------------------

    def outcome(self, status: RunStatus, reason: str | None) -> RunOutcome:
        ordered = sorted(self.problems, key=lambda p: (p.status != "failed", p.role, p.subject, p.agent_id))
        return RunOutcome(status=status, reason=reason[:MAX_REASON_CHARS] if reason else reason,
                          agents=dict(self.agents), roles={r: dict(c) for r, c in sorted(self.roles.items())},
                          failed=dict(self.failed), stopped=dict(self.stopped), refused=self.refused,
                          left_out=list(self.left_out), left_out_total=self.left_out_total,
                          problems=ordered[:MAX_PROBLEMS], problems_total=len(ordered))

    def sentence(self) -> str:
        """What did not get done and why, in one paragraph: the groups of agents that did not finish
        (largest first, each with a representative reason), then the notes, then what was left out."""
        groups: dict[tuple[str, str, ReasonClass, str], list[AgentEnd]] = {}
        for p in self.problems:  # one group per model only where the model is the reason
            model = (p.model or "") if p.reason_class in _MODEL_CLASSES else ""
            groups.setdefault((p.role, p.status, p.reason_class, model), []).append(p)
        parts: list[str] = []
        ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        for (role, status, cls, _model), members in ranked[:3]:
            total = max(sum(self.roles.get(role, Counter()).values()), len(members))
            example = members[0].reason or cls.label
            verb = _VERB.get(status, status)
            if status != "failed":
                verb = ("was " if len(members) == 1 else "were ") + verb
            parts.append(f"{len(members)} of {total} {plural(role, total)} {verb}: {example}")
        rest = sum(len(m) for _, m in ranked[3:])
        if rest:
            parts.append(f"{rest} other agent(s) did not finish (see the failed agents)")
        parts += self.notes
        for why, examples in sorted(self._left_why.items(), key=lambda kv: -self._left_count[kv[0]])[:3]:
            count = self._left_count[why]
            more = count - len(examples)
            head = f"{count} {self.what}, {why}" if why else f"{count} {self.what}"
            parts.append(f"{head}: {', '.join(examples)}" + (f" and {more} more" if more else ""))
        if len(self._left_why) > 3:
            parts.append(f"{sum(self._left_count[w] for w in list(self._left_why)[3:])} more left out for other "
                         "reasons")
        return "; ".join(parts)[:MAX_REASON_CHARS]


def decide(tally: Tally, *, useful: bool, failure: str | None = None) -> RunOutcome:
    """The end of a run: ``failure`` (the workflow itself could not go on) or nothing ``useful`` done
    means FAILED; any agent that did not finish, refused work or left-out work means PARTIAL;
    otherwise COMPLETED. The reason names what was not done and why."""
    detail = tally.sentence()
    if failure:
        return tally.outcome(RunStatus.FAILED, failure + (f"; {detail}" if detail else ""))
    incomplete = bool(tally.problems or tally.left_out_total or tally.refused or tally.notes)
    if not useful:
        return tally.outcome(RunStatus.FAILED, detail or "nothing useful was done")
    if incomplete:
        return tally.outcome(RunStatus.PARTIAL, detail or "part of the work was not done")
    return tally.outcome(RunStatus.COMPLETED, None)


def plural(role: str, count: int) -> str:
    return role if count == 1 else role + "s"


__all__ = ["MAX_PROBLEMS", "AgentEnd", "ReasonClass", "RunOutcome", "RunStatus", "Tally", "class_of", "decide",
           "plural"]
