"""Scripted review models for the outcome tests (``scripted/py:tests.cli.scripts:<name>``): models that never
call ``finish``, so the loop guard or a budget stops them. Stateless, so any worker process plays them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.review.scripted import reviewer

HOLD_FILE = "test-hold-shop-scans"  # see uneven_scanner
_KIND = re.compile(r"Review \S+ for (\w+) problems")


def _kind(messages: list[ChatMessage]) -> str:
    task = next((m.get("content") or "" for m in messages if m["role"] == "user"), "")
    match = _KIND.search(str(task))
    return match.group(1) if match else ""


def looping_reviewer(messages: list[ChatMessage], _tools: object) -> Step:
    """Lists the same directory forever: the loop guard stops it."""
    return Step(tool_calls=[ScriptedCall(name="list_files", arguments={"path": "."})])


def stubborn_reviewer(messages: list[ChatMessage], tools: object) -> Step:
    """Security reviewers loop, documentation reviewers only talk (their turn budget stops them), the
    others review as the ordinary scripted reviewer does."""
    kind = _kind(messages)
    if kind == "security":
        return looping_reviewer(messages, tools)
    if kind == "documentation":
        return Step(content="Still thinking about the docstrings.")
    return reviewer(messages, tools)


def uneven_scanner(messages: list[ChatMessage], tools: object) -> Step:
    """The scripted reviewer, but a quick scan of a file under shop/ takes 4 s a reply (the others 0.05 s):
    a run stays mid-way for a while, some files scanned and reviewed, some not yet."""
    task = str(next((m.get("content") or "" for m in messages if m["role"] == "user"), ""))
    slow = "Quick-scan shop/" in task
    # A test that must act mid-run holds the shop scans (25 s a reply) with a file saying "hold" in the state
    # directory the workers share, so a loaded machine cannot finish the run first; "go" lets them run fast.
    gate = Path(os.environ.get("SWARM_STATE_DIR", "/nonexistent")) / HOLD_FILE
    said = gate.read_text().strip() if slow and gate.is_file() else ""
    delay = {"hold": 25.0, "go": 0.05}.get(said, 4.0) if slow else 0.05
    return reviewer(messages, tools).model_copy(update={"delay_s": delay})

