"""The real `swarm` command, run as a user would: exit codes, --json, bad input, a review end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.cluster import LocalCluster
from swarm_tasks.settings import QUEUES
from tests.review.helpers import EXAMPLE
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
    assert redis_client.keys("swarm:{review*") == [] and redis_client.llen("agents") == 0


def test_read_commands_need_the_shared_redis(env):
    no_url = {k: v for k, v in env.items() if k != "SWARM_REDIS_URL"}
    result = swarm("status", env=no_url)
    assert result.returncode == 2 and "SWARM_REDIS_URL" in result.stderr


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
    workers = json.loads(swarm("workers", "--json", env=env).stdout)
    assert [w["worker"].split("@")[0] for w in workers] == ["cli0"] and "review" in workers[0]["queues"]
