"""The tools the runner itself carries out: ``finish`` (the only way an LLM agent ends),
``spawn_agents`` (start sub-agents in parallel; their results come back as this call's result) and
``wait_for_tasks`` (sleep until the board tasks the agent filed have ended; how they ended comes back)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, JsonValue

from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.errors import ToolError


class FinishArgs(ToolArgs):
    summary: str = Field(description="What you did and concluded, in a few sentences.")
    result: JsonValue = Field(default=None, description="Your structured result, if your instructions ask for one.")
    success: bool = Field(default=True, description="False if you could not do the task.")


class Finish(Tool):
    """Ends the agent. The runner records the result; this method is never called directly."""

    name = "finish"
    description = ("Call this when your task is complete (or cannot be completed) to end your work. "
                   "Give a short summary and, if your instructions define one, the structured result.")
    Args = FinishArgs
    idempotent = True

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise ToolError("finish is carried out by the agent runner")


class SubAgentRequest(ToolArgs):
    spec: str = Field(description="Name of the sub-agent kind to start (one of those you are allowed).")
    task: str = Field(description="The sub-agent's task, stated completely: it sees nothing else of yours.")
    input: JsonValue = Field(default=None, description="Optional structured input for the sub-agent.")


class SpawnArgs(ToolArgs):
    agents: list[SubAgentRequest] = Field(min_length=1, max_length=64,
                                          description="Sub-agents to start; they run in parallel.")


class SpawnAgents(Tool):
    """Starts sub-agents; the runner waits for all of them and returns their results as one tool result."""

    name = "spawn_agents"
    description = ("Start one or more sub-agents that work in parallel. You wait until all have finished; "
                   "their summaries and results come back as this call's result.")
    Args = SpawnArgs
    idempotent = True  # children ids derive from this call's id, so a re-run spawns nothing twice

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise ToolError("spawn_agents is carried out by the agent runner")


class WaitForTasksArgs(ToolArgs):
    pass


class WaitForTasks(Tool):
    """Puts the agent to sleep until every board task it filed (with itself as parent) has ended."""

    name = "wait_for_tasks"
    description = ("Wait until every task you filed has ended (done, failed or cancelled). You are woken then, "
                   "and this call's result lists each task with how it ended. Returns at once if none is open.")
    Args = WaitForTasksArgs
    idempotent = True

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise ToolError("wait_for_tasks is carried out by the agent runner")


def finish_schema(base: dict[str, Any], result_schema: dict[str, object] | None) -> dict[str, Any]:
    """The finish tool's schema for an agent whose result must satisfy ``result_schema``: that schema
    becomes the ``result`` parameter (its ``$defs`` moved to the root, where its references point), so
    the model is told the required shape in the tool itself, not only in prose."""
    if not result_schema:
        return base
    schema = copy.deepcopy(dict(result_schema))
    defs = schema.pop("$defs", None)
    schema.pop("title", None)
    function = copy.deepcopy(base["function"])
    params = function["parameters"]
    params["properties"]["result"] = {**schema, "description": "Your structured result; it must match this "
                                      "schema when success is true."}
    if defs:
        params["$defs"] = {**params.get("$defs", {}), **defs}
    return {**base, "function": function}
