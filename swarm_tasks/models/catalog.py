"""What we know about a model: its context window, its output cap, its price, and how to count a prompt.

Settings first (``SWARM_MODEL_OPTIONS``, ``SWARM_MODEL_PRICES``), then litellm's model map (offline:
the gateway loads it locally), then stated defaults: an unknown window is 128,000 tokens, an unknown
output cap ``SWARM_MODEL_MAX_OUTPUT_TOKENS``, an unknown price "unknown" (never silently $0: the
preflight refuses a cost cap for it and warns otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swarm_tasks.models.litellm_setup import litellm
from swarm_tasks.models.script import ScriptResolver
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.settings import SwarmSettings

SCRIPTED_PREFIX = "scripted/"
UNKNOWN_CONTEXT_WINDOW = 128_000
_MESSAGE_OVERHEAD = 8  # tokens a provider adds per message (role, separators), counted generously


def bytes_bound(messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]] | None = None) -> int:
    """An upper bound of the prompt's tokens: a token covers at least one byte of UTF-8, plus overheads.
    Below a limit, the exact (costlier) count is not needed to know the prompt fits."""
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD + len((message.get("content") or "").encode())
        for call in message.get("tool_calls") or []:
            total += _MESSAGE_OVERHEAD + len(call["function"]["name"]) + len(call["function"]["arguments"].encode())
    if tools:
        total += sum(len(str(t).encode()) for t in tools)
    return total


class ModelCatalog:
    """Windows, output caps, prices and token counts, cached per process."""

    def __init__(self, settings: SwarmSettings, resolver: ScriptResolver, script_dirs: Sequence[str]) -> None:
        self.settings = settings
        self._resolver = resolver
        self._script_dirs = list(script_dirs)
        self._info: dict[str, dict[str, Any]] = {}
        self._learned: dict[str, int] = {}  # windows providers stated in context-length errors
        # Models litellm's (static, local) map cannot price: asking again raises again, and building the
        # exception each time was 3% of a model review worker's CPU (three asks per turn).
        self._unpriced: set[str] = set()

    # -- what litellm knows ------------------------------------------------------------------------
    def info(self, model: str) -> dict[str, Any]:
        """litellm's map entry for ``model`` ({} if it does not know it). Static lookup only: some
        providers' ``get_model_info`` would ask a server."""
        cached = self._info.get(model)
        if cached is None:
            entry = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/", 1)[-1]) or {}
            cached = self._info[model] = dict(entry) if isinstance(entry, dict) else {}
        return cached

    # -- sizes -------------------------------------------------------------------------------------
    def learn_window(self, model: str, tokens: int) -> None:
        """The provider said (in a context-length error) that ``model`` accepts ``tokens``: believe it."""
        if tokens > 0:
            self._learned[model] = min(tokens, self._learned.get(model, tokens))

    def context_window(self, model: str, role: str | None = None) -> int:
        """Prompt tokens ``model`` accepts: what its provider stated in an error, else SWARM_MODEL_OPTIONS,
        else the script's (scripted) or litellm's, else 128,000."""
        learned = self._learned.get(model)
        if learned:
            return learned
        configured = self.settings.options_for(model, role).context_window_tokens
        if configured:
            return configured
        if model.startswith(SCRIPTED_PREFIX):
            return self._resolver.context_window(model.removeprefix(SCRIPTED_PREFIX), self._script_dirs)
        entry = self.info(model)
        window = entry.get("max_input_tokens") or entry.get("max_tokens")
        return int(window) if isinstance(window, int) and window > 0 else UNKNOWN_CONTEXT_WINDOW

    def output_cap(self, model: str, role: str | None = None) -> int:
        """``max_tokens`` of a call: SWARM_MODEL_OPTIONS, else SWARM_MODEL_MAX_OUTPUT_TOKENS within the
        model's own output limit."""
        configured = self.settings.options_for(model, role).max_output_tokens
        if configured:
            return configured
        limit = self.info(model).get("max_output_tokens")
        default = self.settings.model_max_output_tokens
        return min(default, int(limit)) if isinstance(limit, int) and limit > 0 else default

    def prompt_budget(self, model: str, role: str | None = None) -> int:
        """Tokens a prompt may use: the window less room for the reply (never less than half the window,
        for models whose window and output cap are counted apart)."""
        window = self.context_window(model, role)
        return max(window // 2, window - self.output_cap(model, role))

    def count_tokens(self, model: str, messages: Sequence[ChatMessage],
                     tools: Sequence[dict[str, Any]] | None = None) -> int:
        """Prompt tokens of ``messages`` (and the tools' schemas) for ``model``, with litellm's counter."""
        return int(litellm.token_counter(model=model, messages=list(messages),  # type: ignore[arg-type]
                                         tools=list(tools) if tools else None,  # type: ignore[arg-type]
                                         use_default_image_token_count=True))

    def count_text(self, model: str, text: str) -> int:
        """Tokens of a plain text for ``model``."""
        return int(litellm.token_counter(model=model, text=text))

    def prompt_tokens(self, model: str, messages: Sequence[ChatMessage],
                      tools: Sequence[dict[str, Any]] | None = None, *, exact_above: int = 0) -> int:
        """The prompt's size: exact (litellm's counter) once its byte bound reaches ``exact_above``;
        below, the bound itself (it cannot be larger)."""
        bound = bytes_bound(messages, tools)
        return bound if bound < exact_above else self.count_tokens(model, messages, tools)

    # -- prices -------------------------------------------------------------------------------------
    def priced(self, model: str) -> bool:
        return price_known(model, self.settings)

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars for these tokens; None if no price is known."""
        price = self.settings.model_prices.get(model)
        if price is not None:
            return price.cost_usd(prompt_tokens, completion_tokens)
        if model.startswith(SCRIPTED_PREFIX):
            return 0.0
        if model in self._unpriced:
            return None
        try:
            prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens,
                                                        completion_tokens=completion_tokens)
        except Exception:
            self._unpriced.add(model)
            return None
        return float(prompt + completion)


def price_known(model: str, settings: SwarmSettings) -> bool:
    """A call to ``model`` can be priced: SWARM_MODEL_PRICES, litellm's map, or a scripted model (a test
    double, which truly costs nothing)."""
    if model.startswith(SCRIPTED_PREFIX) or model in settings.model_prices:
        return True
    try:
        prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1_000, completion_tokens=1_000)
    except Exception:
        return False
    return (prompt + completion) > 0
