"""The prompt of one LLM turn: sized against its model's window, compacted before it reaches it, sent.

Before every call the whole prompt (every message, tool results included, and the tools' schemas) is
counted with litellm's counter (exactly once it could matter: below the threshold a byte bound
proves it fits). At ``SWARM_CONTEXT_COMPACT_RATIO`` of the model's prompt budget (its window less
room for the reply) the conversation is compacted first. If the provider still answers that the
prompt is too long, it is compacted harder and sent once more, never re-sent as it was. Tool results
are cut to a quarter of the budget with a marker the model can act on, so no single result (a 256 KB
file) can overflow the window on its own. The ``finish`` tool carries the agent's result schema.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from swarm_tasks.agents.context import compact, summary_request, truncate_result
from swarm_tasks.agents.state import Usage
from swarm_tasks.agents.tools.control import finish_schema
from swarm_tasks.errors import ContextOverflow, ModelError
from swarm_tasks.models.types import ChatMessage, ModelReply

if TYPE_CHECKING:
    from swarm_tasks.agents.services import AgentServices, Holder, RunContext
    from swarm_tasks.agents.spec import AgentSpec
    from swarm_tasks.agents.state import AgentState
    from swarm_tasks.agents.toolset import ToolRegistry
    from swarm_tasks.models.gateway import ModelGateway
    from swarm_tasks.settings import SwarmSettings

MIN_RESULT_TOKENS = 512
SUMMARY_MAX_CHARS = 60_000


def charged(exc: ModelError) -> Usage:
    """What a failed call cost anyway (a timed-out request was processed and billed, estimated)."""
    return Usage(prompt_tokens=exc.charged_prompt_tokens, completion_tokens=exc.charged_completion_tokens,
                 cost_usd=exc.charged_cost_usd)


def reply_usage(reply: ModelReply) -> Usage:
    """A reply's usage, with what its failed attempts were charged."""
    return Usage(prompt_tokens=reply.prompt_tokens + reply.failed_prompt_tokens,
                 completion_tokens=reply.completion_tokens + reply.failed_completion_tokens,
                 cost_usd=reply.cost_usd + reply.failed_cost_usd, model_calls=1)


_TOOLS: dict[int, tuple[AgentSpec, ToolRegistry, list[dict[str, Any]] | None]] = {}
_TOOLS_LOCK = threading.Lock()


def _tools_of(spec: AgentSpec, services: AgentServices) -> list[dict[str, Any]] | None:
    """The tools' schemas a spec's model is given (the finish tool carrying its result schema), made once
    per spec object (a run's specs are cached for its life; building them copied the result schema on
    every turn). Held with the spec and registry they were made from, so a recycled id never matches."""
    registry = services.tools
    with _TOOLS_LOCK:
        entry = _TOOLS.get(id(spec))
    if entry is not None and entry[0] is spec and entry[1] is registry:
        return entry[2]
    schemas = registry.schemas(spec.tools)
    tools = [finish_schema(s, spec.result_schema) if s["function"]["name"] == "finish" else s for s in schemas] or None
    with _TOOLS_LOCK:
        if len(_TOOLS) >= 512:  # runs come and go: forget the oldest specs
            del _TOOLS[next(iter(_TOOLS))]
        _TOOLS[id(spec)] = (spec, registry, tools)
    return tools


@dataclass
class Sent:
    """How sending a turn's prompt went: the reply (or the error), what was sent last, what it cost."""

    reply: ModelReply | None
    conversation: list[ChatMessage]
    compactions: int = 0
    usage: Usage = field(default_factory=Usage)
    error: ModelError | None = None


class Turn(Protocol):
    """What a prompt uses of the turn it belongs to (:class:`swarm_tasks.agents.turn.Turn`)."""

    @property
    def agent(self) -> AgentState: ...

    services: AgentServices
    settings: SwarmSettings
    ctx: RunContext
    spec: AgentSpec
    holder: Holder


