"""The ``scripted`` litellm provider: ``litellm.acompletion(model="scripted/<name>", ...)`` plays a script.

It sits behind litellm's own custom-provider hook (``litellm.custom_provider_map`` + ``CustomLLM``), so
every caller goes through the real litellm code path (parameter handling, logging, exception types)
and only the network is replaced. ``<name>`` is a script file (see :mod:`swarm_tasks.models.script`)
or ``py:<module>:<callable>``. A call may pass ``script_dirs=[...]`` (litellm forwards unknown
keyword arguments to custom providers) to search its own directories first. Streaming is not supported.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# litellm as set up for us (offline price map, quiet), see litellm_setup.
from swarm_tasks.models.litellm_setup import litellm
from swarm_tasks.models.script import Rendered, ScriptResolver, Step, render_step
from swarm_tasks.models.types import ChatMessage

PROVIDER = "scripted"
_MAX_TRACKED = 10_000
_register_lock = threading.Lock()
_handler: ScriptedLLM | None = None


def _raise_for(step: Step, model: str) -> None:
    """Fail the way a real provider would, with litellm's exception classes (the gateway retries these)."""
    if step.error is None:
        return
    message = f"scripted {step.error} from {model}"
    if step.error == "rate_limit":
        headers = ({"retry-after-ms": str(int(step.retry_after_s * 1000))}
                   if step.retry_after_s is not None else None)
        raise litellm.RateLimitError(message=message, llm_provider=PROVIDER, model=model, headers=headers)
    if step.error == "context_length":
        raise litellm.ContextWindowExceededError(message=f"{message}: the prompt is longer than the model's "
                                                 "context window", model=model, llm_provider=PROVIDER)
    if step.error == "timeout":
        raise litellm.Timeout(message=message, model=model, llm_provider=PROVIDER)
    if step.error == "server_error":
        raise litellm.InternalServerError(message=message, llm_provider=PROVIDER, model=model)
    if step.error == "bad_request":
        raise litellm.BadRequestError(message=message, model=model, llm_provider=PROVIDER)


def _timeout_s(timeout: object) -> float | None:
    if isinstance(timeout, (int, float)):
        return float(timeout)
    read = getattr(timeout, "read", None)  # httpx.Timeout
    return float(read) if isinstance(read, (int, float)) else None


def _usage(step: Step, rendered: Rendered, messages: list[ChatMessage]) -> dict[str, int]:
    if step.usage is not None:
        prompt, completion = step.usage.prompt_tokens, step.usage.completion_tokens
    else:
        prompt = litellm.token_counter(messages=messages,  # type: ignore[arg-type]
                                       use_default_image_token_count=True)
        text = (rendered.content or "") + "".join(c.name + c.arguments for c in rendered.tool_calls)
        completion = litellm.token_counter(text=text) if text else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class ScriptedLLM(litellm.CustomLLM):
    """Plays scripts for litellm. Stateless per call; safe to share across threads and event loops."""

    def __init__(self, resolver: ScriptResolver) -> None:
        super().__init__()
        self.resolver = resolver
        self._failures: dict[bytes, int] = {}  # conversation digest -> failures played (fail_times)
        self._failures_lock = threading.Lock()

    def _fails_now(self, model: str, messages: list[ChatMessage], step: Step) -> bool:
        if step.error is None:
            return False
        if step.fail_times is None:
            return True
        text = json.dumps([model, messages], sort_keys=True, default=str)
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        with self._failures_lock:
            played = self._failures.get(key, 0)
            if played >= step.fail_times:
                return False
            if len(self._failures) >= _MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))  # oldest first: dicts keep insertion order
            self._failures[key] = played + 1
            return True

    def _plan(self, model: str, messages: list[ChatMessage],
              optional_params: dict[str, Any]) -> tuple[Step, Rendered]:
        tools = optional_params.get("tools")
        dirs = optional_params.get("script_dirs") or ()  # litellm hands unknown kwargs to custom providers
        try:
            step, values = self.resolver.step_for(model, messages, tools, dirs)
        except FileNotFoundError as exc:
            # As a provider says of an unknown model; litellm would wrap a bare exception as a
            # (retryable) connection error.
            raise litellm.NotFoundError(message=str(exc), model=model, llm_provider=PROVIDER) from exc
        except (ValueError, TypeError, ImportError, AttributeError) as exc:  # bad script, name or callable
            raise litellm.BadRequestError(message=f"scripted/{model}: {exc}", model=model,
                                          llm_provider=PROVIDER) from exc
        return step, render_step(step, values)

    def _respond(self, model: str, messages: list[ChatMessage], step: Step,
                 rendered: Rendered) -> litellm.ModelResponse:
        if self._fails_now(model, messages, step):
            _raise_for(step, f"{PROVIDER}/{model}")
        turn = sum(1 for m in messages if m["role"] == "assistant") + 1
        tool_calls = [
            {"id": f"call_{turn}_{i}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(rendered.tool_calls)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": rendered.content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return litellm.ModelResponse(
            model=f"{PROVIDER}/{model}",
            choices=[{"index": 0, "message": message, "finish_reason": rendered.finish_reason}],
            usage=_usage(step, rendered, messages),
        )

    def _delay(self, step: Step, model: str, timeout: object) -> tuple[float, bool]:
        """Seconds to wait, and whether the caller's timeout runs out first."""
        limit = _timeout_s(timeout)
        if limit is not None and step.delay_s > limit:
            return limit, True
        return step.delay_s, False

    def completion(  # type: ignore[override]
        self, model: str, messages: list[ChatMessage], *args: Any, **kwargs: Any,
    ) -> litellm.ModelResponse:
        step, rendered = self._plan(model, messages, kwargs.get("optional_params") or {})
        wait, timed_out = self._delay(step, model, kwargs.get("timeout"))
        if wait > 0:
            time.sleep(wait)
        if timed_out:
            raise litellm.Timeout(message=f"no reply within {wait:g}s", model=model, llm_provider=PROVIDER)
        return self._respond(model, messages, step, rendered)

    async def acompletion(  # type: ignore[override]
        self, model: str, messages: list[ChatMessage], *args: Any, **kwargs: Any,
    ) -> litellm.ModelResponse:
        step, rendered = self._plan(model, messages, kwargs.get("optional_params") or {})
        wait, timed_out = self._delay(step, model, kwargs.get("timeout"))
        if wait > 0:
            await asyncio.sleep(wait)
        if timed_out:
            raise litellm.Timeout(message=f"no reply within {wait:g}s", model=model, llm_provider=PROVIDER)
        return self._respond(model, messages, step, rendered)


def register_scripted_provider(search_paths: Sequence[Path] = ()) -> ScriptedLLM:
    """Register the ``scripted`` provider with litellm once per process; later calls add search paths.

    Built-in scripts (``swarm_tasks/models/scripts``) are always searched first.
    """
    global _handler  # noqa: PLW0603 - one provider per process, as litellm's registry is global
    with _register_lock:
        if _handler is None:
            _handler = ScriptedLLM(ScriptResolver(search_paths))
        else:
            _handler.resolver.add_paths(search_paths)
        if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": _handler})
        # litellm also does this on every call; doing it now lets get_llm_provider know "scripted" at once.
        litellm.utils.custom_llm_setup()
        return _handler
