"""The one door to language models: litellm calls with keys, limits, retries, fallbacks, accounting, a guard.

Every model call in swarm-tasks goes through :class:`ModelGateway`. For each call it picks the
endpoint and key of the model and role (``SWARM_MODEL_OPTIONS``, else ``SWARM_API_BASE``/``_KEY``,
else the provider's own variables), sends ``max_tokens``, waits for admission by the limiter shared
with every worker (a model's calls in flight and per minute), calls ``litellm.acompletion`` (the real
code path for every provider, the ``scripted`` test provider included), retries only errors worth
retrying (rate limit, timeout, 5xx, connection) after the provider's ``Retry-After`` or the project's
jittered backoff, then tries the fallback models. A prompt too long for the window is never re-sent:
:class:`ContextOverflow` tells the caller to compact. A call that timed out is charged what it may
have cost (its prompt and its output cap, priced). With ``model_guard="local-only"`` it refuses,
before any I/O, every call that could leave this machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from coordination.backoff import Backoff
from swarm_tasks.errors import ContextOverflow, ModelError, RealProviderBlocked
from swarm_tasks.models.catalog import SCRIPTED_PREFIX, UNKNOWN_CONTEXT_WINDOW, ModelCatalog
from swarm_tasks.models.litellm_setup import litellm
from swarm_tasks.models.types import ChatMessage, ModelReply, ToolCall
from swarm_tasks.settings import SwarmSettings

if TYPE_CHECKING:
    from coordination.limiter import CallLimiter

# These authenticate out of band (cloud IAM / OAuth endpoints), so a loopback api_base does not
# keep them on this machine.
_OUT_OF_BAND_AUTH = ("vertex_ai", "vertex_ai_beta", "bedrock", "sagemaker", "sagemaker_chat", "watsonx")
_RETRYABLE: tuple[type[BaseException], ...] = (
    litellm.RateLimitError, litellm.Timeout, litellm.APIConnectionError, litellm.InternalServerError,
    litellm.ServiceUnavailableError, litellm.BadGatewayError, TimeoutError,
)
_BACKSTOP_GRACE_S = 5.0
MODEL_BACKOFF = Backoff(base_s=0.5, cap_s=20.0, jitter="equal")
ADMISSION_BACKOFF = Backoff(base_s=0.02, cap_s=1.0, jitter="equal")  # asking the shared limiter again
MAX_IN_CALL_WAIT_S = 60.0  # a longer Retry-After ends the call; the agent's next turn comes after it

__all__ = ["MODEL_BACKOFF", "UNKNOWN_CONTEXT_WINDOW", "Backoff", "ModelGateway", "is_retryable", "litellm",
           "retry_after_s"]


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
    if isinstance(exc, litellm.ContextWindowExceededError):
        return False
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


def _headers(exc: BaseException) -> dict[str, str]:
    """The provider's HTTP headers on a litellm exception, lower-cased (litellm keeps them in
    ``litellm_response_headers``; the wrapped response has them too for some providers)."""
    found: dict[str, str] = {}
    for source in (getattr(getattr(exc, "response", None), "headers", None), getattr(exc, "headers", None),
                   getattr(exc, "litellm_response_headers", None)):
        if source is None:
            continue
        items = source.items() if hasattr(source, "items") else []
        found.update({str(k).lower(): str(v) for k, v in items})
    return found


def retry_after_s(exc: BaseException, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an
    HTTP date); None if it did not say."""
    headers = _headers(exc)
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value).timestamp()
            return max(0.0, when - (time.time() if now is None else now))
    except (TypeError, ValueError, OverflowError):
        return None


_WINDOW_PATTERNS = (
    re.compile(r"maximum context length is (\d+)", re.I),  # OpenAI, vLLM, most OpenAI-compatible servers
    re.compile(r"\d+\s*tokens?\s*>\s*(\d+)\s*maximum", re.I),  # Anthropic: "210000 tokens > 200000 maximum"
    re.compile(r"context (?:length|window) (?:of|is) (\d+)", re.I),
)