class TurnPrompt:
    """Sizes, compacts and sends the prompt of one turn of one agent, on its model."""

    def __init__(self, turn: Turn, gateway: ModelGateway, model: str) -> None:
        self.turn = turn
        self.gateway = gateway
        self.model = model
        self.role = turn.agent.role
        self.budget = self.threshold = 0
        self.resize()
        self.tools: list[dict[str, Any]] | None = _tools_of(turn.spec, turn.services)

    # -- sizes ------------------------------------------------------------------------------------
    def resize(self) -> None:
        """Budget and compaction threshold from the model's window (again after a provider stated it)."""
        self.budget = self.gateway.catalog.prompt_budget(self.model, self.role)
        self.threshold = int(self.budget * self.turn.settings.context_compact_ratio)

    def size(self, conversation: list[ChatMessage], *, tools: bool = True) -> int:
        """The prompt's tokens (exact from the threshold up; below it a bound that proves it fits)."""
        return self.gateway.catalog.prompt_tokens(self.model, conversation, self.tools if tools else None,
                                                  exact_above=self.threshold)

    def ceiling(self, conversation: list[ChatMessage]) -> tuple[float, float] | None:
        """What a call with this prompt costs at least (its prompt, counted exactly) and at most (plus the
        whole output cap), priced; (0, 0) for a free model, None for an unpriced one."""
        catalog = self.gateway.catalog
        out = catalog.output_cap(self.model, self.role)
        probe = catalog.cost_usd(self.model, 1_000, out)
        if probe is None:
            return None
        if probe == 0.0:
            return 0.0, 0.0
        tokens = catalog.count_tokens(self.model, conversation, self.tools)
        return catalog.cost_usd(self.model, tokens, 0) or 0.0, catalog.cost_usd(self.model, tokens, out) or 0.0

    def fit_result(self, text: str) -> str:
        """A tool result cut to a quarter of the prompt budget, with a marker saying so."""
        limit = max(MIN_RESULT_TOKENS, self.budget // 4)
        return truncate_result(text, limit, lambda t: self.gateway.catalog.count_text(self.model, t))

    # -- sending ----------------------------------------------------------------------------------
    def send(self, conversation: list[ChatMessage]) -> Sent:
        """Compact if the prompt reached the threshold, call the model; on a context overflow compact
        harder and call once more. Never raises :class:`ModelError`: it comes back in ``error``."""
        sent = Sent(reply=None, conversation=conversation)
        if self.size(conversation) >= self.threshold:
            self._compact(sent, force=False)
        for attempt in range(2):
            try:
                sent.reply = self.turn.holder.wait(self.turn.services.on_loop(self.gateway.complete(
                    self.model, sent.conversation, tools=self.tools, role=self.role,
                    fallbacks=list(self.turn.spec.fallbacks) or None)))
                return sent
            except ContextOverflow as exc:
                sent.usage = sent.usage.plus(charged(exc))
                sent.error = exc
                if attempt == 1:
                    return sent
                self.resize()  # the window the provider stated, if it did
                self._compact(sent, force=exc.window_tokens is None)
                sent.error = None
            except ModelError as exc:
                sent.usage = sent.usage.plus(charged(exc))
                sent.error = exc
                return sent
        return sent

    def _compact(self, sent: Sent, *, force: bool) -> None:
        """Compact ``sent.conversation`` below the threshold (below half of it when forced: the provider
        refused a prompt we counted as fitting, without saying its window), keeping less of the tail
        until it fits."""
        turn = self.turn
        notes = [n.text for n in reversed(turn.ctx.state.notes.latest(turn.agent.id, limit=5))]
        summary, usage = self.summarise(sent.conversation)
        target = self.threshold // 2 if force else self.threshold
        keep = 0.15 if force or sent.compactions else 0.3
        for _ in range(5):
            result = compact(sent.conversation, window=self.budget, summary=summary, notes=notes, keep_ratio=keep)
            if self.size(result.messages) < target:
                break
            keep /= 2
        sent.conversation = result.messages
        sent.compactions += 1
        sent.usage = sent.usage.plus(usage)
        turn.ctx.state.notes.append(turn.agent.id, f"context compacted: {result.replaced} messages replaced "
                                    f"({result.summary_source}{', after the provider refused it' if force else ''})",
                                    kind="compaction", author=turn.agent.id)
        turn.ctx.state.events.emit("agent.compacted", turn.agent.id, {"replaced": result.replaced,
                                                                       "source": result.summary_source,
                                                                       "forced": force})

    def summarise(self, conversation: list[ChatMessage]) -> tuple[str | None, Usage]:
        """A summary of the conversation by the agent's model, from a request sized to fit its window
        (None, and the digest is used, if the model cannot give one)."""
        system = conversation[0] if conversation and conversation[0]["role"] == "system" else None
        rest = conversation[1:] if system else conversation
        limit = min(SUMMARY_MAX_CHARS, self.budget * 3)
        request = summary_request(system, rest, limit)
        while limit > 2_000 and self.size(request, tools=False) >= self.budget:
            limit //= 2
            request = summary_request(system, rest, limit)
        try:
            reply = self.turn.holder.wait(self.turn.services.on_loop(
                self.gateway.complete(self.model, request, role=self.role)))
        except ModelError as exc:
            return None, charged(exc)
        return (reply.content or "").strip() or None, reply_usage(reply)
