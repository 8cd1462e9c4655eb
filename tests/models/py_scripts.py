"""Python callables played by ``scripted/py:tests.models.py_scripts:<name>``."""

from __future__ import annotations

import itertools
from typing import Any

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage

_calls = itertools.count()


def tool_echo(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> Step:
    """Calls the first offered tool with the last message's text; finishes when no tools are offered."""
    if not tools:
        return Step(content="no tools offered")
    name = tools[0]["function"]["name"]
    return Step(tool_calls=[ScriptedCall(name=name, arguments={"echo": messages[-1]["content"],
                                                               "agent": "{{agent}}"})])


def fail_then_answer(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> Step:
    """Every other call in this process is a server error (state kept in the module)."""
    if next(_calls) % 2 == 0:
        return Step(error="server_error")
    return Step(content="second try")


def not_a_step(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> Any:
    return {"content": "dicts are not steps"}


def windowed(messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> Step:
    return Step(content="small")


windowed.context_window = 4096  # type: ignore[attr-defined]
