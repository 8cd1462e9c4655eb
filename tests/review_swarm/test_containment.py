"""A reviewed repository cannot make a review read outside it: through the real CLI and its real workers
(a path and a file:// URL) no report format quotes a line of a file outside the repository, and a model's
tools (scan_file, run_analyzer, read_file, grep) refuse absolute and ``../`` paths and symlinks out as tool
results the model sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.workflow import load_report, on_idle, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.sources import SourceSpec
from tests.review.containment import assert_quotes_nothing_outside, hostile_repo

PROBES = [("scan_file", {"path": "/etc/passwd"}), ("scan_file", {"path": "../outside/x.py"}),
          ("scan_file", {"path": "pkg/shadow.py"}), ("run_analyzer", {"kind": "security", "path": "/etc/passwd"}),
          ("run_analyzer", {"kind": "quality", "path": "pkg/passwd.py"}),
          ("run_analyzer", {"kind": "security", "path": "pkg/../../outside/x.py"}),
          ("read_file", {"path": "/etc/passwd"}), ("read_file", {"path": "pkg/near.py"}),
          ("read_file", {"path": "../outside/x.py"}), ("grep", {"pattern": "root", "path": "/etc"})]


def _offered(tools: object) -> list[tuple[str, dict[str, str]]]:
    names = {t.get("function", {}).get("name") for t in tools or [] if isinstance(t, dict)}  # type: ignore[attr-defined]
    return [(name, arguments) for name, arguments in PROBES if name in names]


def prober(messages: list[ChatMessage], tools: object) -> Step:
    """A model that tries each of its tools on paths outside the repository (all in one turn), then
    finishes with nothing."""
    if not any(m["role"] == "tool" for m in messages):
        return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments) for name, arguments in _offered(tools)])
    system = next((m.get("content") or "" for m in messages if m["role"] == "system"), "")
    result = {"risk": "high", "flags": []} if "quick-scan agent" in system else {"findings": []}
    return Step(tool_calls=[ScriptedCall(name="finish", arguments={"summary": "probed", "result": result})])


def test_model_tools_refuse_paths_out_of_the_repository(local, tmp_path: Path) -> None:
    scripted = f"scripted/py:{__name__}:prober"
    job = ReviewJob(source=SourceSpec(location=str(hostile_repo(tmp_path))),
                    models={"scanner": scripted, "reviewer": scripted, "subreviewer": scripted})
    run = submit_review(local.services, job)
    local.drain(max_steps=3000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    assert record.status is RunStatus.COMPLETED, record.outcome
    store = local.agents(run.id)
    agents = [store.get(i) for i in sorted({i for s in AgentStatus for i in store.ids(s)})]
    probed: set[str] = set()
    for agent in (a for a in agents if a.kind != "program"):
        calls = {c["id"]: c["function"] for m in store.conversation(agent) if m["role"] == "assistant"
                 for c in m.get("tool_calls") or []}
        for message in store.conversation(agent):
            if message["role"] != "tool" or calls[message["tool_call_id"]]["name"] == "finish":
                continue
            call, answer = calls[message["tool_call_id"]], str(message.get("content") or "")
            assert_quotes_nothing_outside(answer, tmp_path, f"{call['name']}({call['arguments']})")
            assert "outside" in answer or "not reviewed" in answer, (call, answer[:300])
            probed.add(call["name"])
    assert probed == {name for name, _ in PROBES}  # every tool was tried and refused
    assert_quotes_nothing_outside(json.dumps(load_report(local.services, run.id).model_dump(mode="json")),
                                  tmp_path, "the report")


@pytest.mark.slow
@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_a_review_through_the_cli_quotes_no_file_outside_the_repository(tmp_path: Path, as_url: bool) -> None:
    repo = hostile_repo(tmp_path)
    if as_url:  # cloned by the workers: the symlinks and the imports come along
        for args in (["init", "-q"], ["add", "-A"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
            subprocess.run(["git", "-C", str(repo), *args], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"), SWARM_MODEL_GUARD="local-only")
    source = f"file://{repo}" if as_url else str(repo)
    done = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "review", source, "--json"], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_quotes_nothing_outside(done.stdout, tmp_path, "the CLI's answer")
    result = json.loads(done.stdout)
    formats = sorted(Path(result["report_dir"]).iterdir())
    assert {p.name for p in formats} >= {"report.json", "report.md", "report.sarif"}
    for path in formats:
        assert_quotes_nothing_outside(path.read_text(errors="replace"), tmp_path, path.name)
    report = json.loads((Path(result["report_dir"]) / "report.json").read_text())
    assert {r["path"] for r in report["reviewed"]} >= {"pkg/app.py", "web/index.js"}
    refused = {s["path"]: s["reason"] for s in report["dependencies"]["skipped"]}
    assert refused["...outside"] == "outside-root" and refused["../../.."] == "outside-root"
    assert refused["pkg/near.py"] == "symlink"
    assert "outside-root" in (Path(result["report_dir"]) / "report.md").read_text()
