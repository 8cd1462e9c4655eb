"""`swarm status` of an ended build, as a user reads it: the outcome and reason, the real elapsed time, each
judged cycle (tip, check, the judge's decision and why) and the hot spots, in text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.runs import RunStatus
from tests.builder_swarm.helpers import drive, make_remote
from tests.cli.test_cli import env, swarm  # noqa: F401 - env is a fixture

STRIP = "sed -i 's/[[:space:]]*$//' {path}"


def test_status_of_a_build_shows_its_cycles_judge_decisions_and_hot_spots(local, env, tmp_path: Path):  # noqa: F811
    bare = make_remote(tmp_path / "r", {f"src/m{i}.txt": f"line {i}   \n" for i in range(3)})
    job = BuildJob(repo=str(bare), goal="strip trailing blanks", codemod=STRIP, files=("src/*.txt",), builders=2)
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.COMPLETED, record.reason
    state = local.services.run(record.id).state
    state.redis.hincrby(state.keys.hotspots(), "src/m1.txt", 3)  # as the landing counts contended files

    shown = swarm("status", record.id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["status"] == data["outcome"]["status"] == "completed" and data["kind"] == "build"
    assert data["elapsed_s"] > 0 and data["ended_at"] >= data["created_at"]
    (cycle,) = data["cycles"]
    assert cycle["cycle"] == 1 and cycle["decision"] == "stop"
    assert cycle["reason"] == "the codemod changes nothing more on the tip"
    assert data["hot_spots"] == [["src/m1.txt", 3]]

    text = swarm("status", record.id, env=env)
    assert text.returncode == 0, text.stderr
    assert f"cycle 1: tip {cycle['tip'][:12]}, no check; judge stop: the codemod changes nothing more" in text.stdout
    assert "hot spots: src/m1.txt (3)" in text.stdout and "completed" in text.stdout
    listing = json.loads(swarm("status", "--json", env=env).stdout)
    assert listing[0]["id"] == record.id and listing[0]["elapsed_s"] == data["elapsed_s"]
    assert swarm("status", record.id, "--failed", env=env).stdout.startswith(
        f"run {record.id}: every agent that ended finished its work")
