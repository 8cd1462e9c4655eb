"""Script format and stateless step selection (no litellm involved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from swarm_tasks.models.script import (
    BUILTIN_DIR,
    FINISH_STEP,
    Script,
    ScriptedCall,
    ScriptResolver,
    Step,
    load_callable,
    render_step,
)
from swarm_tasks.models.types import ChatMessage


def convo(*assistant_replies: str, last: str = "go", system: str = "agent_id: a-7") -> list[ChatMessage]:
    messages: list[ChatMessage] = [{"role": "system", "content": system},
                                   {"role": "user", "content": "ticket #42: fix the parser"}]
    for reply in assistant_replies:
        messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": last})
    return messages


SCRIPT = Script(
    name="t",
    vars={"ticket": r"ticket #(\d+)", "missing": r"nope (\d+)"},
    steps=[
        Step(content="one {{ticket}} {{agent}} {{turn}}"),
        Step(content="only after ok", when=r"^ok$"),
        Step(content="three"),
    ],
)


def test_step_index_is_the_number_of_assistant_messages() -> None:
    assert SCRIPT.select(convo()).content == "one {{ticket}} {{agent}} {{turn}}"
    assert SCRIPT.select(convo("a", last="ok")).content == "only after ok"
    assert SCRIPT.select(convo("a", "b")).content == "three"


def test_when_that_does_not_match_skips_to_the_next_matching_step() -> None:
    assert SCRIPT.select(convo("a", last="not ok")).content == "three"


def test_past_the_end_default_else_finish() -> None:
    assert SCRIPT.select(convo("a", "b", "c")) == FINISH_STEP
    with_default = SCRIPT.model_copy(update={"default": Step(content="again")})
    assert with_default.select(convo("a", "b", "c", "d")).content == "again"
    rendered = render_step(FINISH_STEP, {})
    assert json.loads(rendered.tool_calls[0].arguments) == {"summary": "script exhausted"}
    assert rendered.finish_reason == "tool_calls"


def test_templates_vars_turn_and_agent() -> None:
    messages = convo()
    values = SCRIPT.variables(messages)
    assert values == {"ticket": "42", "missing": "", "turn": "1", "agent": "a-7"}
    step = Step(content="{{ticket}}/{{agent}}/{{turn}}/{{unknown}}",
                tool_calls=[ScriptedCall(name="note", arguments={"text": 'say "{{ticket}}"', "n": [1, "{{turn}}"]})])
    rendered = render_step(step, values)
    assert rendered.content == "42/a-7/1/{{unknown}}"
    assert json.loads(rendered.tool_calls[0].arguments) == {"text": 'say "42"', "n": [1, "1"]}
    assert SCRIPT.variables(convo("x"))["turn"] == "2"


def test_string_arguments_pass_through_verbatim() -> None:
    step = Step(tool_calls=[ScriptedCall(name="read_file", arguments='{"path": "a.py"')])
    assert render_step(step, {}).tool_calls[0].arguments == '{"path": "a.py"'


def test_encode_decode_round_trip_and_strictness() -> None:
    assert Script.decode(SCRIPT.encode()) == SCRIPT
    with pytest.raises(ValidationError):
        Script.decode('{"name": "x", "steps": [{"error": "meltdown"}]}')
    with pytest.raises(ValidationError):
        Script.decode('{"name": "x", "steps": [{"contnet": "typo"}]}')


def test_builtin_scripts_are_valid() -> None:
    names = sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
    assert {"echo-finish", "malformed", "never-finish"} <= set(names)
    for name in names:
        assert Script.load(BUILTIN_DIR / f"{name}.json").name == name


def test_resolver_order_and_names(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "mine.json").write_text(Script(name="mine", steps=[Step(content="from a")]).encode())
    (second / "mine.json").write_text(Script(name="mine", steps=[Step(content="from b")]).encode())
    resolver = ScriptResolver([second])
    assert resolver.find("mine") == second / "mine.json"
    assert resolver.find("mine", [first]) == first / "mine.json"  # the call's own dirs come first
    assert resolver.find("echo-finish", [first]).parent == BUILTIN_DIR
    for bad in ("../etc/passwd", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="invalid script name"):
            resolver.find(bad)
    with pytest.raises(FileNotFoundError, match="no script named 'absent'"):
        resolver.find("absent")
    assert resolver.context_window("absent") == 32_000


def test_edited_script_file_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    path.write_text(Script(name="live", steps=[Step(content="v1")]).encode())
    assert Script.load(path).steps[0].content == "v1"
    path.write_text(Script(name="live", context_window=999, steps=[Step(content="v2, longer")]).encode())
    assert Script.load(path).steps[0].content == "v2, longer"


def test_py_callable_loading() -> None:
    fn = load_callable("py:tests.models.py_scripts:tool_echo")
    assert fn(convo(), None).content == "no tools offered"
    with pytest.raises(ValueError, match="expected py:<module>:<callable>"):
        load_callable("py:tests.models.py_scripts")
    resolver = ScriptResolver()
    assert resolver.context_window("py:tests.models.py_scripts:windowed") == 4096
    assert resolver.context_window("py:tests.models.py_scripts:tool_echo") == 32_000
    with pytest.raises(TypeError, match="expected Step"):
        resolver.step_for("py:tests.models.py_scripts:not_a_step", convo(), None)
