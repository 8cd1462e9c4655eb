"""ModelGateway and the scripted provider, end to end through litellm's real code path."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from swarm_tasks.errors import ModelError
from swarm_tasks.models.gateway import Backoff, ModelGateway, _tool_call, is_retryable, litellm
from swarm_tasks.models.script import Script, ScriptedCall, Step, StepUsage
from swarm_tasks.models.scripted import register_scripted_provider
from swarm_tasks.models.types import ChatMessage
from tests.models.conftest import Run

TOOLS = [{"type": "function", "function": {"name": "finish", "description": "end",
                                           "parameters": {"type": "object", "properties": {}}}}]
Make = Callable[..., ModelGateway]


def msgs(user: str = "please fix ticket #42", *, agent: str = "w-1") -> list[ChatMessage]:
    return [{"role": "system", "content": f"You are a worker.\nagent_id: {agent}"},
            {"role": "user", "content": user}]


def write_script(state_dir: Path, script: Script) -> str:
    scripts = state_dir / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / f"{script.name}.json").write_text(script.encode())
    return f"scripted/{script.name}"


def test_echo_finish_content_tool_calls_and_accounting(gateway: ModelGateway, run: Run) -> None:
    reply = run(gateway.complete("scripted/echo-finish", msgs(), tools=TOOLS))
    assert reply.content == "echo: please fix ticket #42"
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("finish", {"summary": "echo: please fix ticket #42"})]
    assert reply.tool_calls[0].id
    assert reply.model == "scripted/echo-finish"
    assert reply.finish_reason == "tool_calls"
    assert reply.attempts == 1
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0  # counted: the script gives no usage
    assert reply.cost_usd == 0.0
    assert reply.latency_s >= 0
    assert reply.message()["tool_calls"][0]["function"]["name"] == "finish"


def test_state_dir_script_with_templates_usage_and_window(make_gateway: Make, tmp_path: Path, run: Run) -> None:
    model = write_script(tmp_path, Script(
        name="tmpl", context_window=8192, vars={"ticket": r"#(\d+)"},
        steps=[Step(content="turn {{turn}} for {{agent}}", usage=StepUsage(prompt_tokens=111, completion_tokens=7),
                    tool_calls=[ScriptedCall(name="open_ticket", arguments={"id": "{{ticket}}", "by": "{{agent}}"})])]))
    gateway = make_gateway()
    reply = run(gateway.complete(model, msgs(agent="w-9")))
    assert reply.content == "turn 1 for w-9"
    assert json.loads(reply.tool_calls[0].arguments) == {"id": "42", "by": "w-9"}
    assert (reply.prompt_tokens, reply.completion_tokens) == (111, 7)
    assert gateway.context_window(model) == 8192
    assert gateway.context_window("scripted/echo-finish") == 32_000


def test_malformed_script_passes_bad_json_and_unknown_tools_through(gateway: ModelGateway, run: Run) -> None:
    conversation = msgs()
    names = []
    for _ in range(3):
        reply = run(gateway.complete("scripted/malformed", conversation))
        names.append(reply.tool_calls[0].name)
        if len(names) == 1:
            assert reply.tool_calls[0].arguments == '{"path": "README.md"'
            with pytest.raises(json.JSONDecodeError):
                json.loads(reply.tool_calls[0].arguments)
        results: list[ChatMessage] = [{"role": "tool", "tool_call_id": c.id, "content": "error: bad call"}
                                      for c in reply.tool_calls]
        conversation = [*conversation, reply.message(), *results]
    assert names == ["read_file", "no_such_tool", "finish"]


def test_never_finish_keeps_calling_a_tool(gateway: ModelGateway, run: Run) -> None:
    conversation = msgs()
    for turn in range(1, 4):
        reply = run(gateway.complete("scripted/never-finish", conversation))
        assert reply.tool_calls[0].name == "list_files"
        assert reply.content == f"Still looking (turn {turn})."
        conversation = [*conversation, reply.message(), {"role": "user", "content": "continue"}]


def test_retryable_errors_are_retried_then_succeed(gateway: ModelGateway, run: Run) -> None:
    reply = run(gateway.complete("scripted/flaky-finish", msgs("flaky once more")))
    assert reply.attempts == 3  # two scripted rate limits, then the reply
    assert reply.content == "Recovered after two rate limits."
    assert any("RateLimitError" in note for note in reply.notes)


def test_exhausted_retries_raise_model_error_naming_model_and_attempts(make_gateway: Make, tmp_path: Path,
                                                                       run: Run) -> None:
    model = write_script(tmp_path, Script(name="down", steps=[Step(error="server_error")]))
    with pytest.raises(ModelError, match=r"scripted/down \(3 attempts\).*InternalServerError") as info:
        run(make_gateway().complete(model, msgs()))
    assert isinstance(info.value.__cause__, litellm.InternalServerError)


def test_non_retryable_error_goes_straight_to_the_fallback(make_gateway: Make, tmp_path: Path, run: Run) -> None:
    model = write_script(tmp_path, Script(name="refuses", steps=[Step(error="bad_request")]))
    reply = run(make_gateway().complete(model, msgs(), fallbacks=["scripted/echo-finish"]))
    assert reply.model == "scripted/echo-finish"
    assert reply.attempts == 2  # a bad request is not retried
    assert any("fallback" in note for note in reply.notes)


def test_fallbacks_from_settings_then_model_error_after_all(make_gateway: Make, tmp_path: Path, run: Run) -> None:
    down = write_script(tmp_path, Script(name="down2", steps=[Step(error="rate_limit")]))
    down_too = write_script(tmp_path, Script(name="down3", steps=[Step(error="timeout")]))
    gateway = make_gateway(model_fallbacks=["scripted/echo-finish"], model_retries=1)
    reply = run(gateway.complete(down, msgs()))
    assert (reply.model, reply.attempts) == ("scripted/echo-finish", 3)
    with pytest.raises(ModelError, match=r"scripted/down2, scripted/down3 \(4 attempts\).*Timeout"):
        run(gateway.complete(down, msgs(), fallbacks=[down_too]))  # the argument replaces the settings' list


def test_timeouts_are_enforced_and_retried(make_gateway: Make, tmp_path: Path, run: Run) -> None:
    model = write_script(tmp_path, Script(name="slow", steps=[Step(content="late", delay_s=30)]))
    with pytest.raises(ModelError, match=r"\(2 attempts\).*Timeout"):
        run(make_gateway(model_retries=1).complete(model, msgs(), timeout_s=0.05))


def test_plain_litellm_calls(run: Run) -> None:
    register_scripted_provider()
    response = litellm.completion(model="scripted/echo-finish", messages=msgs("bare litellm"))
    assert response.choices[0].message.content == "echo: bare litellm"
    response = run(litellm.acompletion(model="scripted/echo-finish", messages=msgs("bare async")))
    assert response.choices[0].message.content == "echo: bare async"


def test_py_callables(gateway: ModelGateway, run: Run) -> None:
    reply = run(gateway.complete("scripted/py:tests.models.py_scripts:tool_echo", msgs("hello"), tools=TOOLS))
    assert reply.tool_calls[0].name == "finish"
    assert json.loads(reply.tool_calls[0].arguments) == {"echo": "hello", "agent": "w-1"}
    flaky = run(gateway.complete("scripted/py:tests.models.py_scripts:fail_then_answer", msgs()))
    assert flaky.content == "second try"
    assert flaky.attempts in (1, 2)  # the module's counter is shared with other calls in this process
    assert gateway.context_window("scripted/py:tests.models.py_scripts:windowed") == 4096
    with pytest.raises(ModelError, match="expected Step"):
        run(gateway.complete("scripted/py:tests.models.py_scripts:not_a_step", msgs()))


def test_unknown_script_is_a_model_error(gateway: ModelGateway, run: Run) -> None:
    with pytest.raises(ModelError, match=r"\(1 attempts\).*no script named 'nothing-here'"):
        run(gateway.complete("scripted/nothing-here", msgs()))


def test_count_tokens_and_context_windows(gateway: ModelGateway) -> None:
    assert 5 < gateway.count_tokens("gpt-4o", msgs()) < 50
    assert gateway.count_tokens("hosted_vllm/meta-llama/Llama-3-8B", msgs()) > 0  # no HF download
    assert gateway.count_tokens("scripted/echo-finish", msgs()) > 0
    assert gateway.context_window("gpt-4o") == 128_000
    assert gateway.context_window("anthropic/claude-opus-4-5") == 200_000  # static map; the guard forbids the call
    assert gateway.context_window("openai/some-model-nobody-knows") == 128_000


def test_tool_call_extraction_never_crashes() -> None:
    notes: list[str] = []
    odd = [
        SimpleNamespace(id=None, function=SimpleNamespace(name="a", arguments={"k": 1})),
        {"id": "x1", "function": {"name": "b", "arguments": None}},
        {"function": None},
        SimpleNamespace(id="", function=SimpleNamespace(name=None, arguments="{oops")),
    ]
    calls = [_tool_call(raw, i, notes) for i, raw in enumerate(odd)]
    assert calls[0].arguments == '{"k": 1}' and calls[0].id.startswith("call_")
    assert (calls[1].id, calls[1].name, calls[1].arguments) == ("x1", "b", "{}")
    assert calls[2].name == "" and calls[2].arguments == "{}"
    assert calls[3].arguments == "{oops" and calls[3].id
    assert len({c.id for c in calls}) == 4
    assert sum("generated" in n for n in notes) == 3


def test_backoff_and_retryable_classification() -> None:
    backoff, rng = Backoff(base_s=1.0, cap_s=8.0, jitter="equal"), random.Random(1)
    for retry, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (4.0, 8.0)]):
        assert low <= backoff.delay(retry, rng) <= high
    for _ in range(50):  # the provider's Retry-After is a floor, spread by up to a tenth above it
        assert 3.0 <= backoff.delay(0, rng, floor_s=3.0) <= 3.3
        assert 30.0 <= backoff.delay(0, rng, floor_s=30.0) <= 33.0  # beyond our cap too: it said so
    retryable = [litellm.RateLimitError("x", "p", "m"), litellm.Timeout("x", "m", "p"), TimeoutError(),
                 litellm.InternalServerError("x", "p", "m"), litellm.APIConnectionError("x", "p", "m")]
    final = [litellm.BadRequestError("x", "m", "p"), litellm.ContextWindowExceededError("x", "m", "p"),
             litellm.AuthenticationError("x", "p", "m"), ValueError("x")]
    assert all(is_retryable(e) for e in retryable)
    assert not any(is_retryable(e) for e in final)
