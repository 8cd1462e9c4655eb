"""Starting agents (roots and sub-agents) and collecting what sub-agents returned.

Child ids derive from the parent, the tool call and the position, so spawning again after a crash
finds the children already there (``AlreadyExists``) instead of starting them twice.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import JsonValue

from coordination.errors import AlreadyExists, LimitReached
from coordination.ids import new_id
from swarm_tasks.agents.spec import AgentKind, AgentSpec
from swarm_tasks.agents.state import AgentState, AgentStatus, AgentStore
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunLimits


@dataclass(frozen=True, slots=True)
class ChildRequest:
    """An agent to start: which spec, its task text and structured input."""

    spec: str
    task: str = ""
    input: JsonValue = None
    labels: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # a stable name for idempotent ids (defaults to the position)
    global_key: bool = False  # the id derives from ``key`` alone: one such agent per run, whoever asks
    detached: bool = False  # started as a root of the run (depth 0, no parent): nobody waits for it


@dataclass(frozen=True, slots=True)
class SpawnOutcome:
    """Agents created by one spawn, and the requests refused (with why)."""

    started: list[AgentState]
    refused: list[tuple[ChildRequest, str]]


def child_id(parent: str, call_id: str, key: str) -> str:
    digest = hashlib.sha1(f"{parent}|{call_id}|{key}".encode(), usedforsecurity=False).hexdigest()[:20]
    return f"a-{digest}"


def initial_messages(spec: AgentSpec, agent_id: str, task: str, input_: JsonValue) -> list[ChatMessage]:
    """The system message (instructions plus who the agent is) and the task."""
    if spec.kind is AgentKind.PROGRAM:
        return []
    system = f"{spec.instructions.strip()}\n\nagent_id: {agent_id}\nrole: {spec.role}".strip()
    content = task.strip()
    if input_ is not None:
        content = f"{content}\n\nInput:\n{json.dumps(input_, indent=1, ensure_ascii=False)}".strip()
    return [{"role": "system", "content": system}, {"role": "user", "content": content or "Begin."}]


def spawn(store: AgentStore, spec_for: Callable[[str], AgentSpec], requests: list[ChildRequest], *,
          limits: RunLimits, parent: AgentState | None, call_id: str = "root") -> SpawnOutcome:
    """Create agents for ``requests`` (idempotently). Already-created ones are returned as they are."""
    started: list[AgentState] = []
    refused: list[tuple[ChildRequest, str]] = []
    for index, request in enumerate(requests):
        link = None if request.detached else parent
        depth = 0 if link is None else link.depth + 1
        if depth > limits.max_depth:
            refused.append((request, f"sub-agents may nest at most {limits.max_depth} deep"))
            continue
        try:
            spec = spec_for(request.spec)
        except KeyError as exc:
            refused.append((request, str(exc)))
            continue
        parent_id = link.id if link else None
        if request.global_key and request.key:
            agent_id = child_id("run", "global", request.key)
        elif parent is not None:  # a detached agent's id still derives from who started it: idempotent
            agent_id = child_id(parent.id, call_id, request.key or str(index))
        else:
            agent_id = new_id("a") if request.key is None else child_id("root", call_id, request.key)
        labels = request.labels
        if parent is not None and "phase" in parent.labels and "phase" not in labels:  # sub-agents join its phase
            labels = {**labels, "phase": parent.labels["phase"]}
        agent = AgentState(id=agent_id, run=store.keys.scope, spec=spec.name, role=spec.role, kind=spec.kind.value,
                           parent=parent_id, depth=depth, input=request.input, labels=labels,
                           created_at=0.0, updated_at=0.0)
        try:
            started.append(store.spawn(agent, initial_messages(spec, agent_id, request.task, request.input),
                                       max_agents=limits.max_agents, max_concurrent=limits.max_concurrent_agents))
        except AlreadyExists:
            started.append(store.get(agent_id))
        except LimitReached as exc:
            refused.append((request, f"the run may start at most {exc.cap} agents in total"))
            # Counted for the run's outcome: work the cap kept from starting is work not done.
            store.redis.hincrby(store.run_usage, "agents_refused", 1)
    return SpawnOutcome(started, refused)


def collect(store: AgentStore, agent_ids: list[str]) -> list[dict[str, JsonValue]]:
    """What each sub-agent ended with, for the parent's tool result."""
    out: list[dict[str, JsonValue]] = []
    for agent_id, state in zip(agent_ids, store.get_many(agent_ids), strict=True):
        if state is None:
            out.append({"agent": agent_id, "status": "missing"})
            continue
        out.append({"agent": agent_id, "spec": state.spec, "status": state.status.value,
                    "reason": state.reason, "result": state.result})
    return out


def all_ended(store: AgentStore, agent_ids: list[str]) -> bool:
    return all(s is None or s.status.terminal for s in store.get_many(agent_ids))


def ready(agents: list[AgentState]) -> list[AgentState]:
    return [a for a in agents if a.status is AgentStatus.READY]


@lru_cache(maxsize=256)
def resolve_callable(path: str) -> Callable[..., Any]:
    """Import ``module:function`` (programs and hooks named by specs)."""
    module_name, _, attr = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target  # type: ignore[no-any-return]
