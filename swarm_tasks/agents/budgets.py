"""Hard budgets and loop guards. A breach raises; the runner stops the agent with the reason."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from coordination import codec
from swarm_tasks.agents.spec import Limits
from swarm_tasks.agents.state import AgentState
from swarm_tasks.errors import BudgetExceeded, LoopDetected
from swarm_tasks.models.types import ToolCall
from swarm_tasks.runs import RunLimits
from swarm_tasks.settings import SwarmSettings

DEFAULT_MAX_TURNS = 60  # an agent whose spec sets no turn limit, under no SWARM_AGENT_MAX_TURNS


@dataclass(frozen=True, slots=True)
class AgentBudget:
    """Per-agent limits after applying the settings' defaults."""

    max_turns: int
    max_tokens: int
    max_cost_usd: float
    max_wall_s: float

    @classmethod
    def resolve(cls, limits: Limits, settings: SwarmSettings) -> AgentBudget:
        """The spec's own limits, capped by the settings (a deployment's SWARM_AGENT_MAX_* is a ceiling
        no kind of agent may exceed: every shipped agent sets its own turn limit)."""
        turns = [t for t in (limits.max_turns, settings.agent_max_turns) if t]
        return cls(max_turns=min(turns) if turns else DEFAULT_MAX_TURNS,
                   max_tokens=min(limits.max_tokens or settings.agent_max_tokens, settings.agent_max_tokens),
                   max_cost_usd=min(limits.max_cost_usd or settings.agent_max_cost_usd, settings.agent_max_cost_usd),
                   max_wall_s=min(limits.max_wall_s or settings.agent_max_wall_s, settings.agent_max_wall_s))

    def check(self, agent: AgentState, now: float) -> None:
        """Raise :class:`BudgetExceeded` if another model turn would break a limit."""
        if agent.turn >= self.max_turns:
            raise BudgetExceeded("turns", self.max_turns, agent.turn)
        if agent.usage.tokens >= self.max_tokens:
            raise BudgetExceeded("tokens", self.max_tokens, agent.usage.tokens)
        if agent.usage.cost_usd >= self.max_cost_usd:
            raise BudgetExceeded("cost_usd", self.max_cost_usd, round(agent.usage.cost_usd, 6))
        started = agent.started_at or now
        if now - started >= self.max_wall_s:
            raise BudgetExceeded("wall_s", self.max_wall_s, round(now - started, 3))


def check_run(limits: RunLimits, run_usage: dict[str, float], role: str, role_usage: dict[str, float]) -> None:
    """Raise :class:`BudgetExceeded` (scope run/role) if the run or the role spent its money."""
    cost = run_usage.get("cost_usd", 0.0)
    if cost >= limits.max_cost_usd:
        raise BudgetExceeded("cost_usd", limits.max_cost_usd, round(cost, 6), scope="run")
    role_cap = limits.role_max_cost_usd.get(role)
    role_cost = role_usage.get("cost_usd", 0.0)
    if role_cap is not None and role_cost >= role_cap:
        raise BudgetExceeded("cost_usd", role_cap, round(role_cost, 6), scope=f"role {role}")


def call_signature(call: ToolCall) -> str:
    """A short fingerprint of a tool call (name + canonical arguments)."""
    try:  # the model wrote these arguments: any depth, any shape
        args = json.dumps(codec.loads(call.arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        args = call.arguments or ""
    return f"{call.name}:{hashlib.sha1(args.encode(), usedforsecurity=False).hexdigest()[:12]}"


def note_calls(recent: list[str], calls: tuple[ToolCall, ...], repeat_limit: int) -> list[str]:
    """Append the calls' signatures; raise :class:`LoopDetected` when the same call repeats
    ``repeat_limit`` times in a row (the model is stuck)."""
    updated = list(recent)
    for call in calls:
        updated.append(call_signature(call))
        tail = updated[-repeat_limit:]
        if len(tail) == repeat_limit and len(set(tail)) == 1:
            raise LoopDetected(f"the same call to {call.name} was repeated {repeat_limit} times in a row "
                               f"with identical arguments")
    return updated[-(repeat_limit * 4):]
