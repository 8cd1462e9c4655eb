"""Tests of the agents' hands: workspace confinement, sandbox, file, shell and git tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarm_tasks.agents.tools.base import ToolContext
from swarm_tasks.host.sandbox import Sandbox
from swarm_tasks.settings import SwarmSettings


def make_settings(**overrides: Any) -> SwarmSettings:
    """Settings for tool tests: small limits so the edge cases are cheap to reach."""
    values: dict[str, Any] = {"sandbox": "auto", "shell_timeout_s": 20.0, "shell_max_output_bytes": 8192,
                              "shell_memory_bytes": 1024**3, "shell_max_processes": 64,
                              "shell_max_file_bytes": 2 * 1024**2}
    return SwarmSettings(**(values | overrides))


def make_ctx(workspace: Path, settings: SwarmSettings | None = None, sandbox: Sandbox | None = None,
             agent_id: str = "agent-7") -> ToolContext:
    return ToolContext(run_id="run-1", agent_id=agent_id, role="worker", call_id="call-1", workspace=workspace,
                       settings=settings or make_settings(), sandbox=sandbox)
