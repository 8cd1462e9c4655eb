"""Fixtures for the agent runtime: settings for tests, an in-process runtime, spec factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from coordination.connection import connect
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RunLimits, RunRecord
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.runtime import WorkerRuntime
from tests.runtime.harness import LocalScheduler, drain


@pytest.fixture
def swarm_settings(redis_url: str, tmp_path: Path) -> SwarmSettings:
    """Settings of a test swarm: the test Redis, a private state dir, local models only."""
    return SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path / "state", model_guard="local-only",
                         sandbox="auto", agent_turn_lease_s=30.0, agent_step_grace_s=30.0, sweep_interval_s=0.2)


class Local:
    """An in-process runtime with a scheduler that is drained by hand."""

    def __init__(self, settings: SwarmSettings) -> None:
        self.settings = settings
        self.scheduler = LocalScheduler()
        self.runtime = WorkerRuntime(settings, connect(settings), self.scheduler, control=False, node="test-node")
        self.services = self.runtime.services

    def start(self, specs: list[AgentSpec], roots: list[ChildRequest], **kwargs: object) -> RunRecord:
        return start_agents(self.services, specs, roots, **kwargs)  # type: ignore[arg-type]

    def drain(self, max_steps: int = 500) -> list[str]:
        return drain(self.runtime, self.scheduler, max_steps=max_steps)

    def agents(self, run_id: str):
        return self.services.run(run_id).agents

    def close(self) -> None:
        self.runtime.close()


@pytest.fixture
def local(swarm_settings: SwarmSettings) -> Iterator[Local]:
    rt = Local(swarm_settings)
    yield rt
    rt.close()


@pytest.fixture
def make_spec() -> Callable[..., AgentSpec]:
    def make(name: str, script: str, **kwargs: object) -> AgentSpec:
        kwargs.setdefault("role", "agent")
        kwargs.setdefault("tools", ("finish", "read_file", "write_file", "edit_file", "list_files", "shell"))
        return AgentSpec(name=name, model=f"scripted/py:tests.runtime.scripts:{script}",
                         instructions=f"You are {name}.", **kwargs)  # type: ignore[arg-type]
    return make


@pytest.fixture
def limits() -> RunLimits:
    return RunLimits()
