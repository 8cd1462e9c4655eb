"""The one door to language models: litellm calls with retries, fallbacks, accounting and a guard.

Every model call in swarm-tasks goes through :class:`ModelGateway`. It calls ``litellm.acompletion``
(the real code path for every provider, including the ``scripted`` test provider), retries only
errors worth retrying (rate limit, timeout, 5xx, connection) with jittered backoff, then tries the
fallback models, and returns a :class:`ModelReply` with tokens, cost and latency. With
``model_guard="local-only"`` it refuses, before any I/O, every call that could leave this machine.
"""

from __future__ import annotations

import os

# litellm fetches its price map from GitHub at import time unless this is set: offline that costs
# seconds per process (and is network I/O tests must never do). It must be set before the first
# import of litellm anywhere, so every module of ours that uses litellm imports this one first.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import json
import random
import time
import uuid
import warnings
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import litellm

from swarm_tasks.errors import ModelError, RealProviderBlocked
from swarm_tasks.models.types import ChatMessage, ModelReply, ToolCall
from swarm_tasks.settings import SwarmSettings

# Offline and quiet: no HuggingFace tokenizer downloads (llama/cohere models would try), and no
# "Give Feedback / Get Help" banner printed to stdout on every exception (thousands under retries).
litellm.disable_hf_tokenizer_download = True
litellm.suppress_debug_info = True


def _prebuild_response_types() -> None:
    """Build litellm's lazily built response models now, quietly: the first build warns (pydantic on a
    ReadOnly TypedDict item of litellm's), and a warning inside a call would surface as its failure
    wherever warnings are errors (our tests) -- litellm wraps it in APIConnectionError."""
    from litellm.types import utils as types

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for cls in (types.Message, types.Delta, types.Choices, types.StreamingChoices, types.Usage,
                    types.ModelResponse, types.ModelResponseStream):
            cls.model_rebuild()


_prebuild_response_types()

SCRIPTED_PREFIX = "scripted/"
UNKNOWN_CONTEXT_WINDOW = 128_000
# These authenticate out of band (cloud IAM / OAuth endpoints), so a loopback api_base does not
# keep them on this machine.
_OUT_OF_BAND_AUTH = ("vertex_ai", "vertex_ai_beta", "bedrock", "sagemaker", "sagemaker_chat", "watsonx")
_RETRYABLE: tuple[type[BaseException], ...] = (
    litellm.RateLimitError, litellm.Timeout, litellm.APIConnectionError, litellm.InternalServerError,
    litellm.ServiceUnavailableError, litellm.BadGatewayError, TimeoutError,
)
_BACKSTOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Jittered exponential backoff between retries of one model: base * 2**n, capped, times U(0.5, 1)."""

    base_s: float = 0.5
    cap_s: float = 20.0

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        wait = min(self.cap_s, self.base_s * (2 ** retry)) * rng.uniform(0.5, 1.0)
        if retry_after is not None:  # the provider said when; respect it within our cap
            wait = max(wait, min(retry_after, self.cap_s))
        return wait


@lru_cache(maxsize=64)
def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False  # any other name needs DNS and may resolve anywhere


def provider_of(model: str) -> str:
    """litellm's provider for ``model`` ("openai" for a bare "gpt-4o"); "" if litellm cannot tell."""
    if model.startswith(SCRIPTED_PREFIX):
        return "scripted"
    try:
        return str(litellm.get_llm_provider(model)[1])
    except Exception:
        return model.split("/", 1)[0] if "/" in model else ""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _RETRYABLE):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status >= 500 or status in (408, 409, 429))


