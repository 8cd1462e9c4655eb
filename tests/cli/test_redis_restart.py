"""`swarm review` on a shared Redis that restarts for 6 seconds mid-run (with its AOF, as a managed Redis or
a failover does): the command rides it out with the workers' backoff, says so while it waits, and ends in
the normal report (with --json, and in the live view on a terminal), never in a ConnectionError traceback."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordination.embedded import EmbeddedRedis
from tests.review.helpers import EXAMPLE

pytestmark = pytest.mark.slow
SLOW_MODEL = "scripted/py:swarm_tasks.review.scripted:slow_reviewer"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@pytest.mark.timeout(420)
@pytest.mark.parametrize("view", ["json", "terminal"])
def test_a_6_second_redis_restart_during_a_review_ends_in_the_normal_report(tmp_path: Path, view: str) -> None:
    if view == "terminal" and shutil.which("script") is None:
        pytest.skip("util-linux `script` is needed to give the command a terminal")
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
        env.update(SWARM_REDIS_URL=server.url, SWARM_STATE_DIR=str(tmp_path / "state"),
                   SWARM_MODEL_GUARD="local-only", SWARM_REDIS_RECONNECT_S="60", COLUMNS="250",
                   # steps lost with the restart are re-sent after the grace: keep the test short
                   SWARM_AGENT_STEP_GRACE_S="8", SWARM_AGENT_TURN_LEASE_S="5")
        args = [sys.executable, "-m", "swarm_tasks.cli", "review", str(EXAMPLE), "--workers", "2", "--model",
                SLOW_MODEL]
        if view == "json":
            args.append("--json")
        else:  # a pseudo-terminal: the live progress view
            args = ["script", "-qefc", shlex.join(args), "/dev/null"]
        cli = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any((tmp_path / "state" / "workspaces").glob("*/*")):  # mid-run: a model agent used a tool
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)
            time.sleep(0.2)
        # longer than redis-py's own retries of one command (10 tries, jittered, at most ~4.3 s), which can
        # hide a shorter outage from the command entirely: then there is nothing to say
        server.restart(down_s=6.0)
        out, err = cli.communicate(timeout=300)
    finally:
        server.stop()
    text = ANSI.sub("", out + err)
    assert cli.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "ConnectionError" not in text.replace("Connection refused", "")
    if view == "json":
        result = json.loads(out)
        assert result["status"] == "completed" and result["findings"] > 10
        assert "Redis unreachable" in err and re.search(r"Redis is back after \d+\.\d s", err), err
    else:
        assert re.search(r"Redis unreachable for \d s \(.*\): reconnecting", text), text[-3000:]
        assert re.search(r"review review-\S+ completed", text) and "report.md" in text
