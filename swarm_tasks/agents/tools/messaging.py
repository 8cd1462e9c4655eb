"""Messages between agents, with a guard against two agents ping-ponging forever."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from coordination.errors import CoordinationError
from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.errors import LoopDetected, ToolError


class SendArgs(ToolArgs):
    to: str = Field(description="The agent id to write to.")
    body: str = Field(min_length=1, max_length=32_000)


class SendMessage(Tool):
    """Sends a message to another agent's mailbox."""

    name = "send_message"
    description = "Send a message to another agent of this run (by agent id)."
    Args = SendArgs
    idempotent = False

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        if ctx.state is None:
            raise ToolError("no shared state is attached to this agent")
        limit = int(ctx.extras.get("pingpong_limit", 40))
        pair = "|".join(sorted((ctx.agent_id, args.to)))
        exchanged = int(ctx.state.redis.hincrby(ctx.state.keys.pair_messages(), pair, 1))
        if exchanged > limit:
            raise LoopDetected(f"{exchanged} messages between {pair.replace('|', ' and ')} "
                               f"(limit {limit}): the two agents are ping-ponging")
        try:
            message = ctx.state.mailboxes.send(ctx.agent_id, args.to, args.body)
        except CoordinationError as exc:
            raise ToolError(str(exc)) from None
        return ToolResult(f"sent {message.id} to {args.to}")


class ReadArgs(ToolArgs):
    wait_s: float = Field(default=0, ge=0, le=30, description="Seconds to wait for a message if none is there.")
    limit: int = Field(default=10, ge=1, le=100)


class ReadMessages(Tool):
    """Reads (and acknowledges) messages from this agent's mailbox."""

    name = "read_messages"
    description = "Read new messages sent to you by other agents."
    Args = ReadArgs
    idempotent = False

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        if ctx.state is None:
            raise ToolError("no shared state is attached to this agent")
        boxes = ctx.state.mailboxes
        deliveries = boxes.receive(ctx.agent_id, consumer=ctx.agent_id, count=args.limit,
                                   timeout_s=args.wait_s or None)
        if not deliveries:
            return ToolResult("no new messages")
        boxes.ack(ctx.agent_id, *deliveries)
        return ToolResult("\n".join(f"from {d.message.sender} ({d.message.kind.value}): {d.message.body}"
                                    for d in deliveries))
