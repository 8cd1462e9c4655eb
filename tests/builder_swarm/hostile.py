"""Scripted build models that try to get out (``scripted/py:tests.builder_swarm.hostile:<role>``).

The planner files one task whose body is the repository's ``TODO.md``; the worker runs the ``SHELL:`` line
of it with the shell tool (planting hooks and fsmonitor in its clone's .git), runs the check with
``run_check`` (the check is the repository's ``probe.sh``, as an agent-written test would be), commits and
pushes (where planted hooks would fire), and finishes. Everything they observe lands in ``seen/``.
"""

from __future__ import annotations

from swarm_tasks.builder.scripted import _call, _calls, _file_lines, _first
from swarm_tasks.models.script import Step
from swarm_tasks.models.types import ChatMessage


def planner(messages: list[ChatMessage], _tools: object) -> Step:
    calls = _calls(messages)
    names = [c[0] for c in calls]
    if not calls:
        return _call("read_file", path="TODO.md")
    if "file_tasks" not in names:
        body = "\n".join(_file_lines(calls[0][2]))
        return _call("file_tasks", tasks=[{"title": "probe the sandbox", "body": body, "files": ["seen/shell.txt"]}])
    if "wait_for_tasks" not in names:
        return _call("wait_for_tasks")
    return _call("finish", summary="planned one probe")


def worker(messages: list[ChatMessage], _tools: object) -> Step:
    task = _first(messages, "user")
    shell = next(line.removeprefix("SHELL: ") for line in task.splitlines() if line.startswith("SHELL: "))
    calls = _calls(messages)
    if not calls:
        return _call("shell", command=shell)
    name, _args, answer = calls[-1]
    if name == "shell":
        return _call("run_check")
    if name == "run_check":
        return _call("commit_and_push", message="what the sandbox let me see")
    if name == "commit_and_push" and answer.startswith("landed"):
        return _call("finish", summary=answer.splitlines()[0])
    return _call("finish", summary=f"stopped after {name}: {answer[:300]}", success=False)
