"""The vocabulary of tool calls a turn handles itself: finish, spawn_agents, wait_for_tasks, and the
messages that answer calls (including calls a dead worker left unanswered)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
from pydantic import JsonValue

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import RunContext
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.agents.tools.control import FinishArgs, SpawnArgs
from swarm_tasks.agents.toolset import ToolRegistry
from swarm_tasks.errors import ToolError
from swarm_tasks.models.types import ChatMessage, ToolCall
from swarm_tasks.outcome import ReasonClass

INTERRUPTED = ("interrupted: the worker running this call stopped before its result was recorded. "
               "It may or may not have taken effect; check before repeating it.")
MAX_OUTCOME_CHARS = 1500  # of one task's result, in the answer of wait_for_tasks


@dataclass
class Finish:
    call: ToolCall
    args: FinishArgs


@dataclass
class Spawn:
    call: ToolCall
    requests: list[ChildRequest]


@dataclass
class WaitTasks:
    call: ToolCall


@dataclass
class CallsOutcome:
    messages: list[ChatMessage] = field(default_factory=list)
    control: Finish | Spawn | WaitTasks | None = None
    calls: int = 0
    stop: str | None = None  # a tool broke a contract (a loop, a budget): the agent stops with this reason
    stop_class: ReasonClass | None = None


def tool_message(call_id: str, content: str) -> ChatMessage:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def task_outcomes(ctx: RunContext, agent_id: str) -> str:
    """How the board tasks filed by ``agent_id`` ended, for the answer of ``wait_for_tasks``."""
    out: list[dict[str, JsonValue]] = []
    for task in sorted(ctx.state.board.children(agent_id), key=lambda t: t.created_at):
        result = json.dumps(task.result, ensure_ascii=False)
        out.append({"task": task.id, "title": task.title, "status": task.status.value, "attempts": task.attempts,
                    "result": task.result if len(result) <= MAX_OUTCOME_CHARS else result[:MAX_OUTCOME_CHARS],
                    "error": task.error})
    return json.dumps(out, ensure_ascii=False)


def unanswered(messages: list[ChatMessage]) -> list[ToolCall]:
    """Tool calls of the last assistant message that have no result after them."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            answered = {m.get("tool_call_id") for m in messages[index + 1:] if m["role"] == "tool"}
            return [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                    for c in messages[index].get("tool_calls") or [] if c["id"] not in answered]
    return []


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A checked validator per result schema: ``jsonschema.validate`` checks the schema itself on every
    call, which was 7% of a model review worker's CPU (one finish per agent)."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def parse_finish(tools: ToolRegistry, spec: AgentSpec, call: ToolCall) -> Finish | str:
    """The finish call's arguments, validated against the spec's result schema, or an error for the model."""
    tool = tools.get("finish")
    assert tool is not None
    try:
        args = tool.parse(call.arguments)
    except ToolError as exc:
        return f"error: {exc}"
    assert isinstance(args, FinishArgs)
    if spec.result_schema is not None and args.success:
        validator = _validator(json.dumps(spec.result_schema, sort_keys=True))
        error = jsonschema.exceptions.best_match(validator.iter_errors(args.result))
        if error is not None:  # the same error jsonschema.validate would raise
            return (f"error: your result does not match the required schema: {error.message}; "
                    "fix it and call finish again")
    return Finish(call, args)


def parse_spawn(tools: ToolRegistry, spec: AgentSpec, call: ToolCall) -> Spawn | str:
    """The sub-agents a spawn call asks for, if the spec allows them, or an error for the model."""
    tool = tools.get("spawn_agents")
    assert tool is not None
    try:
        args = tool.parse(call.arguments)
    except ToolError as exc:
        return f"error: {exc}"
    assert isinstance(args, SpawnArgs)
    bad = [r.spec for r in args.agents if r.spec not in spec.subagents]
    if bad:
        return (f"error: you may not start {', '.join(sorted(set(bad)))}; allowed sub-agents: "
                f"{', '.join(spec.subagents) or 'none'}")
    return Spawn(call, [ChildRequest(r.spec, r.task, r.input, key=str(i)) for i, r in enumerate(args.agents)])
