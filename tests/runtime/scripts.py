"""Scripted model behaviours used by the runtime tests (``scripted/py:tests.runtime.scripts:<name>``).

Each is a function of the conversation, so it behaves the same in any process and after a crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage


def _turn(messages: list[ChatMessage]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def _last_tool(messages: list[ChatMessage]) -> str:
    for m in reversed(messages):
        if m["role"] == "tool":
            return m.get("content") or ""
    return ""


def call(name: str, **arguments: Any) -> Step:
    return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments)])


def file_worker(messages: list[ChatMessage], _tools: object) -> Step:
    """Write a file, run a shell command on it, then finish with what the shell printed."""
    turn = _turn(messages)
    if turn == 0:
        return call("write_file", path="notes/hello.txt", content="hello from the agent\n")
    if turn == 1:
        return call("shell", command="wc -c notes/hello.txt && cat notes/hello.txt")
    if turn == 2:
        return call("edit_file", path="notes/hello.txt", old="hello", new="goodbye")
    outputs = [m.get("content") or "" for m in messages if m["role"] == "tool"]
    return call("finish", summary="wrote, ran and edited", result={"tool_outputs": outputs})


def chatter(messages: list[ChatMessage], _tools: object) -> Step:
    """Answers in text only, never calling a tool (the runner must nudge and finally stop it)."""
    return Step(content=f"I am thinking (turn {_turn(messages) + 1})")


def repeater(messages: list[ChatMessage], _tools: object) -> Step:
    """Calls the same tool with the same arguments forever."""
    return call("list_files", path=".")


def spawner(messages: list[ChatMessage], _tools: object) -> Step:
    """Spawn three children in parallel, then finish with the sum of their results."""
    turn = _turn(messages)
    if turn == 0:
        return call("spawn_agents", agents=[{"spec": "adder", "task": f"add {i} and {i}", "input": {"n": i}}
                                            for i in (1, 2, 3)])
    results = json.loads(_last_tool(messages))
    total = sum(int(r["result"]["result"]["sum"]) for r in results)
    return call("finish", summary=f"children summed to {total}", result={"total": total,
                                                                          "children": len(results)})


def adder(messages: list[ChatMessage], _tools: object) -> Step:
    first_user = next(m.get("content") or "" for m in messages if m["role"] == "user")
    a, b = (int(x) for x in re.findall(r"add (\d+) and (\d+)", first_user)[0])
    return call("finish", summary="added", result={"sum": a + b})


def bulky(messages: list[ChatMessage], _tools: object) -> Step:
    """Reads a big file a few times (so the context must be compacted), then finishes."""
    turn = _turn(messages)
    if turn < 6:
        return call("read_file", path="big.txt", offset=1 + turn)
    return call("finish", summary="read it all", result={"turns": turn})


def bad_caller(messages: list[ChatMessage], _tools: object) -> Step:
    """Malformed arguments, an unknown tool, a bad spawn, then a proper finish."""
    turn = _turn(messages)
    if turn == 0:
        return Step(tool_calls=[ScriptedCall(name="read_file", arguments="{not json")])
    if turn == 1:
        return call("launch_missiles", target="moon")
    if turn == 2:
        return call("write_file", wrong_field=1)
    if turn == 3:
        return call("finish", summary=3)  # wrong type for summary
    errors = [m.get("content") or "" for m in messages if m["role"] == "tool"]
    return call("finish", summary="saw the errors", result={"errors": errors})


def _first_user(messages: list[ChatMessage]) -> str:
    return next((m.get("content") or "" for m in messages if m["role"] == "user"), "")


def pinger(messages: list[ChatMessage], _tools: object) -> Step:
    """Send 'ping' to the peer named in the task, wait for 'pong', finish with it."""
    turn = _turn(messages)
    peer = re.search(r"peer: (\S+)", _first_user(messages)).group(1)  # type: ignore[union-attr]
    if turn == 0:
        return call("send_message", to=peer, body="ping")
    last = _last_tool(messages)
    if "pong" in last:
        return call("finish", summary="got pong", result={"reply": last})
    return call("read_messages", wait_s=round(5 + turn / 100, 2))  # varied so it is not an identical repeat


def ponger(messages: list[ChatMessage], _tools: object) -> Step:
    """Wait for a ping, answer its sender with 'pong', finish."""
    turn = _turn(messages)
    last = _last_tool(messages) if turn else ""
    if turn > 0 and last.startswith("sent "):
        return call("finish", summary="answered", result={"answered": True})
    found = re.search(r"from (\S+) \(message\): ping", last)
    if found:
        return call("send_message", to=found.group(1), body="pong")
    return call("read_messages", wait_s=round(5 + turn / 100, 2))


def slow_counter(messages: list[ChatMessage], _tools: object) -> Step:
    """Four slow turns (1.5 s each), each writing a note; then finish. Used for the kill -9 test."""
    turn = _turn(messages)
    if turn < 4:
        return Step(delay_s=1.5, tool_calls=[ScriptedCall(name="read_notes", arguments={"limit": turn + 1})])
    return call("finish", summary="counted", result={"turns": turn})


def counter(messages: list[ChatMessage], _tools: object) -> Step:
    """Four turns each reading the notes, then finish."""
    turn = _turn(messages)
    if turn < 4:
        return call("read_notes", limit=turn + 1)
    return call("finish", summary="counted", result={"turns": turn})


def sleeper_child(messages: list[ChatMessage], _tools: object) -> Step:
    return Step(delay_s=1.0, tool_calls=[ScriptedCall(name="finish", arguments={"summary": "slept"})])


def sleepy_spawner(messages: list[ChatMessage], _tools: object) -> Step:
    if _turn(messages) == 0:
        return call("spawn_agents", agents=[{"spec": "sleeper", "task": f"sleep {i}"} for i in range(4)])
    return call("finish", summary="children done", result={"children": _last_tool(messages)})


def secret_reader(messages: list[ChatMessage], _tools: object) -> Step:
    """Read secret.txt, then finish, repeating in its own words whatever the task says the key is."""
    if _turn(messages) == 0:
        return call("read_file", path="secret.txt")
    said = re.search(r"the key is (\S+)", _first_user(messages))
    echo = said.group(1) if said else ""
    return Step(content=f"the key was {echo}", tool_calls=[ScriptedCall(name="finish",
                                                                        arguments={"summary": f"read {echo}"})])


def chatty(messages: list[ChatMessage], _tools: object) -> Step:
    """Message the peer named in the task every turn, each time differently, and never finish."""
    peer = re.search(r"peer: (\S+)", _first_user(messages)).group(1)  # type: ignore[union-attr]
    return call("send_message", to=peer, body=f"what do you think? (round {_turn(messages)})")


def _summary_requested(messages: list[ChatMessage]) -> bool:
    last = messages[-1] if messages else {}
    return last.get("role") == "user" and "about to be compacted" in (last.get("content") or "")


def compactor(messages: list[ChatMessage], _tools: object) -> Step:
    """Write a big file, read it again and again (the context fills up), then finish; summarises on request."""
    if _summary_requested(messages):
        return Step(content="SUMMARY: wrote big.txt and have been reading it back")
    summary = next((i for i, m in enumerate(messages) if "SUMMARY: wrote big.txt" in (m.get("content") or "")), None)
    if summary is not None:  # compacted: the summary is its memory now; one more read, then done
        after = _turn(messages[summary:])
        if after == 0:
            return call("read_file", path="big.txt", offset=300)
        return call("finish", summary="read it all", result={"went_on_after_compaction": True})
    turn = _turn(messages)
    if turn == 0:
        return call("write_file", path="big.txt", content="".join(f"line {i} of a big file\n" for i in range(400)))
    return call("read_file", path="big.txt", offset=turn)  # grows the context until it is compacted


compactor.context_window = 6_000  # type: ignore[attr-defined]  # small, so reading the file forces compaction


def capped_spawner(messages: list[ChatMessage], _tools: object) -> Step:
    """Spawn three adders, then finish with how each ended (some may be refused by the run's caps)."""
    if _turn(messages) == 0:
        return call("spawn_agents", agents=[{"spec": "adder", "task": f"add {i} and {i}"} for i in (1, 2, 3)])
    last = _last_tool(messages)
    statuses = [r.get("status") for r in json.loads(last)] if last.startswith("[") else [last]
    return call("finish", summary="children ended", result={"statuses": statuses})


def slow_replier(messages: list[ChatMessage], _tools: object) -> Step:
    """A provider that takes 3 s to answer the first call (as a busy one does), then finishes."""
    if _turn(messages) == 0:
        return call("list_files", path=".").model_copy(update={"delay_s": 3.0})
    return call("finish", summary="listed")
