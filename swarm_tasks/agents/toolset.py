"""The registry of tools by name. Built explicitly and passed in (no module-level registry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from swarm_tasks.agents.tools.base import Tool
from swarm_tasks.agents.tools.control import Finish, SpawnAgents
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
    """Every general-purpose tool: files, shell, git, notes, messages, spawn, finish."""
    from swarm_tasks.agents.tools import files, git, shell

    tools: list[Tool] = [Finish(), SpawnAgents(), WriteNote(), ReadNotes(), UpdateProgress(), SendMessage(),
                         ReadMessages()]
    for module in (files, shell, git):
        tools += [cls() for cls in vars(module).values()
                  if isinstance(cls, type) and issubclass(cls, Tool) and cls is not Tool
                  and getattr(cls, "__module__", "") == module.__name__ and hasattr(cls, "name")]
    return ToolRegistry(tools)
