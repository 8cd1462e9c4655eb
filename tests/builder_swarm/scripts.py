"""Scripted planners for the build outcome tests (``scripted/py:tests.builder_swarm.scripts:<name>``)."""

from __future__ import annotations

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage


def refused_planner(_messages: list[ChatMessage], _tools: object) -> Step:
    """The provider refuses every call (as it does a key it does not accept)."""
    return Step(error="bad_request")


def idle_planner(_messages: list[ChatMessage], _tools: object) -> Step:
    """Plans nothing and says so."""
    return Step(tool_calls=[ScriptedCall(name="finish", arguments={"summary": "I see nothing to do here"})])
