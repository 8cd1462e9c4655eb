"""The OpenAI SDK's request walk is skipped only where it would change nothing but the omitted arguments."""

from __future__ import annotations

import asyncio

from openai import omit
from openai._utils._transform import async_maybe_transform as sdk_transform
from openai.resources.chat.completions import completions
from openai.types.chat import completion_create_params as params

from swarm_tasks.models.litellm_setup import REQUEST_TRANSFORM_SKIPPED
from swarm_tasks.review.model_agents import FINDINGS_SCHEMA

TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "d", "parameters": FINDINGS_SCHEMA}}
         for i in range(3)]
MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "tool_0", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "result"}]


def both(body: dict[str, object]) -> tuple[object, object]:
    async def go() -> tuple[object, object]:
        kind = params.CompletionCreateParamsNonStreaming
        return await sdk_transform(body, kind), await completions.async_maybe_transform(body, kind)

    return asyncio.run(go())


def test_a_plain_request_is_sent_as_the_sdk_would_send_it() -> None:
    assert REQUEST_TRANSFORM_SKIPPED  # the installed SDK's chat types have no alias and no format
    body = {"messages": MESSAGES, "model": "m", "tools": TOOLS, "max_tokens": 100, "audio": omit, "seed": omit}
    sdk, ours = both(body)
    assert ours == sdk and isinstance(ours, dict) and "audio" not in ours and ours["tools"] == TOOLS


def test_anything_else_goes_through_the_sdk() -> None:
    sdk, ours = both({"messages": tuple(MESSAGES), "model": "m", "seed": omit})  # not plain JSON: a tuple
    assert ours == sdk and isinstance(ours, dict) and ours["messages"] == MESSAGES  # made a list by the SDK
