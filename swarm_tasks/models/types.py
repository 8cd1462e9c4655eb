"""The shapes that cross the model boundary: chat messages in OpenAI format, tool calls, replies.

litellm speaks OpenAI's chat format to every provider, so that is the one format we store and send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text exactly as the model produced it (it may be malformed)


class ToolCallDict(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(TypedDict):
    """One message of a conversation, as sent to litellm."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None
    tool_calls: NotRequired[list[ToolCallDict]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> ToolCallDict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One model answer with what it cost."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    latency_s: float = 0.0
    attempts: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
    priced: bool = True  # False: no price is known for the model, so cost_usd is 0 without meaning it
    failed_prompt_tokens: int = 0  # charged for attempts of this call that failed (timed out) before it
    failed_completion_tokens: int = 0
    failed_cost_usd: float = 0.0

    def message(self) -> ChatMessage:
        """The assistant message to append to the conversation."""
        msg: ChatMessage = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        return msg

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
