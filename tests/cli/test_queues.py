"""A run waiting on a queue nobody consumes says so (and for how long) in `swarm status`, `watch` and
`workers`, instead of "running, 1 active" forever; `swarm workers` shows each worker's steps in flight
and done, its load and heartbeat age; and the views read in 80 columns with nothing cut that a user copies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from swarm_tasks.api import Swarm
from swarm_tasks.worker.cluster import LocalCluster
from tests.cli.test_cli import env, swarm  # noqa: F401 - env is a fixture
from tests.review.helpers import write_tree

pytestmark = pytest.mark.slow
LONG_TITLE = "review of a repository whose name is long enough to wrap twice at eighty columns " * 2


def test_a_queue_without_consumer_is_a_warning_everywhere_and_workers_show_their_load(
        env, swarm_settings, tmp_path: Path) -> None:  # noqa: F811 - env is the fixture
    env = {**env, "COLUMNS": "80"}
    fleet = LocalCluster(swarm_settings, workers=1, queues=("agents", "review", "control"), concurrency=4,
                         name_prefix="noscan", log_dir=tmp_path / "logs").start()  # nobody reads "scan"
    try:
        repo = write_tree(tmp_path / "tiny", {"app.py": "def calc(expr):\n    return eval(expr)\n"})
        with Swarm(swarm_settings, workers=0) as api:
            run_id = api.review(repo, title=LONG_TITLE).id
        time.sleep(1.5)  # it has waited a moment: the warning says how long

        snapshot = json.loads(swarm("status", run_id, "--json", env=env).stdout)
        assert snapshot["status"] == "running"
        (need,) = snapshot["queues"]
        assert need["queue"] == "scan" and need["starved"] and need["waiting"] == 1 and need["waiting_s"] >= 1
        (warning,) = snapshot["warnings"]
        assert warning.startswith("queue scan has no consumer: 1 agent(s) waiting for it, the oldest for ")
        assert "celery -A swarm_tasks worker -Q scan" in warning
        assert [p["phase"] for p in snapshot["phases"]] == ["inventory", "scan", "review", "dependencies", "report"]
        assert snapshot["phases"][0] == {"phase": "inventory", "done": 0, "total": 1, "final": True,
                                         "state": "running"}
        assert snapshot["findings"] == {"merged": False, "by_severity": dict.fromkeys(
            ("critical", "high", "medium", "low", "info"), 0)}

        for command in (["status", run_id], ["watch", run_id, "--timeout", "1"]):
            shown = swarm(*command, env=env)
            lines = shown.stdout.splitlines()
            assert "warning: queue scan has no consumer" in shown.stdout, shown.stdout
            assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
            assert any(run_id in line for line in lines)  # the id whole, on one line
            assert "inventory" in shown.stdout and "ETA" in shown.stdout

        listing = swarm("status", env=env).stdout
        assert run_id in listing and all(len(line) <= 80 for line in listing.splitlines())

        deadline = time.monotonic() + 30  # a worker beats every 5 s with its counters
        rows: list[dict] = []
        while time.monotonic() < deadline:
            rows = json.loads(swarm("workers", "--json", env=env).stdout)
            if rows and rows[0]["processed"] is not None:
                break
            time.sleep(1)
        (row,) = rows
        assert row["worker"].startswith("noscan0@") and sorted(row["queues"]) == ["agents", "control", "review"]
        assert row["active"] == 0 and row["processed"] >= 0 and len(row["load"]) == 3
        assert 0 <= row["heartbeat_age_s"] < 15
        text = swarm("workers", env=env).stdout
        assert "noscan0@" in text and "s ago" in text
        assert f"warning: run {run_id}: queue scan has no consumer" in " ".join(text.split())
    finally:
        fleet.stop()
