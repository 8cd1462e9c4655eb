"""Context management: estimate the prompt size and compact a conversation that nears the window.

Compaction keeps the system message and the task, replaces the middle with a summary (written by
the agent's model when it has one, else a deterministic digest of the tool calls, named as such),
adds the agent's latest progress notes, and keeps the recent tail. The cut never separates an
assistant message that calls tools from the results of those calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from swarm_tasks.models.types import ChatMessage

SUMMARY_PROMPT = (
    "Your conversation is about to be compacted to fit your context window. Write a concise summary "
    "for your future self of everything that matters: the goal, what you did, files you read or "
    "changed, decisions, findings, and what remains to do. Reply with the summary text only.")


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """A cheap upper-ish estimate (4 characters per token) used between exact provider counts."""
    total = 0
    for message in messages:
        total += 4 + len(message.get("content") or "") // 4
        for call in message.get("tool_calls") or []:
            total += 8 + (len(call["function"]["name"]) + len(call["function"]["arguments"])) // 4
    return total


def should_compact(last_prompt_tokens: int, new_messages: list[ChatMessage], window: int, ratio: float) -> bool:
    """True when the next prompt is expected to reach ``ratio`` of the model's window."""
    return last_prompt_tokens + estimate_tokens(new_messages) >= int(window * ratio)


def safe_cut(messages: list[ChatMessage], keep_tokens: int, head: int = 2) -> int:
    """Index where the kept tail starts: as far back as fits ``keep_tokens``, at an assistant or user
    message (never at a tool result, which must stay behind the call that asked for it)."""
    cut = len(messages)
    used = 0
    for index in range(len(messages) - 1, head - 1, -1):
        used += estimate_tokens([messages[index]])
        if used > keep_tokens:
            break
        if messages[index]["role"] in ("assistant", "user"):
            cut = index
    return max(cut, head)


def digest(messages: list[ChatMessage], limit: int = 60) -> str:
    """A deterministic summary of a conversation span: the tool calls made and how they ended."""
    lines: list[str] = []
    results: dict[str, str] = {}
    for message in messages:
        if message["role"] == "tool":
            text = (message.get("content") or "").strip().splitlines()
            results[message.get("tool_call_id", "")] = (text[0] if text else "")[:160]
    for message in messages:
        if message["role"] == "assistant":
            if message.get("content"):
                lines.append(f"- said: {(message.get('content') or '').strip()[:200]}")
            for call in message.get("tool_calls") or []:
                args = call["function"]["arguments"]
                try:
                    args = json.dumps(json.loads(args), sort_keys=True)[:160]
                except (json.JSONDecodeError, TypeError):
                    args = str(args)[:160]
                lines.append(f"- called {call['function']['name']}({args}) -> {results.get(call['id'], '?')}")
    if len(lines) > limit:
        lines = [*lines[:limit // 2], f"- ... {len(lines) - limit} more steps ...", *lines[-limit // 2:]]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Compaction:
    """The result of compacting: the new conversation and what was done."""

    messages: list[ChatMessage]
    replaced: int
    summary_source: str  # "model" or "digest"


def compact(messages: list[ChatMessage], *, window: int, summary: str | None, notes: list[str],
            keep_ratio: float = 0.3) -> Compaction:
    """Build the compacted conversation. ``summary`` None means use the deterministic digest."""
    head = messages[:2]
    cut = safe_cut(messages, int(window * keep_ratio), head=len(head))
    middle = messages[len(head):cut]
    if not middle:  # nothing to replace: drop the oldest tail part instead of failing
        cut = min(len(messages), len(head) + max(1, (len(messages) - len(head)) // 2))
        while cut < len(messages) and messages[cut]["role"] == "tool":
            cut += 1
        middle = messages[len(head):cut]
    source = "model" if summary else "digest"
    text = summary or digest(middle)
    parts = [f"[Context compacted: {len(middle)} earlier messages were replaced by this "
             f"{'summary' if summary else 'deterministic digest of your tool calls'}.]", text]
    if notes:
        parts += ["Your latest progress notes:", *(f"- {n}" for n in notes)]
    bridge: ChatMessage = {"role": "user", "content": "\n".join(parts)}
    return Compaction(messages=[*head, bridge, *messages[cut:]], replaced=len(middle), summary_source=source)


def transcript(messages: list[ChatMessage], limit: int = 60_000) -> str:
    """The conversation as plain text (the newest ``limit`` characters), for a summarising model."""
    lines = []
    for m in messages:
        calls = " ".join(f"{c['function']['name']}({c['function']['arguments'][:200]})"
                         for c in m.get("tool_calls") or [])
        lines.append(f"[{m['role']}] {(m.get('content') or '')[:2000]} {calls}".strip())
    text = "\n".join(lines)
    return text[-limit:]
