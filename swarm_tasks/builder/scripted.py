"""Scripted stand-ins for the build's models (``scripted/py:swarm_tasks.builder.scripted:<role>``).

They use the same tools a real model gets and decide only from the conversation (stateless), so they
behave the same in any worker process and after a crash. Their job language is small and explicit:
the repository's ``TODO.md`` lists line additions, one per line::

    notes/shared.txt | entry 03
    fix: notes/b.txt | beta {cycle} | after setup

(``key:`` names a line for ``after``; ``{cycle}`` is the cycle number). The planner files one task per
line, handing any top-level directory with at least ``SUBPLAN_MIN`` lines to a sub-planner; a worker
adds its line to its file keeping the lines sorted, and resolves a conflict by keeping every line of
both sides; the judge stops when the check passed. Runs made with them name the scripted models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage

SUBPLAN_MIN = 4
_CYCLE = re.compile(r"Cycle (\d+) of")
_FIELD = re.compile(r"^(FILE|LINE|RESOLVER)=(.*)$", re.MULTILINE)
_NUMBERED = re.compile(r"^\s*\d+\t(.*)$")
_MARKER = re.compile(r"^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)( |$)")


def _call(name: str, **arguments: object) -> Step:
    return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments)])


def _first(messages: list[ChatMessage], role: str) -> str:
    return next((str(m.get("content") or "") for m in messages if m["role"] == role), "")


def _calls(messages: list[ChatMessage]) -> list[tuple[str, dict[str, object], str]]:
    """Each tool call made so far: name, arguments and the answer it got."""
    answers = {m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m["role"] == "tool"}
    out = []
    for m in messages:
        for call in m.get("tool_calls") or [] if m["role"] == "assistant" else []:
            fn = call["function"]
            out.append((fn["name"], json.loads(fn["arguments"] or "{}"), answers.get(call["id"], "")))
    return out


def _file_lines(answer: str) -> list[str]:
    """The lines of a file as read_file showed them (none for a missing or empty file)."""
    return [m.group(1) for line in answer.splitlines()[1:] if (m := _NUMBERED.match(line))]


@dataclass(frozen=True)
class TodoLine:
    key: str
    path: str
    text: str
    after: str


def parse_todo(text: str, cycle: int) -> list[TodoLine]:
    """The TODO lines (see the module docstring), ``{cycle}`` filled in."""
    out = []
    for number, raw in enumerate(text.replace("{cycle}", str(cycle)).splitlines(), 1):
        if "|" not in raw or raw.lstrip().startswith("#"):
            continue
        head, *rest = (p.strip() for p in raw.split("|"))
        key, _, path = head.rpartition(":") if ":" in head else (f"line{number}", "", head)
        after = rest[1].removeprefix("after").strip() if len(rest) > 1 else ""
        out.append(TodoLine(key.strip() or f"line{number}", path.strip(), rest[0] if rest else "", after))
    return out


def _task(line: TodoLine, resolver: bool) -> dict[str, object]:
    body = f"Add the line `{line.text}` to {line.path}, keeping its lines sorted.\nFILE={line.path}\nLINE={line.text}"
    return {"key": line.key, "title": f"add '{line.text}' to {line.path}", "files": [line.path],
            "body": body + ("\nRESOLVER=yes" if resolver else ""), "depends_on": [line.after] if line.after else []}


def planner(messages: list[ChatMessage], _tools: object) -> Step:
    """Root planner or sub-planner (a sub-planner's task starts with ``Area:`` and lists its lines)."""
    task = _first(messages, "user")
    calls = _calls(messages)
    names = [c[0] for c in calls]
    if task.startswith("Area:"):
        lines = parse_todo(task, 0)
        if "file_tasks" not in names:
            return _call("file_tasks", tasks=[_task(line, False) for line in lines])
        if "wait_for_tasks" not in names:
            return _call("wait_for_tasks")
        return _call("finish", summary=f"area planned: {len(lines)} task(s)", result={"tasks": len(lines)})
    if not calls:
        return _call("read_file", path="TODO.md")
    match = _CYCLE.search(task)
    lines = parse_todo("\n".join(_file_lines(calls[0][2])), int(match.group(1)) if match else 1)
    areas: dict[str, list[TodoLine]] = {}
    for line in lines:
        areas.setdefault(line.path.split("/")[0] if "/" in line.path else "", []).append(line)
    delegated = {a: ls for a, ls in areas.items() if a and len(ls) >= SUBPLAN_MIN}
    own = [line for a, ls in areas.items() if a not in delegated for line in ls]
    resolver = "RESOLVE-WITH-SUBAGENT" in task or "RESOLVE-WITH-SUBAGENT" in calls[0][2]
    if own and "file_tasks" not in names:
        return _call("file_tasks", tasks=[_task(line, resolver) for line in own])
    if delegated and "spawn_agents" not in names:
        return _call("spawn_agents", agents=[
            {"spec": "build.planner", "task": "Area: " + area + "\n" + "\n".join(
                f"{ln.key}: {ln.path} | {ln.text}" + (f" | after {ln.after}" if ln.after else "") for ln in ls)}
            for area, ls in sorted(delegated.items())])
    if own and "wait_for_tasks" not in names:
        return _call("wait_for_tasks")
    return _call("finish", summary=f"planned {len(lines)} line(s), {len(delegated)} area(s) delegated",
                 result={"tasks": len(own), "areas": sorted(delegated)})


def _merged(lines: list[str], extra: str = "") -> str:
    """Every non-marker line of both sides (and ``extra``), sorted and without duplicates."""
    keep = {line for line in lines if line and not _MARKER.match(line)}
    if extra:
        keep.add(extra)
    return "".join(f"{line}\n" for line in sorted(keep))


def worker(messages: list[ChatMessage], _tools: object) -> Step:
    """Adds its line, lands it, resolves conflicts by keeping both sides (or has a resolver do it)."""
    fields = dict(_FIELD.findall(_first(messages, "user")))
    path, text = fields.get("FILE", ""), fields.get("LINE", "")
    calls = _calls(messages)
    if not calls:
        return _call("read_file", path=path)
    name, args, answer = calls[-1]
    if name == "read_file" and args.get("path") == path and len(calls) == 1:
        return _call("write_file", path=path, content=_merged(_file_lines(answer), text))
    if name == "write_file" and len(calls) == 2:
        return _call("commit_and_push", message=f"add {text} to {path}")
    if name == "commit_and_push":
        if answer.startswith("landed") or "already landed" in answer:
            return _call("finish", summary=answer.splitlines()[0])
        if answer.startswith("the check"):  # e.g. two insertions kept in an order the check refuses
            return _call("read_file", path=path)
        if answer.startswith("push rejected"):
            if fields.get("RESOLVER") == "yes":
                return _call("spawn_agents", agents=[{"spec": "build.resolver", "task": "Resolve the conflicts of "
                                                      "the rebase in progress, keeping every line of both sides."}])
            return _call("read_file", path=path)
        if answer.startswith(("nothing to push", "the branch moved again", "not landed")):
            return _call("commit_and_push", message=f"add {text} to {path}")
        return _call("finish", summary=answer.splitlines()[0][:300], success=False)
    if name == "read_file":  # the conflicted file, markers and all
        return _call("write_file", path=path, content=_merged(_file_lines(answer)))
    if name == "write_file":
        return _call("continue_rebase")
    if name in ("continue_rebase", "spawn_agents"):
        if answer.startswith("the next commit"):
            return _call("read_file", path=path)
        return _call("commit_and_push", message=f"add {text} to {path}")
    return _call("finish", summary=f"stopped after {name}: {answer[:200]}", success=False)


def resolver(messages: list[ChatMessage], _tools: object) -> Step:
    """Resolves every conflicted file by keeping the lines of both sides, then continues the rebase."""
    calls = _calls(messages)
    if not calls:
        return _call("show_conflicts")
    name, args, answer = calls[-1]
    if name in ("show_conflicts", "continue_rebase") and "==" in answer:
        files = re.findall(r"^== (\S+)", answer, re.MULTILINE)
        return _call("read_file", path=files[0])
    if name == "read_file":
        return _call("write_file", path=str(args["path"]), content=_merged(_file_lines(answer)))
    if name == "write_file":
        return _call("continue_rebase")
    return _call("finish", summary=answer.splitlines()[0] if answer else "resolved")


def judge(messages: list[ChatMessage], _tools: object) -> Step:
    """Stops when the check passed on the tip, else asks for another cycle."""
    task = _first(messages, "user")
    if re.search(r"^Check: passed", task, re.MULTILINE):
        return _call("finish", summary="the check passes", result={"decision": "stop", "reason": "check passes"})
    return _call("finish", summary="the check does not pass", result={"decision": "continue",
                                                                         "reason": "the check does not pass yet"})
