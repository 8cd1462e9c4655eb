"""The real `swarm` command, run as a user would: exit codes, --json, bad input, a review end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.api import Swarm
from swarm_tasks.settings import QUEUES
from swarm_tasks.worker.cluster import LocalCluster
from tests.review.helpers import EXAMPLE, write_tree
from tests.review.test_reports import validate_sarif

SWARM = [sys.executable, "-m", "swarm_tasks.cli"]


def swarm(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return {**keep, "SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path / "state"),
            "SWARM_MODEL_GUARD": "local-only", "COLUMNS": "120"}


def test_bad_input_exits_2_with_a_clear_message_and_enqueues_nothing(env, redis_client):
    missing = swarm("review", "/no/such/repo", "--json", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    unknown = swarm("status", "run-does-not-exist", env=env)
    assert unknown.returncode == 2 and "no run" in unknown.stderr
    bad_flag = swarm("review", str(EXAMPLE), "--max-agents", "zero", env=env)
    assert bad_flag.returncode == 2
    assert {q: redis_client.llen(q) for q in QUEUES} == dict.fromkeys(QUEUES, 0)  # scan, review, ... too
    assert list(redis_client.scan_iter(match="*")) == []  # no run record, no queue, nothing at all


def test_steering_commands_on_an_unknown_run_exit_2(env):
    for command in ("watch", "cancel", "resume"):
        result = swarm(command, "review-does-not-exist", env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert "no run 'review-does-not-exist'" in result.stderr and "Traceback" not in result.stderr
    assert swarm("watch", "review-does-not-exist", "--json", env=env).returncode == 2


def test_watch_cancel_and_resume_a_stalled_run(env, swarm_settings, tmp_path, redis_client):
    repo = write_tree(tmp_path / "tiny", {"app.py": "def calc(expr):\n    return eval(expr)\n"})
    with Swarm(swarm_settings, workers=0) as api:  # no worker anywhere: the run cannot progress
        run_id = api.review(repo).id
    assert redis_client.llen("scan") == 1

    watching = swarm("watch", run_id, "--json", "--timeout", "0.5", env=env)
    assert watching.returncode == 1, watching.stderr  # still running when the watch gave up
    snapshot = json.loads(watching.stdout)  # one JSON object, no live view around it
    assert snapshot["id"] == run_id and snapshot["status"] == "running" and snapshot["kind"] == "review"
    assert snapshot["agents"]["ready"] == 1 and "scanner" in snapshot["roles"]

    resumed = swarm("resume", run_id, env=env)
    assert resumed.returncode == 0 and "1 agents re-sent" in resumed.stdout, resumed.stderr
    assert redis_client.llen("scan") == 2  # the lost step was sent again

    cancelled = swarm("cancel", run_id, "--reason", "from the cli test", env=env)
    assert cancelled.returncode == 0 and f"run {run_id} cancelled" in cancelled.stdout, cancelled.stderr
    status = json.loads(swarm("status", run_id, "--json", env=env).stdout)
    assert status["status"] == "cancelled" and status["reason"] == "from the cli test"
    assert status["agents"]["cancelled"] == 1

    again = swarm("cancel", run_id, env=env)
    assert again.returncode == 1 and "had already ended: cancelled" in again.stdout
    not_resumed = swarm("resume", run_id, env=env)
    assert not_resumed.returncode == 1 and "cancelled: nothing to resume" in not_resumed.stdout
    final = swarm("watch", run_id, "--json", env=env)  # an ended run: returns at once
    assert final.returncode == 1 and json.loads(final.stdout)["status"] == "cancelled"
    live = swarm("watch", run_id, env=env)
    assert live.returncode == 1 and "cancelled" in live.stdout and run_id in live.stdout


@pytest.mark.slow
def test_review_end_to_end_json_report_status_workers(env, tmp_path, swarm_settings):
    fleet = LocalCluster(swarm_settings, workers=1, queues=QUEUES, concurrency=8, name_prefix="cli",
                         log_dir=tmp_path / "logs").start()
    try:
        check_end_to_end(env, tmp_path)
    finally:
        fleet.stop()


def check_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = swarm("review", str(EXAMPLE), "--workers", "0", "--json", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["findings"] > 15 and result["mode"] == "deterministic"
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "report.sarif"}
    run_id = result["run"]
    status = json.loads(swarm("status", run_id, "--json", env=env).stdout)
    assert status["status"] == "completed" and status["agents"]["done"] == result["agents"]
    listing = json.loads(swarm("status", "--json", env=env).stdout)
    assert run_id in {r["id"] for r in listing}
    sarif = swarm("report", run_id, "--format", "sarif", env=env)
    assert sarif.returncode == 0
    validate_sarif(sarif.stdout)
    strict = swarm("review", str(EXAMPLE), "--workers", "0", "--json", "--fail-on", "critical", env=env)
    assert strict.returncode == 3
    watched = swarm("watch", run_id, "--json", env=env)  # a finished run: its final snapshot, at once
    assert watched.returncode == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert final["status"] == "completed" and final["agents"]["done"] == result["agents"]
    assert {"scanner", "reviewer"} <= set(final["roles"]) and final["result"]["findings"] == result["findings"]
    live = swarm("watch", run_id, env=env)
    assert live.returncode == 0 and "completed" in live.stdout and f"agents {result['agents']}/" in live.stdout
    ended = swarm("cancel", run_id, env=env)
    assert ended.returncode == 0 and "had already ended: completed" in ended.stdout
    assert json.loads(swarm("status", run_id, "--json", env=env).stdout)["status"] == "completed"
    resumed = swarm("resume", run_id, env=env)
    assert resumed.returncode == 0 and "completed: nothing to resume" in resumed.stdout
    workers = json.loads(swarm("workers", "--json", env=env).stdout)
    assert [w["worker"].split("@")[0] for w in workers] == ["cli0"] and "review" in workers[0]["queues"]
