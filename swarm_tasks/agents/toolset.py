"""The registry of tools by name. Built explicitly and passed in (no module-level registry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swarm_tasks.agents.tools.base import Tool
from swarm_tasks.agents.tools.control import Finish, SpawnAgents, WaitForTasks
from swarm_tasks.agents.tools.memory import ReadNotes, UpdateProgress, WriteNote
from swarm_tasks.agents.tools.messaging import ReadMessages, SendMessage
from swarm_tasks.errors import PluginError


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


def default_tools(extra: Iterable[Tool] = ()) -> ToolRegistry:
    """Every tool of the agent runtime (files, shell, git, notes, messages, spawn, wait, finish) and
    ``extra``: the workflows' own, which the worker passes in (see :mod:`swarm_tasks.plugins`). Two
    tools of one name are refused: one would silently replace the other."""
    from swarm_tasks.agents.tools.files import FILE_TOOLS
    from swarm_tasks.agents.tools.git import GIT_TOOLS
    from swarm_tasks.agents.tools.shell import SHELL_TOOLS

    tools: list[Tool] = [Finish(), SpawnAgents(), WaitForTasks(), WriteNote(), ReadNotes(), UpdateProgress(),
                         SendMessage(), ReadMessages(), *FILE_TOOLS, *SHELL_TOOLS, *GIT_TOOLS, *extra]
    names = [tool.name for tool in tools]
    if clashes := sorted({name for name in names if names.count(name) > 1}):
        raise PluginError(f"two tools named {', '.join(clashes)}")
    return ToolRegistry(tools)
