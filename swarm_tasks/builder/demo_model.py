"""The stand-in model of the build demo: a planner, workers and a judge whose moves are real edits.

The local OpenAI-compatible test server plays it (``--script py:swarm_tasks.builder.demo_model:respond``),
so every move goes through litellm over HTTP and the build's real tools. Like every scripted model
here it is stateless: each reply is a function of the conversation so far, so it behaves the same in
any worker process and after a crash. It reads the role from the agent's instructions.

- The planner lists the Python files, reads each module, and files one task per module that has no
  docstring (the docstring it should get names the module's functions) and one task to make the
  check pass; it waits for them, then finishes.
- A docstring worker reads its module, writes it back with the docstring first, commits and pushes.
- The check worker runs the check; for each failing test ``test_<name>`` it finds ``def <name>(``,
  reads that file and removes an off-by-one on a length (``(len(x) + 1)`` becomes ``len(x)``), runs
  the check again, and pushes only once it passes (else it puts the file back and says so).
- The judge stops when the check passed on the tip and asks for another cycle otherwise.
"""

from __future__ import annotations

import json
import re

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage

_NUMBERED = re.compile(r"^\s*\d+\t(.*)$")
_FIELD = re.compile(r"^(FILE|DOCSTRING|KIND)=(.*)$", re.MULTILINE)
_DEF = re.compile(r"^def ([A-Za-z_]\w*)\(", re.MULTILINE)
_FAILED_TEST = re.compile(r"FAILED \S+::test_(\w+)")
_OFF_BY_ONE = re.compile(r"\((len\([^()]*\)) [+-] 1\)")


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


def _content(answer: str) -> str:
    """A file's text as read_file showed it (numbered lines)."""
    lines = [m.group(1) for line in answer.splitlines() if (m := _NUMBERED.match(line))]
    return "\n".join(lines) + "\n" if lines else ""


def _has_docstring(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return first.lstrip().startswith(('"""', "'''", 'r"""'))


def docstring_for(path: str, text: str) -> str:
    """A one-line module docstring naming what the module offers."""
    parts = path.removesuffix(".py").split("/")
    package, name = parts[0], parts[-1]
    names = [n for n in _DEF.findall(text) if not n.startswith("_")]
    exported = re.findall(r"import ([\w, ]+)$", text, re.MULTILINE)
    if name == "__init__":
        listed = sorted({n.strip() for group in exported for n in group.split(",") if n.strip()})
        return f"{package}: {', '.join(listed) or 'a package'}."
    return f"{package}.{name}: {', '.join(names) or 'module'}."


# -- planner -----------------------------------------------------------------------------------------

def planner(messages: list[ChatMessage]) -> Step:
    calls = _calls(messages)
    names = [c[0] for c in calls]
    if not calls:
        return _call("list_files", path=".", pattern="*.py")
    modules = [line.strip() for line in calls[0][2].splitlines()
               if line.strip().endswith(".py") and "/" in line and not line.strip().startswith("tests/")]
    read = {str(args.get("path")): answer for name, args, answer in calls if name == "read_file"}
    unread = [m for m in modules if m not in read]
    if unread:
        return _call("read_file", path=unread[0])
    if "file_tasks" not in names:
        tasks: list[dict[str, object]] = []
        for module in modules:
            text = _content(read[module])
            if not _has_docstring(text):
                doc = docstring_for(module, text)
                tasks.append({"title": f"add a module docstring to {module}", "files": [module],
                              "body": f"Give {module} a module docstring.\nKIND=docstring\nFILE={module}\n"
                                      f"DOCSTRING={doc}"})
        tasks.append({"title": "make the check pass", "body": "Run the check and fix what makes it fail.\n"
                      "KIND=check", "priority": 1})
        return _call("file_tasks", tasks=tasks)
    if "wait_for_tasks" not in names:
        return _call("wait_for_tasks")
    return _call("finish", summary="planned the docstrings and the fix; every task has ended")


# -- workers -----------------------------------------------------------------------------------------

def _landed_or_failed(answer: str) -> Step:
    if answer.startswith("landed") or "already landed" in answer:
        return _call("finish", summary=answer.splitlines()[0])
    return _call("finish", summary=f"not landed: {answer.splitlines()[0][:300] if answer else 'no answer'}",
                 success=False)


def docstring_worker(fields: dict[str, str], calls: list[tuple[str, dict[str, object], str]]) -> Step:
    path, doc = fields.get("FILE", ""), fields.get("DOCSTRING", "")
    if not calls:
        return _call("read_file", path=path)
    name, _args, answer = calls[-1]
    if name == "read_file":
        text = _content(answer)
        if _has_docstring(text):
            return _call("finish", summary=f"{path} already has a docstring")
        return _call("write_file", path=path, content=f'"""{doc}"""\n\n{text}')
    if name == "write_file":
        return _call("commit_and_push", message=f"Add a module docstring to {path}")
    if name == "commit_and_push":
        return _landed_or_failed(answer)
    return _call("finish", summary=f"stopped after {name}: {answer[:200]}", success=False)


def check_worker(calls: list[tuple[str, dict[str, object], str]]) -> Step:
    if not calls:
        return _call("run_check")
    name, args, answer = calls[-1]
    checks = [a for n, _, a in calls if n == "run_check"]
    if name == "run_check" and len(checks) == 1:
        failing = _FAILED_TEST.findall(answer)
        if " passed (" in answer.splitlines()[0] or not failing:
            return _call("finish", summary="the check passes: nothing to fix")
        return _call("grep", pattern=f"^def {failing[0]}\\(", glob="*.py")
    if name == "grep":
        hit = next((line.split(":", 1)[0] for line in answer.splitlines() if ":def " in line), "")
        if not hit:
            return _call("finish", summary="could not find the function under test", success=False)
        return _call("read_file", path=hit)
    if name == "read_file":
        for line in _content(answer).splitlines():
            if _OFF_BY_ONE.search(line):
                return _call("edit_file", path=str(args["path"]), old=line, new=_OFF_BY_ONE.sub(r"\1", line))
        return _call("finish", summary=f"no off-by-one in {args.get('path')}: cannot fix it", success=False)
    if name == "edit_file":
        return _call("run_check")
    if name == "run_check":
        if " passed (" in answer.splitlines()[0]:
            return _call("commit_and_push", message="Fix the off-by-one in the mean word length")
        return _call("finish", summary="the check still fails after the fix; giving up", success=False)
    if name == "commit_and_push":
        return _landed_or_failed(answer)
    return _call("finish", summary=f"stopped after {name}: {answer[:200]}", success=False)


def judge(messages: list[ChatMessage]) -> Step:
    if re.search(r"^Check: passed", _first(messages, "user"), re.MULTILINE):
        return _call("finish", summary="the check passes", result={"decision": "stop",
                                                                  "reason": "every module documented, check green"})
    return _call("finish", summary="the check fails", result={"decision": "continue", "reason": "the check fails"})


def respond(messages: list[ChatMessage], _tools: object = None) -> Step:
    """The reply for whichever agent of the build is asking (read from its instructions)."""
    system = _first(messages, "system")
    if "planner of a build swarm" in system:
        return planner(messages)
    if "judge of a build swarm" in system:
        return judge(messages)
    if "worker of a build swarm" in system:
        fields = dict(_FIELD.findall(_first(messages, "user")))
        calls = _calls(messages)
        return docstring_worker(fields, calls) if fields.get("KIND") == "docstring" else check_worker(calls)
    return _call("finish", summary="nothing for this agent in the demo", success=False)
