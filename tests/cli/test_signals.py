"""A local `swarm review` stopped by a signal, as `timeout`, systemd, `docker stop` or a closed terminal stop
it: SIGTERM and SIGHUP stop it the way Ctrl-C does (its run cancelled, its two workers and its embedded
Redis stopped, exit 128 + the signal); even kill -9 of the command leaves nothing running behind it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.review.helpers import EXAMPLE

pytestmark = pytest.mark.slow
SLOW_MODEL = "scripted/py:swarm_tasks.review.scripted:slow_reviewer"  # 0.3 s a reply: the review lasts a while


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_a_signal_stops_a_local_review_and_leaves_nothing_running(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}  # embedded Redis, 2 local workers
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"), SWARM_MODEL_GUARD="local-only")
    cli = subprocess.Popen([sys.executable, "-m", "swarm_tasks.cli", "review", str(EXAMPLE), "--json",
                            "--model", SLOW_MODEL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any((tmp_path / "state" / "workspaces").glob("*/*")):  # a model agent used a tool: mid-run
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)
            time.sleep(0.2)
        helpers = children(cli.pid)
        assert len(helpers) == 3  # redis-server and two celery workers
        cli.send_signal(sig)
        out, err = cli.communicate(timeout=90)
    finally:
        if cli.poll() is None:
            cli.kill()
    deadline = time.monotonic() + 60
    while any(running(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in helpers if running(p)], "left running after the command ended"
    assert "Traceback" not in err, err
    if sig is signal.SIGKILL:
        assert cli.returncode == -signal.SIGKILL  # nothing to clean up with: its workers die with it anyway
        return
    assert cli.returncode == 128 + sig, (cli.returncode, err)
    assert f"stopped by {sig.name}: cancelled run review-" in err and out == ""
    logs = "".join(p.read_text() for p in (tmp_path / "state" / "logs").glob("*.log"))
    assert "Traceback" not in logs and "Warm shutdown" in logs
