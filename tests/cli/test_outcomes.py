"""Honest outcomes through the real `swarm` command and real worker processes: a review whose model refuses
the key, whose reviewers never finish, that hits --max-cost or --max-agents, or that meets a flood of
trivial files ends as what it is (state, reason, exit code), and the Python API says the same.

One Redis, one model server and one worker process serve every case here (module scope): each case is one
run, so the whole module costs about one worker start-up plus the runs themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from coordination.embedded import EmbeddedRedis
from swarm_tasks.api import Swarm
from swarm_tasks.models.mock_server import MockServer
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import QUEUES, ModelPrice, SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster
from tests.review.helpers import EXAMPLE, write_tree
from tests.review.test_reports import validate_sarif

SCRIPTED = "scripted/py:swarm_tasks.review.scripted:reviewer"

pytestmark = pytest.mark.slow

SWARM = [sys.executable, "-m", "swarm_tasks.cli"]
PRICED = "scripted/py:swarm_tasks.review.scripted:reviewer"
STUBBORN = "scripted/py:tests.cli.scripts:stubborn_reviewer"
LOOPING = "scripted/py:tests.cli.scripts:looping_reviewer"
SMALL = {  # two flagged files, each with a planted problem
    "app/db.py": '"""Orders."""\n\n\ndef find(cur, name):\n    """Find."""\n'
                 '    cur.execute("SELECT * FROM o WHERE n = \'%s\'" % name)\n',
    "app/run.py": '"""Runner."""\nimport os\n\n\ndef run(cmd):\n    """Run."""\n    os.system(cmd)\n',
}


@dataclass
class Fleet:
    settings: SwarmSettings
    env: dict[str, str]
    server: MockServer
    tmp: Path

    def swarm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SWARM, *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)

    def review(self, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
        done = self.swarm("review", *args, "--json", "--timeout", "500")
        assert done.stdout.strip(), done.stderr
        return done, json.loads(done.stdout)

    def status(self, run_id: str, *extra: str) -> object:
        shown = self.swarm("status", run_id, "--json", *extra)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    def api_outcome(self, run_id: str) -> tuple[RunStatus, dict]:
        """What the Python API says of the run (from another process' point of view: a fresh client)."""
        with Swarm(self.settings, workers=0) as api:
            run = api.run(run_id)
            record = run.wait(timeout_s=5)
            return record.status, run.outcome().model_dump(mode="json")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("outcomes")
    redis = EmbeddedRedis().start()
    server = MockServer(api_key="sk-right").start()  # the provider accepts only sk-right
    # A key is present but wrong: the provider refuses it (401), as with a revoked or mistyped key.
    settings = SwarmSettings(redis_url=SecretStr(redis.url), state_dir=tmp / "state", model_guard="local-only",
                             api_base=server.url, api_key=SecretStr("sk-wrong"),
                             model_prices={PRICED: ModelPrice(input_usd_per_mtok=1000, output_usd_per_mtok=1000)},
                             agent_turn_lease_s=30.0, agent_step_grace_s=30.0, sweep_interval_s=0.5)
    cluster = LocalCluster(settings, workers=1, queues=QUEUES, concurrency=16, name_prefix="outcome",
                           log_dir=tmp / "state" / "logs").start()  # where `swarm logs` reads them
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env = {**keep, "SWARM_REDIS_URL": redis.url, "SWARM_STATE_DIR": str(tmp / "state"),
           "SWARM_MODEL_GUARD": "local-only", "SWARM_API_BASE": server.url, "SWARM_API_KEY": "sk-wrong",
           "COLUMNS": "200"}
    try:
        yield Fleet(settings, env, server, tmp)
    finally:
        cluster.stop()
        server.stop()
        redis.stop()


def test_every_model_agent_refused_by_the_provider_fails_the_review_and_every_gate(fleet):
    done, result = fleet.review(str(EXAMPLE), "--model", "openai/mock-model", "--fail-on", "high")
    assert done.returncode == 1, done.stderr
    assert result["status"] == "failed" and result["findings"] == 0
    assert result["reason"].startswith("13 of 14 scanners failed: the model openai/mock-model was refused "
                                       "(401 authentication): check SWARM_API_KEY")
    assert "13 file(s) left out, not scanned (its scan failed, authentication refused): app.py" in result["reason"]
    outcome = result["outcome"]
    assert outcome["failed"] == {"auth": 13} and outcome["roles"]["scanner"] == {"done": 1, "failed": 13}
    assert fleet.server.counters.unauthorized >= 13 and fleet.server.counters.replies == 0  # once each, no retry
    run_id = result["run"]

    status = fleet.status(run_id)
    assert status["status"] == "failed" and status["reason"] == result["reason"]
    assert status["outcome"] == outcome and 0 < status["elapsed_s"] < 500
    failed = fleet.status(run_id, "--failed")
    assert len(failed) == 13 and {a["reason_class"] for a in failed} == {"auth"}
    assert all("401 authentication" in a["reason"] and a["subject"] for a in failed)
    text = fleet.swarm("status", run_id, "--failed")
    assert text.returncode == 0 and "13 agents did not finish" in text.stdout and "auth" in text.stdout

    sarif = fleet.swarm("report", run_id, "--format", "sarif")
    doc = validate_sarif(sarif.stdout)
    (invocation,) = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    named = [n for n in invocation["toolExecutionNotifications"] if n.get("properties", {}).get("agentId")]
    assert len(named) == 13 and all("401 authentication" in n["message"]["text"] for n in named)

    assert fleet.api_outcome(run_id) == (RunStatus.FAILED, outcome)

    listed = fleet.swarm("agents", run_id, "--failed", "--role", "scanner")  # as a user reads it
    assert listed.returncode == 0 and f"run {run_id}: 13 agents (failed, role scanner)" in listed.stdout
    for agent in failed:
        assert re.search(rf"^{agent['agent_id']}  scanner  failed \[auth\]  {re.escape(agent['subject'])}$",
                         listed.stdout, re.M), listed.stdout
    assert listed.stdout.count("401 authentication") == 13  # each one's reason, on the line below it
    assert fleet.swarm("agents", run_id, "--failed", "--role", "reviewer").stdout.strip() == \
        f"run {run_id}: no failed, role reviewer"

    # The logs: each failed agent's line in the worker's log, its reason and its timeline.
    logs = json.loads(fleet.swarm("logs", run_id, "--json").stdout)
    lines = [w["line"] for w in logs["worker_logs"]]
    for agent in failed:
        (line,) = [x for x in lines if agent["agent_id"] in x]
        assert f"run {run_id}: agent {agent['agent_id']} (review.scan on {agent['subject']!r}) failed [auth]" in line
        assert "401 authentication" in line
    assert sum(e["type"] == "agent.failed" for e in logs["events"]) == 13
    one = fleet.swarm("logs", run_id, failed[0]["agent_id"])
    assert one.returncode == 0 and f"agent {failed[0]['agent_id']}" in one.stdout and "[auth]" in one.stdout
    assert "reason: " in one.stdout and "401 authentication" in one.stdout
    assert "worker log lines (1," in one.stdout and "agent.failed" in one.stdout


def test_reviewers_stopped_by_the_loop_guard_or_their_budget_make_the_review_partial_or_failed(fleet):
    repo = write_tree(fleet.tmp / "small", SMALL)
    done, result = fleet.review(str(repo), "--reviewer-model", STUBBORN, "--fail-on", "critical")
    assert done.returncode == 4, done.stderr
    assert result["status"] == "partial"
    outcome = result["outcome"]
    assert outcome["stopped"] == {"loop": 2, "budget": 2} and outcome["agents"]["done"] >= 7
    assert "2 of 8 reviewers were stopped: loop detected: the same call to list_files was repeated 3 times" \
        in result["reason"]
    assert "2 of 8 reviewers were stopped: agent budget exceeded: turns used 20 of 20" in result["reason"]
    assert "app/db.py: not fully reviewed (security reviewer stopped, loop detected; documentation reviewer " \
           "stopped, agent budget spent)" in outcome["left_out"]
    assert fleet.api_outcome(result["run"]) == (RunStatus.PARTIAL, outcome)

    done, result = fleet.review(str(repo), "--reviewer-model", LOOPING)  # none finishes: nothing useful
    assert done.returncode == 1 and result["status"] == "failed", done.stderr
    assert result["reason"].startswith("8 of 8 reviewers were stopped: loop detected")
    assert fleet.api_outcome(result["run"])[0] is RunStatus.FAILED


def test_a_review_stopped_by_max_cost_is_partial_and_names_the_cap(fleet):
    repo = write_tree(fleet.tmp / "priced", SMALL)
    # One agent at a time, so the cap falls between the first reviewers' calls and the later reviewers'.
    done, result = fleet.review(str(repo), "--reviewer-model", PRICED, "--max-cost", "4", "--max-concurrent", "1")
    assert done.returncode == 4, done.stderr
    assert result["status"] == "partial"
    outcome = result["outcome"]
    assert outcome["stopped"]["cost_cap"] >= 1 and outcome["roles"]["reviewer"].get("done", 0) >= 1
    stopped = outcome["stopped"]["cost_cap"]
    assert f"{stopped} of 8 reviewers were stopped: the run's cost cap was reached: $" in result["reason"]
    assert "spent of $4 (raise --max-cost or SWARM_RUN_MAX_COST_USD)" in result["reason"]
    assert fleet.api_outcome(result["run"]) == (RunStatus.PARTIAL, outcome)


def test_max_agents_on_the_example_shop_is_partial_and_names_what_was_left_out(fleet):
    out = fleet.tmp / "capped"
    # a model in the review (the sub-reviewers' here) makes each scan and reviewer an agent of its own
    done, result = fleet.review(str(EXAMPLE), "--max-agents", "20", "--fail-on", "critical", "--out", str(out),
                                "--subreviewer-model", SCRIPTED)
    assert done.returncode == 4, done.stderr
    assert result["status"] == "partial" and result["findings"] > 0
    left = result["outcome"]["left_out"]
    assert result["files_left_out"] == len(left) >= 5
    assert any(item.endswith("not scanned (the agent budget (20 agents) could not cover it: raise --max-agents "
                             "or SWARM_RUN_MAX_AGENTS)") for item in left)
    assert "file(s) left out, not scanned (the agent budget (20 agents)" in result["reason"]
    markdown = (out / "report.md").read_text()
    assert "**Outcome: PARTIAL review**" in markdown and f"Files left out ({len(left)}):" in markdown
    assert fleet.api_outcome(result["run"]) == (RunStatus.PARTIAL, result["outcome"])


def test_a_flood_of_tiny_files_does_not_hide_the_dangerous_one(fleet):
    files = {f"pkg{i // 500}/m{i}.py": f"X{i} = {i}\n" for i in range(20_000)}
    files["pkg7/run.py"] = "import os\nos.system(input())\n"
    repo = write_tree(fleet.tmp / "flood", files)
    done, result = fleet.review(str(repo), "--max-agents", "250", "--subreviewer-model", SCRIPTED)
    assert done.returncode == 4, done.stderr
    assert result["status"] == "partial" and result["files_scanned"] == result["files_inventoried"] == 20_001
    with Swarm(fleet.settings, workers=0) as api:
        report = api.run(result["run"]).report()
    assert any(f.file == "pkg7/run.py" and f.start_line == 2 and f.category.value == "security"
               for f in report.findings)
    assert sum(a.kind == "batch" for a in report.agents) == 200  # 100 trivial files per scanning agent
    assert "pkg7/run.py" not in " ".join(result["outcome"]["left_out"])
    assert "flagged but not reviewed (the trivial files' share of the agent budget was spent" in result["reason"]


def test_retry_of_the_failed_agents_reopens_a_failed_review_and_rebuilds_its_report(fleet):
    repo = write_tree(fleet.tmp / "retried", SMALL)
    done, result = fleet.review(str(repo), "--scanner-model", "openai/mock-model")
    assert done.returncode == 1 and result["status"] == "failed" and result["files_scanned"] == 0, done.stderr
    run_id = result["run"]
    failed = json.loads(fleet.swarm("agents", run_id, "--failed", "--json").stdout)
    assert len(failed) == 2 and {a["reason_class"] for a in failed} == {"auth"}
    assert {a["subject"] for a in failed} == set(SMALL)

    # The key is fixed at the provider: the same agents can now finish (the server plays the scripted scanner).
    fleet.server.api_key, fleet.server.script = "sk-wrong", "py:swarm_tasks.review.scripted:reviewer"
    try:
        retried = fleet.swarm("retry", run_id, "--failed", "--json")
    finally:
        fleet.server.api_key, fleet.server.script = "sk-right", None
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert again["run"] == run_id and again["status"] == "completed" and again["files_scanned"] == 2
    assert again["findings"] >= 2  # the planted SQL and shell injections, found by the reviewers it now got
    assert "2 agent(s) started over" in retried.stderr
    status = fleet.status(run_id)
    assert status["status"] == again["status"] and status["outcome"]["failed"] == {}
    # Tokens are counted as each reply arrives too: never less than the recorded turns' (plus the refused tries')
    assert status["live_tokens"] >= status["tokens"] > 0
    scanners = json.loads(fleet.swarm("agents", run_id, "--role", "scanner", "--json").stdout)
    assert sorted(a["retries"] for a in scanners) == [0, 1, 1]  # the inventory ran once, the scans twice
    report = json.loads(fleet.swarm("report", run_id, "--format", "json").stdout)
    assert report["files_scanned"] == 2 and report["outcome"]["status"] == "completed"  # rebuilt
    assert len(report["findings"]) == again["findings"]
    nothing = fleet.swarm("retry", run_id, "--failed")
    assert nothing.returncode == 0 and "nothing to retry" in nothing.stderr  # completed: left as it is