def window_in(message: str) -> int | None:
    """The context window a provider's context-length error states, if it states one."""
    for pattern in _WINDOW_PATTERNS:
        found = pattern.search(message)
        if found:
            return int(found.group(1))
    return None


def _describe(exc: BaseException) -> str:
    # First line only: litellm appends whole tracebacks to some messages (the cause keeps them).
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


@dataclass
class _Charged:
    """What failed attempts of one call cost (a timed-out request was processed, and billed)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True

    def onto(self, error: ModelError) -> ModelError:
        error.charged_prompt_tokens, error.charged_completion_tokens = self.prompt_tokens, self.completion_tokens
        error.charged_cost_usd = self.cost_usd
        return error


class ModelGateway:
    """Model calls for one process, configured by :class:`SwarmSettings`. Safe to share across tasks."""

    def __init__(self, settings: SwarmSettings, *, backoff: Backoff | None = None,
                 rng: random.Random | None = None, limiter: CallLimiter | None = None) -> None:
        from swarm_tasks.models.scripted import register_scripted_provider  # it imports litellm_setup

        self.settings = settings
        self.backoff = backoff or MODEL_BACKOFF
        self.limiter = limiter
        self._rng = rng or random.Random()
        # The state dir goes with each call, not into the process-wide registration, so gateways with
        # different settings in one process each find their own scripts.
        self._resolver = register_scripted_provider().resolver
        self._script_dirs = [str(settings.state_dir / "scripts")]
        self.catalog = ModelCatalog(settings, self._resolver, self._script_dirs)
        self._cleared: set[tuple[str, str | None]] = set()  # (model, role) the guard already let through

    # -- the guard --------------------------------------------------------------------------------

    def check_guard(self, model: str, role: str | None = None) -> None:
        """Raise :class:`RealProviderBlocked` if the guard forbids calling ``model`` as configured."""
        if self.settings.model_guard == "off" or (model, role) in self._cleared:
            return
        provider = provider_of(model)
        if provider != "scripted":
            base = self.settings.endpoint_for(model, role).api_base
            if not is_loopback_url(base):
                raise RealProviderBlocked(
                    f"model guard (local-only) refused {model!r}: provider {provider or '?'!r} with "
                    f"api_base {base!r} would leave this machine; use scripted/<name> or a loopback api_base")
            if provider in _OUT_OF_BAND_AUTH:
                raise RealProviderBlocked(
                    f"model guard (local-only) refused {model!r}: {provider} authenticates over the network")
        self._cleared.add((model, role))

    # -- calls ------------------------------------------------------------------------------------

    def _chain(self, model: str, fallbacks: list[str] | None) -> list[str]:
        extra = self.settings.model_fallbacks if fallbacks is None else fallbacks
        return [model, *(m for m in dict.fromkeys(extra) if m != model)]

    def _request(self, model: str, messages: list[ChatMessage], tools: list[dict[str, Any]] | None,
                 timeout_s: float, role: str | None) -> dict[str, Any]:
        self.check_guard(model, role)
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": timeout_s,
                                  "max_tokens": self.catalog.output_cap(model, role)}
        if tools:
            kwargs["tools"] = tools
        if model.startswith(SCRIPTED_PREFIX):
            kwargs["script_dirs"] = self._script_dirs
            return kwargs
        # We are the only retry layer: the OpenAI SDK under litellm would otherwise retry twice more.
        kwargs["max_retries"] = 0
        endpoint = self.settings.endpoint_for(model, role)
        if endpoint.api_base:
            kwargs["api_base"] = endpoint.api_base
        if endpoint.api_key is not None:
            kwargs["api_key"] = endpoint.api_key.get_secret_value()
        elif endpoint.key_env:
            raise ModelError(f"{model}: its key variable {endpoint.key_env} (SWARM_MODEL_OPTIONS) is not set "
                             "in this worker's environment", kind="auth", model=model, permanent=True,
                             advice=f"set {endpoint.key_env} where the workers run")
        return kwargs

    async def _admit(self, model: str, role: str | None, timeout_s: float) -> str | None:
        """Wait for a slot of ``model`` under the limits shared by every worker; the token to release."""
        options = self.settings.options_for(model, role)
        if self.limiter is None or not (options.max_concurrent_calls or options.requests_per_minute):
            return None
        limiter, lease = self.limiter, timeout_s + _BACKSTOP_GRACE_S + 5.0
        patience = max(600.0, 10 * timeout_s)
        deadline = time.monotonic() + patience
        attempt = 0
        while True:
            admission = await asyncio.to_thread(limiter.try_acquire, model, lease_s=lease,
                                                max_in_flight=options.max_concurrent_calls,
                                                per_minute=options.requests_per_minute)
            if admission.token is not None:
                return admission.token
            if time.monotonic() > deadline:
                raise ModelError(f"{model}: no call slot within {patience:.0f}s under its shared limits "
                                 f"(max_concurrent_calls={options.max_concurrent_calls}, "
                                 f"requests_per_minute={options.requests_per_minute})")
            await asyncio.sleep(ADMISSION_BACKOFF.delay(attempt, self._rng, admission.wait_s or None))
            attempt += 1

    async def _release(self, model: str, token: str | None) -> None:
        if token is not None and self.limiter is not None:
            await asyncio.to_thread(self.limiter.release, model, token)

    def _after_error(self, exc: BaseException, model: str, retry: int, errors: list[str]) -> float | None:
        """Record ``exc``; the seconds to wait before retrying ``model``, or None to move on."""
        errors.append(f"{model}: {_describe(exc)}")
        if retry >= self.settings.model_retries or not is_retryable(exc):
            return None
        asked = retry_after_s(exc)
        if asked is not None and asked > MAX_IN_CALL_WAIT_S:
            return None  # not within this call: the agent's next turn is scheduled after it
        return self.backoff.delay(retry, self._rng, asked)

    def _charge(self, exc: BaseException, model: str, kwargs: dict[str, Any], charged: _Charged) -> None:
        """A timed-out request was processed and may have produced up to its output cap: charge that
        (estimated: the provider never said), so budgets do not see it as free."""
        if not isinstance(exc, (litellm.Timeout, TimeoutError)):
            return
        try:
            prompt = self.catalog.count_tokens(model, kwargs["messages"], kwargs.get("tools"))
        except Exception:
            prompt = 0
        completion = int(kwargs.get("max_tokens") or 0)
        cost = self.catalog.cost_usd(model, prompt, completion)
        charged.prompt_tokens += prompt
        charged.completion_tokens += completion
        charged.cost_usd += cost or 0.0
        charged.priced = charged.priced and cost is not None

    def _failure(self, chain: list[str], attempts: int, errors: list[str], charged: _Charged,
                 last: BaseException | None, model: str, role: str | None) -> ModelError:
        tried = ", ".join(chain)
        kind, permanent = classify(last)
        status = getattr(last, "status_code", None)
        error = ModelError(f"model call failed: {tried} ({attempts} attempts); last error: "
                           f"{errors[-1] if errors else 'none'}", kind=kind, model=model, permanent=permanent,
                           status_code=status if isinstance(status, int) else None,
                           advice=self.credential_advice(model, role) if kind == "auth" else "")
        charged.onto(error)
        error.retry_after_s = retry_after_s(last) if last is not None else None
        return error

    def credential_advice(self, model: str, role: str | None = None) -> str:
        """What to do when the provider refused the key for ``model``: the variable to set or check."""
        endpoint = self.settings.endpoint_for(model, role)
        if endpoint.key_env:
            return f"check {endpoint.key_env} (the key this worker passes for {model})"
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
                       timeout_s: float | None = None, role: str | None = None) -> ModelReply:
        """One model reply, after retries and fallbacks; :class:`ModelError` if every model failed.

        ``fallbacks`` (when given) replaces ``settings.model_fallbacks``. Each model gets
        ``1 + settings.model_retries`` attempts; only retryable errors are retried, any other moves on
        to the next model. :class:`RealProviderBlocked` (the guard) is raised at once, never retried;
        :class:`ContextOverflow` too (the same prompt would fail again). ``role`` picks the key and
        endpoint of the call. ``latency_s`` of the reply covers the whole call, retries included.
        """
        start = time.perf_counter()
        timeout = timeout_s or self.settings.model_timeout_s
        chain = self._chain(model, fallbacks)
        attempts, errors, last, charged = 0, list[str](), None, _Charged()
        for current in chain:
            kwargs = self._request(current, messages, tools, timeout, role)
            for retry in range(self.settings.model_retries + 1):
                attempts += 1
                token = await self._admit(current, role, timeout)
                try:
                    # A backstop for providers that ignore their timeout; litellm's own fires first.
                    async with asyncio.timeout(timeout + _BACKSTOP_GRACE_S):
                        response = await litellm.acompletion(**kwargs)
                except litellm.ContextWindowExceededError as exc:
                    told = window_in(str(exc))
                    if told:  # the provider knows its window better than any map: use it from now on
                        self.catalog.learn_window(current, told)
                    overflow = ContextOverflow(f"{current}: the prompt does not fit the model's context window "
                                               f"({self.catalog.context_window(current, role):,} tokens): "
                                               f"{_describe(exc)}", kind="model_error", model=current)
                    overflow.window_tokens = told
                    raise charged.onto(overflow) from exc
                except Exception as exc:
                    last = exc
                    self._charge(exc, current, kwargs, charged)
                    delay = self._after_error(exc, current, retry, errors)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                    continue
                finally:
                    await self._release(current, token)
                return self._reply(response, current, messages, start, attempts, chain, errors, charged)
        raise self._failure(chain, attempts, errors, charged, last, current, role) from last

    # -- replies ----------------------------------------------------------------------------------

    def _reply(self, response: Any, model: str, messages: list[ChatMessage], start: float,
               attempts: int, chain: list[str], errors: list[str], charged: _Charged) -> ModelReply:
        notes: list[str] = []
        if model != chain[0]:
            notes.append(f"fallback: {model} answered for {chain[0]}")
        if errors:
            notes.append(f"recovered after: {errors[-1]}")
        if charged.prompt_tokens or charged.completion_tokens:
            notes.append(f"charged ~{charged.prompt_tokens + charged.completion_tokens} tokens "
                         f"(${charged.cost_usd:.6f}) for timed-out attempts")
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
        cost, priced = self._cost(response, model, prompt, completion)
        return ModelReply(
            content=content, tool_calls=calls, model=model,
            prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost,
            finish_reason=getattr(choice, "finish_reason", None),
            latency_s=time.perf_counter() - start, attempts=attempts, notes=tuple(notes),
            priced=priced and charged.priced, failed_prompt_tokens=charged.prompt_tokens,
            failed_completion_tokens=charged.completion_tokens, failed_cost_usd=charged.cost_usd,
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

    def _cost(self, response: Any, model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
        """Dollars of a reply, and whether a price was known at all."""
        if model not in self.settings.model_prices:
            hidden = getattr(response, "_hidden_params", None)
            cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
            if isinstance(cost, (int, float)) and cost > 0:
                return float(cost), True
        known = self.catalog.cost_usd(model, prompt_tokens, completion_tokens)
        return (known, True) if known is not None else (0.0, False)

    # -- sizes ------------------------------------------------------------------------------------

    def count_tokens(self, model: str, messages: list[ChatMessage],
                     tools: list[dict[str, Any]] | None = None) -> int:
        """Prompt tokens of ``messages`` (and tools) for ``model`` (offline; tiktoken when litellm knows no better)."""
        return self.catalog.count_tokens(model, messages, tools)

    def context_window(self, model: str, role: str | None = None) -> int:
        """Input tokens ``model`` accepts (see :meth:`ModelCatalog.context_window`)."""
        return self.catalog.context_window(model, role)


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
