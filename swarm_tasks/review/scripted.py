"""A scripted stand-in for a review model (``scripted/py:swarm_tasks.review.scripted:reviewer``).

It behaves like a diligent but unimaginative model: it uses the same tools a real model gets (quick
scan, analyzer, reading the file, the tracer) and reports what they show. It is deterministic and
stateless (its next move depends only on the conversation), so it works in any worker process and
after a crash. Reports made with it say which model produced them: never mistake it for an LLM.
"""

from __future__ import annotations

import json
import re

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage

_SCAN_TASK = re.compile(r"Quick-scan (\S+?):")
_REVIEW_TASK = re.compile(r"Review (\S+) for (\w+) problems")
_FINDING_FIELDS = ("file", "start_line", "end_line", "severity", "category", "rule", "title", "evidence",
                   "recommendation", "confidence", "cwe")


def _call(name: str, **arguments: object) -> Step:
    return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments)])


def _tool_outputs(messages: list[ChatMessage]) -> list[str]:
    return [m.get("content") or "" for m in messages if m["role"] == "tool"]


def _first(messages: list[ChatMessage], role: str) -> str:
    return next((m.get("content") or "" for m in messages if m["role"] == role), "")


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def reviewer(messages: list[ChatMessage], _tools: object) -> Step:
    """Scanner, specialist reviewer or sub-reviewer, told apart by the instructions it was given."""
    system, task = _first(messages, "system"), _first(messages, "user")
    outputs = _tool_outputs(messages)
    if "quick-scan agent" in system:
        path = _SCAN_TASK.search(task)
        if not outputs:
            return _call("scan_file", path=path.group(1) if path else "")
        scan = _json(outputs[0])
        result = {"risk": scan.get("risk", "low"), "flags": scan.get("flags", [])} if isinstance(scan, dict) else {
            "risk": "low", "flags": []}
        return _call("finish", summary=f"risk {result['risk']}", result=result)
    if "sub-reviewer" in system:
        if not outputs:
            return _call("trace_finding")
        trace = _json(outputs[0])
        new = trace.get("new_findings", []) if isinstance(trace, dict) else []
        findings = [{k: f[k] for k in _FINDING_FIELDS if f.get(k) is not None} for f in new]
        return _call("finish", summary=str(trace.get("summary", "traced") if isinstance(trace, dict) else "traced"),
                     result={"summary": "traced with the deterministic tracer", "confirmed": True,
                             "findings": findings})
    match = _REVIEW_TASK.search(task)
    path, kind = (match.group(1), match.group(2)) if match else ("", "security")
    if not outputs:
        return _call("run_analyzer", kind=kind, path=path)
    if len(outputs) == 1:
        return _call("read_file", path=path, offset=1, limit=400)
    leads = _json(outputs[0])
    findings = [{k: f[k] for k in _FINDING_FIELDS if f.get(k) is not None} for f in leads or []
                if isinstance(f, dict)]
    return _call("finish", summary=f"{len(findings)} {kind} findings confirmed by reading the file",
                 result={"findings": findings})


def slow_reviewer(messages: list[ChatMessage], tools: object) -> Step:
    """The same behaviour with 0.3 s per reply, so that faults injected in tests land mid-run."""
    return reviewer(messages, tools).model_copy(update={"delay_s": 0.3})
