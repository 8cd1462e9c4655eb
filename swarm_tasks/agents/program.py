"""Program agents: deterministic Python callables that run as an agent's single turn.

They go through the same queues, records, events and reports as model agents and are counted as
agents that ran, but are always named as what they are (``kind: program``) — never as a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from coordination.run import RunState
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.agents.state import AgentState, AgentStatus, Usage
from swarm_tasks.outcome import ReasonClass
from swarm_tasks.runs import RunRecord
from swarm_tasks.settings import SwarmSettings


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    """An event a program wants on the run's stream when it ends (e.g. one per finding)."""

    type: str
    subject: str
    data: JsonValue = None


@dataclass(frozen=True)
class ProgramContext:
    """What a program may use: its agent record, the run, the workspace and settings."""

    agent: AgentState
    spec: AgentSpec
    run: RunRecord
    state: RunState
    workspace: Path
    settings: SwarmSettings
    # Whether the run still wants work (read again, not cancelled): a program that works a long while asks
    # between its pieces of work and ends early (cancelled) when not.
    run_live: Callable[[], bool] = lambda: True


@dataclass
class ProgramResult:
    """How a program ended. ``children`` are started (idempotently) before the agent is recorded as ended."""

    status: AgentStatus = AgentStatus.DONE
    reason: str | None = None
    result: JsonValue = None
    children: list[ChildRequest] = field(default_factory=list)
    events: list[EmittedEvent] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    counters: dict[str, int] = field(default_factory=dict)  # run-wide live counters, e.g. findings.high
    reason_class: ReasonClass | None = None  # why it did not finish (default: from its status)


@dataclass(frozen=True, slots=True)
class Ending:
    """How an agent ended, as its ``on_end`` hook is told."""

    status: AgentStatus
    reason: str | None
    result: JsonValue = None


@dataclass
class FollowUp:
    """What an on_finish hook may return besides a plain list of children: events and counters too."""

    children: list[ChildRequest] = field(default_factory=list)
    events: list[EmittedEvent] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    record: JsonValue = None  # stored beside the model's result as result["record"] (what the hook derived)
