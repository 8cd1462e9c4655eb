"""Scripted model behaviours for the dashboard tests: a small tree of agents that grows in stages.

planner -> spawns leads; lead -> spawns workers; worker -> lists files, then reports findings.
Referenced as ``scripted/py:tests.dashboard.scripts:<name>``.
"""

from __future__ import annotations

import re

from swarm_tasks.models.script import ScriptedCall, Step, StepUsage
from swarm_tasks.models.types import ChatMessage

LEADS = 3
WORKERS_PER_LEAD = 4


def _turn(messages: list[ChatMessage]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def _task(messages: list[ChatMessage]) -> str:
    return next((m.get("content") or "" for m in messages if m["role"] == "user"), "")


def _call(name: str, tokens: int, **arguments: object) -> Step:
    return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments)],  # type: ignore[arg-type]
                usage=StepUsage(prompt_tokens=tokens, completion_tokens=tokens // 10))


def planner(messages: list[ChatMessage], _tools: object) -> Step:
    if _turn(messages) == 0:
        return _call("spawn_agents", 1200, agents=[{"spec": "lead", "task": f"lead area {i}", "input": {"area": i}}
                                                   for i in range(LEADS)])
    return _call("finish", 900, summary="all areas reviewed")


def lead(messages: list[ChatMessage], _tools: object) -> Step:
    area = re.search(r"lead area (\d+)", _task(messages)).group(1)  # type: ignore[union-attr]
    if _turn(messages) == 0:
        return _call("spawn_agents", 2500, agents=[{"spec": "worker", "task": f"inspect module {area}.{j}"}
                                                   for j in range(WORKERS_PER_LEAD)])
    return _call("finish", 1500, summary=f"area {area} done")


def worker(messages: list[ChatMessage], _tools: object) -> Step:
    module = re.search(r"inspect module (\S+)", _task(messages)).group(1)  # type: ignore[union-attr]
    if _turn(messages) == 0:
        return _call("list_files", 4000, path=".")
    findings = [{"severity": "high" if module.endswith(".0") else "low", "file": f"pkg/mod_{module}.py", "line": 7,
                 "rule": "demo-rule", "title": f"suspicious call in module {module}"}]
    return _call("finish", 3000, summary=f"inspected module {module}", result={"findings": findings})


def refusing_reviewer(messages: list[ChatMessage], tools: object) -> Step:
    """The review's scripted reviewer, except that the provider refuses every security reviewer's request
    (400): those agents fail, the rest of the review goes on."""
    from swarm_tasks.review.scripted import reviewer

    if re.search(r"Review \S+ for security problems", _task(messages)):
        return Step(error="bad_request")
    return reviewer(messages, tools)  # type: ignore[arg-type]
