"""Scripts: deterministic model behaviour for tests, demos and benchmarks, with no litellm import.

A :class:`Script` is a list of :class:`Step` replies. Selection is stateless (it reads only the
conversation), so the same conversation gets the same reply in any process, even after a crash:
the step index is the number of assistant messages already sent, a step whose ``when`` regex does
not match the last message is skipped, and past the end comes ``default`` or a ``finish`` call.
Both the scripted litellm provider and the mock HTTP server use this module.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from swarm_tasks.models.types import ChatMessage

BUILTIN_DIR = Path(__file__).with_name("scripts")
DEFAULT_CONTEXT_WINDOW = 32_000
PY_PREFIX = "py:"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_AGENT_RE = re.compile(r"agent_id:\s*([^\s,;]+)")
_TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

ErrorKind = Literal["rate_limit", "timeout", "server_error", "bad_request", "context_length"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptedCall(_Strict):
    """A tool call to make. ``arguments`` as a string is sent verbatim (it may be invalid JSON on purpose)."""

    name: str
    arguments: dict[str, JsonValue] | str = Field(default_factory=dict)


class StepUsage(_Strict):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class Step(_Strict):
    """One scripted reply (or failure)."""

    content: str | None = None
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    delay_s: float = Field(default=0.0, ge=0)
    error: ErrorKind | None = None
    fail_times: int | None = Field(
        default=None, ge=1, description="With error: fail only the first N calls for the same conversation "
        "(counted per process), then reply normally; lets a script show retries succeeding.")
    retry_after_s: float | None = Field(default=None, ge=0, description="With error rate_limit: the provider "
                                        "says when to retry (Retry-After and retry-after-ms headers).")
    usage: StepUsage | None = None
    when: str | None = Field(default=None, description="Regex the last message's content must match.")


FINISH_STEP = Step(tool_calls=[ScriptedCall(name="finish", arguments={"summary": "script exhausted"})])


class Script(_Strict):
    name: str
    context_window: int | None = Field(default=None, gt=0)
    steps: list[Step] = Field(default_factory=list)
    vars: dict[str, str] = Field(default_factory=dict, description="name -> regex on the first user message")
    default: Step | None = None

    @classmethod
    def decode(cls, text: str | bytes) -> Script:
        return cls.model_validate_json(text)

    def encode(self) -> str:
        return self.model_dump_json(exclude_defaults=True, indent=2)

    @classmethod
    def load(cls, path: Path) -> Script:
        stat = path.stat()
        return _load_cached(path, stat.st_mtime_ns, stat.st_size)

    def select(self, messages: Sequence[ChatMessage]) -> Step:
        """The step for this conversation (stateless, see the module docstring)."""
        index = assistant_turns(messages)
        last = _text(messages[-1].get("content")) if messages else ""
        for step in self.steps[index:]:
            if step.when is None or _compiled(step.when).search(last):
                return step
        return self.default or FINISH_STEP

    def variables(self, messages: Sequence[ChatMessage]) -> dict[str, str]:
        """``vars`` read from the first user message (group 1, or the whole match), plus turn and agent."""
        first_user = next((_text(m.get("content")) for m in messages if m["role"] == "user"), "")
        values = base_variables(messages)
        for name, pattern in self.vars.items():
            match = _compiled(pattern).search(first_user)
            values[name] = (match.group(1) if match.groups() else match.group(0)) if match else ""
        return values


@lru_cache(maxsize=256)
def _load_cached(path: Path, _mtime_ns: int, _size: int) -> Script:
    # Keyed on mtime and size so an edited script file is re-read without a restart.
    return Script.decode(path.read_bytes())


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _text(content: object) -> str:
    """Message content as text; list-of-parts content (multimodal) is joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def assistant_turns(messages: Sequence[ChatMessage]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def base_variables(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """``turn`` (1-based number of the reply being made) and ``agent`` (from ``agent_id: X``)."""
    agent = ""
    for m in messages:
        if m["role"] == "system":
            match = _AGENT_RE.search(_text(m.get("content")))
            agent = match.group(1) if match else ""
            break
    return {"turn": str(assistant_turns(messages) + 1), "agent": agent}


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{{name}}``; unknown names stay as written so a typo is visible in the output."""
    if "{{" not in template:
        return template
    return _TEMPLATE_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _render_json(value: JsonValue, values: Mapping[str, str]) -> JsonValue:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [_render_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _render_json(v, values) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class RenderedCall:
    name: str
    arguments: str  # JSON text (or the script's verbatim string)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A step with its templates filled: what a provider sends back."""

    step: Step
    content: str | None
    tool_calls: tuple[RenderedCall, ...]

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def render_step(step: Step, values: Mapping[str, str]) -> Rendered:
    calls = tuple(
        RenderedCall(
            name=render(c.name, values),
            arguments=render(c.arguments, values) if isinstance(c.arguments, str)
            else json.dumps(_render_json(c.arguments, values)),
        )
        for c in step.tool_calls
    )
    content = render(step.content, values) if step.content is not None else None
    return Rendered(step=step, content=content, tool_calls=calls)


ScriptCallable = Callable[[list[ChatMessage], list[dict[str, Any]] | None], Step]


@lru_cache(maxsize=128)
def load_callable(spec: str) -> ScriptCallable:
    """``py:package.module:function`` -> the function (imported once per process)."""
    body = spec.removeprefix(PY_PREFIX)
    module_name, _, attr = body.partition(":")
    if not module_name or not attr:
        raise ValueError(f"scripted model {spec!r}: expected py:<module>:<callable>")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"scripted model {spec!r}: {attr} is not callable")
    return target  # type: ignore[no-any-return]


class ScriptResolver:
    """Finds the script behind ``scripted/<name>``: built-ins, then the call's own directories (the
    gateway passes ``<state_dir>/scripts``), then the search paths given at registration."""

    def __init__(self, search_paths: Sequence[Path] = ()) -> None:
        self.search_paths: list[Path] = []
        self.add_paths(search_paths)

    def add_paths(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if Path(path) not in self.search_paths:
                self.search_paths.append(Path(path))

    def find(self, name: str, dirs: Sequence[str | Path] = ()) -> Path:
        if not _NAME_RE.match(name) or ".." in name:
            raise ValueError(f"invalid script name {name!r}")
        where = (BUILTIN_DIR, *(Path(d) for d in dirs), *self.search_paths)
        for directory in where:
            candidate = directory / f"{name}.json"
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no script named {name!r} (looked in {', '.join(map(str, where))})")

    def step_for(self, name: str, messages: list[ChatMessage], tools: list[dict[str, Any]] | None,
                 dirs: Sequence[str | Path] = ()) -> tuple[Step, dict[str, str]]:
        """The step to play for ``scripted/<name>`` and the template values to fill it with."""
        if name.startswith(PY_PREFIX):
            step = load_callable(name)(messages, tools)
            if not isinstance(step, Step):
                raise TypeError(f"{name} returned {type(step).__name__}, expected Step")
            return step, base_variables(messages)
        script = Script.load(self.find(name, dirs))
        return script.select(messages), script.variables(messages)

    def context_window(self, name: str, dirs: Sequence[str | Path] = ()) -> int:
        if name.startswith(PY_PREFIX):
            window = getattr(load_callable(name), "context_window", None)
            return window if isinstance(window, int) and window > 0 else DEFAULT_CONTEXT_WINDOW
        try:
            script = Script.load(self.find(name, dirs))
        except (FileNotFoundError, ValueError):
            return DEFAULT_CONTEXT_WINDOW
        return script.context_window or DEFAULT_CONTEXT_WINDOW
