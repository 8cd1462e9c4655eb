"""The tool contract: what a tool is, what it may touch, and what it returns to the model.

A tool validates its arguments with a pydantic model (whose JSON schema is what the model sees),
runs with a :class:`ToolContext` that is passed in (no globals), and returns a :class:`ToolResult`.
Failures are results (``is_error=True``) that go back to the model; raise :class:`ToolError` inside a
tool for an expected failure. ``idempotent`` says whether the runner may simply run the call again
after a worker died mid-call; a non-idempotent call that was interrupted is reported to the model
as interrupted instead of being repeated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from swarm_tasks.errors import BudgetExceeded, LoopDetected, StoppedBySignal, ToolError

if TYPE_CHECKING:
    from coordination.run import RunState
    from swarm_tasks.host.sandbox import Sandbox
    from swarm_tasks.settings import SwarmSettings


class ToolArgs(BaseModel):
    """Base of every tool's argument model: unknown arguments are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call returns. ``content`` goes to the model; ``data`` is structured, for the runner."""

    content: str
    is_error: bool = False
    data: JsonValue = None

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(content=f"error: {message}", is_error=True)


@dataclass
class ToolContext:
    """Everything a tool call may use. Built by the runner for each call."""

    run_id: str
    agent_id: str
    role: str
    call_id: str
    workspace: Path
    settings: SwarmSettings
    state: RunState | None = None
    sandbox: Sandbox | None = None
    # host directories a sandboxed command may read besides the workspace, vouched for by the worker
    read_only: tuple[Path, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)


class Tool(ABC):
    """One tool the model can call."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ToolArgs]]
    idempotent: ClassVar[bool] = True

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI function-calling format (what litellm passes to every provider).

        Built once per tool: generating a pydantic JSON schema costs more CPU than a whole model call's
        bookkeeping, and a schema never changes."""
        cached: dict[str, Any] | None = getattr(self, "_schema", None)
        if cached is None:
            params = self.Args.model_json_schema()
            params.pop("title", None)
            cached = {"type": "function", "function": {
                "name": self.name, "description": self.description, "parameters": params}}
            self._schema = cached
        return cached

    def parse(self, raw: str | dict[str, Any] | None) -> ToolArgs:
        """Validate raw JSON arguments; :class:`ToolError` with a message the model can act on."""
        try:
            if raw is None or raw == "":
                return self.Args.model_validate({})
            if isinstance(raw, str):
                return self.Args.model_validate_json(raw)
            return self.Args.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'arguments'}: {e.get('msg')}" for e in exc.errors())
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None

    @abstractmethod
    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        """Do the work. Blocking is fine: the runner calls tools in a thread pool."""


def run_tool(tool: Tool, raw_args: str | dict[str, Any] | None, ctx: ToolContext) -> ToolResult:
    """Parse and run one call; every failure becomes an error result, never an exception."""
    try:
        return tool.run(tool.parse(raw_args), ctx)
    except ToolError as exc:
        return ToolResult.error(str(exc))
    except (BudgetExceeded, LoopDetected):
        raise  # contract violations stop the agent; they are not the model's to handle
    except StoppedBySignal:
        raise  # the worker is stopping: the turn is redone, the model never sees a half-done tool
    except Exception as exc:  # a tool bug must not crash the worker; the model hears about it
        return ToolResult.error(f"{tool.name} failed unexpectedly: {type(exc).__name__}: {exc}")