def classify(exc: BaseException | None) -> tuple[str, bool]:
    """The reason class (a :class:`swarm_tasks.outcome.ReasonClass` value) of a failed call, and whether
    it is permanent (another try cannot help: a refused key, an unknown model)."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status in (401, 403):
        return "auth", True
    if isinstance(exc, litellm.NotFoundError) or status == 404:
        return "model_error", True
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return "rate_limit", False
    if isinstance(exc, (litellm.Timeout, TimeoutError)) or status == 408:
        return "timeout", False
    if isinstance(exc, litellm.APIConnectionError):
        return "unreachable", False
    return "model_error", False


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _describe(exc: BaseException) -> str:
    # First line only: litellm appends whole tracebacks to some messages (the cause keeps them).
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


class ModelGateway:
    """Model calls for one process, configured by :class:`SwarmSettings`. Safe to share across tasks."""

    def __init__(self, settings: SwarmSettings, *, backoff: Backoff | None = None,
                 rng: random.Random | None = None) -> None:
        from swarm_tasks.models.scripted import register_scripted_provider  # it imports this module

        self.settings = settings
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        # The state dir goes with each call, not into the process-wide registration, so gateways with
        # different settings in one process each find their own scripts.
        self._resolver = register_scripted_provider().resolver
        self._script_dirs = [str(settings.state_dir / "scripts")]
        self._api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._windows: dict[str, int] = {}
        self._no_cost: set[str] = set()
        self._cleared: set[str] = set()  # models the guard already let through

    # -- the guard --------------------------------------------------------------------------------

    def check_guard(self, model: str) -> None:
        """Raise :class:`RealProviderBlocked` if the guard forbids calling ``model`` as configured."""
        if self.settings.model_guard == "off" or model in self._cleared:
            return
        provider = provider_of(model)
        if provider != "scripted":
            base = self.settings.api_base
            if not is_loopback_url(base):
                raise RealProviderBlocked(
                    f"model guard (local-only) refused {model!r}: provider {provider or '?'!r} with "
                    f"api_base {base!r} would leave this machine; use scripted/<name> or a loopback api_base")
            if provider in _OUT_OF_BAND_AUTH:
                raise RealProviderBlocked(
                    f"model guard (local-only) refused {model!r}: {provider} authenticates over the network")
        self._cleared.add(model)

    # -- calls ------------------------------------------------------------------------------------

    def _chain(self, model: str, fallbacks: list[str] | None) -> list[str]:
        extra = self.settings.model_fallbacks if fallbacks is None else fallbacks
        return [model, *(m for m in dict.fromkeys(extra) if m != model)]

    def _request(self, model: str, messages: list[ChatMessage], tools: list[dict[str, Any]] | None,
                 timeout_s: float) -> dict[str, Any]:
        self.check_guard(model)
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": timeout_s}
        if tools:
            kwargs["tools"] = tools
        if model.startswith(SCRIPTED_PREFIX):
            kwargs["script_dirs"] = self._script_dirs
        else:
            # We are the only retry layer: the OpenAI SDK under litellm would otherwise retry twice more.
            kwargs["max_retries"] = 0
            if self.settings.api_base:
                kwargs["api_base"] = self.settings.api_base
            if self._api_key:
                kwargs["api_key"] = self._api_key
        return kwargs

    def _after_error(self, exc: BaseException, model: str, retry: int, errors: list[str]) -> float | None:
        """Record ``exc``; the seconds to wait before retrying ``model``, or None to move on."""
        errors.append(f"{model}: {_describe(exc)}")
        if retry >= self.settings.model_retries or not is_retryable(exc):
            return None
        return self.backoff.delay(retry, self._rng, _retry_after(exc))

    def _failure(self, chain: list[str], attempts: int, errors: list[str], last: BaseException | None,
                 model: str) -> ModelError:
        tried = ", ".join(chain)
        kind, permanent = classify(last)
        status = getattr(last, "status_code", None)
        return ModelError(f"model call failed: {tried} ({attempts} attempts); last error: "
                          f"{errors[-1] if errors else 'none'}", kind=kind, model=model, permanent=permanent,
                          status_code=status if isinstance(status, int) else None,
                          advice=self.credential_advice(model) if kind == "auth" else "")

    def credential_advice(self, model: str) -> str:
        """What to do when the provider refused the key for ``model``: the variable to set or check."""
        if self._api_key:
            return "check SWARM_API_KEY (the key passed to every model call)"
        provider = provider_of(model)
        try:
            missing = list(litellm.validate_environment(model=model).get("missing_keys") or [])
        except Exception:
            missing = []
        if missing:
            return "set " + " and ".join(missing)
        return f"check {provider.upper()}_API_KEY" if provider else "check the provider's API key"

    async def complete(self, model: str, messages: list[ChatMessage], *,
                       tools: list[dict[str, Any]] | None = None, fallbacks: list[str] | None = None,
                       timeout_s: float | None = None) -> ModelReply:
        """One model reply, after retries and fallbacks; :class:`ModelError` if every model failed.

        ``fallbacks`` (when given) replaces ``settings.model_fallbacks``. Each model gets
        ``1 + settings.model_retries`` attempts; only retryable errors are retried, any other moves on
        to the next model. :class:`RealProviderBlocked` (the guard) is raised at once, never retried.
        ``latency_s`` of the reply covers the whole call, retries included.
        """
        start = time.perf_counter()
        timeout = timeout_s or self.settings.model_timeout_s
        chain = self._chain(model, fallbacks)
        attempts, errors, last = 0, list[str](), None  # last: the exception to chain to the ModelError
        for current in chain:
            kwargs = self._request(current, messages, tools, timeout)
            for retry in range(self.settings.model_retries + 1):
                attempts += 1
                try:
                    # A backstop for providers that ignore their timeout; litellm's own fires first.
                    async with asyncio.timeout(timeout + _BACKSTOP_GRACE_S):
                        response = await litellm.acompletion(**kwargs)
                except Exception as exc:
                    last = exc
                    delay = self._after_error(exc, current, retry, errors)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                    continue
                return self._reply(response, current, messages, start, attempts, chain, errors)
        raise self._failure(chain, attempts, errors, last, current) from last

    def complete_sync(self, model: str, messages: list[ChatMessage], *,
                      tools: list[dict[str, Any]] | None = None, fallbacks: list[str] | None = None,
                      timeout_s: float | None = None) -> ModelReply:
        """:meth:`complete` for callers without an event loop (blocks the calling thread)."""
        start = time.perf_counter()
        timeout = timeout_s or self.settings.model_timeout_s
        chain = self._chain(model, fallbacks)
        attempts, errors, last = 0, list[str](), None  # last: the exception to chain to the ModelError
        for current in chain:
            kwargs = self._request(current, messages, tools, timeout)
            for retry in range(self.settings.model_retries + 1):
                attempts += 1
                try:
                    response = litellm.completion(**kwargs)
                except Exception as exc:
                    last = exc
                    delay = self._after_error(exc, current, retry, errors)
                    if delay is None:
                        break
                    time.sleep(delay)
                    continue
                return self._reply(response, current, messages, start, attempts, chain, errors)
        raise self._failure(chain, attempts, errors, last, current) from last

    # -- replies ----------------------------------------------------------------------------------

    def _reply(self, response: Any, model: str, messages: list[ChatMessage], start: float,
               attempts: int, chain: list[str], errors: list[str]) -> ModelReply:
        notes: list[str] = []
        if model != chain[0]:
            notes.append(f"fallback: {model} answered for {chain[0]}")
        if errors:
            notes.append(f"recovered after: {errors[-1]}")
        choices = getattr(response, "choices", None) or []
        choice = choices[0] if choices else None
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            content = str(content)
        raw_calls = getattr(message, "tool_calls", None) or ()
        calls = tuple(_tool_call(raw, i, notes) for i, raw in enumerate(raw_calls))
        if choice is None:
            notes.append("reply had no choices")
        prompt, completion = self._usage(response, model, messages, content, calls)
        return ModelReply(
            content=content, tool_calls=calls, model=model,
            prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=self._cost(response, model, prompt, completion),
            finish_reason=getattr(choice, "finish_reason", None),
            latency_s=time.perf_counter() - start, attempts=attempts, notes=tuple(notes),
        )

    def _usage(self, response: Any, model: str, messages: list[ChatMessage], content: str | None,
               calls: tuple[ToolCall, ...]) -> tuple[int, int]:
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if not isinstance(prompt, int):
            prompt = self.count_tokens(model, messages)
        if not isinstance(completion, int):
            text = (content or "") + "".join(c.name + c.arguments for c in calls)
            completion = litellm.token_counter(model=model, text=text) if text else 0
        return prompt, completion

    def _cost(self, response: Any, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.settings.model_prices.get(model)
        if price is not None:
            return price.cost_usd(prompt_tokens, completion_tokens)
        hidden = getattr(response, "_hidden_params", None)
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(cost, (int, float)):
            return float(cost)
        if model in self._no_cost:
            return 0.0
        try:
            return float(litellm.completion_cost(completion_response=response, model=model) or 0.0)
        except Exception:
            self._no_cost.add(model)  # no price known; don't pay for the failed lookup every call
            return 0.0

    # -- sizes ------------------------------------------------------------------------------------

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> int:
        """Prompt tokens of ``messages`` for ``model`` (offline; tiktoken when litellm knows no better)."""
        return int(litellm.token_counter(model=model, messages=messages,  # type: ignore[arg-type]
                                         use_default_image_token_count=True))

    def context_window(self, model: str) -> int:
        """Input tokens ``model`` accepts: the script's or 32,000 for scripted, 128,000 if unknown."""
        if model.startswith(SCRIPTED_PREFIX):
            return self._resolver.context_window(model.removeprefix(SCRIPTED_PREFIX), self._script_dirs)
        window = self._windows.get(model)
        if window is None:
            window = self._lookup_window(model)
            self._windows[model] = window
        return window

    def _lookup_window(self, model: str) -> int:
        try:
            self.check_guard(model)
        except RealProviderBlocked:
            # Some providers answer get_model_info over the network; the static map is enough here.
            entry = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/", 1)[-1]) or {}
            window = entry.get("max_input_tokens") or entry.get("max_tokens")
            return int(window) if isinstance(window, int) and window > 0 else UNKNOWN_CONTEXT_WINDOW
        try:
            info = litellm.get_model_info(model)
        except Exception:
            return UNKNOWN_CONTEXT_WINDOW
        window = info.get("max_input_tokens") or info.get("max_tokens")
        return int(window) if isinstance(window, int) and window > 0 else UNKNOWN_CONTEXT_WINDOW


def _tool_call(raw: Any, index: int, notes: list[str]) -> ToolCall:
    """A ToolCall from whatever the provider sent; never raises (the runner reports bad calls)."""
    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    function = get(raw, "function")
    name = get(function, "name") if function is not None else None
    arguments = get(function, "arguments") if function is not None else None
    call_id = get(raw, "id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        notes.append(f"tool call {index}: no id from the model; generated {call_id}")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        try:
            arguments = json.dumps(arguments)
        except (TypeError, ValueError):
            arguments = str(arguments)
    return ToolCall(id=call_id, name=name if isinstance(name, str) else "", arguments=arguments)
