"""The registry of tools by name. Built explicitly and passed in (no module-level registry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swarm_tasks.agents.tools.base import Tool
from swarm_tasks.agents.tools.control import Finish, SpawnAgents, WaitForTasks
from swarm_tasks.agents.tools.memory import ReadNotes, UpdateProgress, WriteNote
from swarm_tasks.agents.tools.messaging import ReadMessages, SendMessage


class ToolRegistry:
    """Tools by name; a spec names the tools its agents may use."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def schemas(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """OpenAI-format schemas of the named tools that exist (unknown names are skipped)."""
        return [self._tools[n].schema() for n in names if n in self._tools]


def default_tools() -> ToolRegistry:
    """Every tool agents may be given: files, shell, git, notes, messages, spawn, finish, and the
    workflows' own (review analyzers; build tasks and pushes)."""
    from swarm_tasks.agents.tools.files import FILE_TOOLS
    from swarm_tasks.agents.tools.git import GIT_TOOLS
    from swarm_tasks.agents.tools.shell import SHELL_TOOLS
    from swarm_tasks.review.model_agents import REVIEW_TOOLS

    tools: list[Tool] = [Finish(), SpawnAgents(), WaitForTasks(), WriteNote(), ReadNotes(), UpdateProgress(),
                         SendMessage(), ReadMessages(), *FILE_TOOLS, *SHELL_TOOLS, *GIT_TOOLS, *REVIEW_TOOLS]
    try:
        from swarm_tasks.build.tools import BUILD_TOOLS
    except ImportError:  # the build workflow's tools are optional for a worker
        BUILD_TOOLS = ()
    tools += list(BUILD_TOOLS)
    return ToolRegistry(tools)
