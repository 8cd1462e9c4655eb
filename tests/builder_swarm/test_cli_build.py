"""`swarm build` as a user runs it: bad input exits 2 with a clear, credential-free message, before any
server or worker starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.builder_swarm.helpers import make_remote

SWARM = [sys.executable, "-m", "swarm_tasks.cli"]


def swarm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_bad_build_input_exits_2_before_anything_starts(redis_url: str, redis_client, tmp_path: Path) -> None:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env = {**keep, "SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    unreachable = swarm("build", "http://swarm:pa55word-x@127.0.0.1:1/x.git", "--goal", "g", "--codemod", "true",
                        env=env)
    assert unreachable.returncode == 2 and "cannot reach remote" in unreachable.stderr
    assert "pa55word-x" not in unreachable.stderr + unreachable.stdout and "Traceback" not in unreachable.stderr
    bare = make_remote(tmp_path / "r", {"a.txt": "a\n"})
    branch = swarm("build", str(bare), "--branch", "nope", "--goal", "g", "--codemod", "true", env=env)
    assert branch.returncode == 2 and "branch 'nope' does not exist" in branch.stderr
    no_model = swarm("build", str(bare), "--goal", "g", env=env)
    assert no_model.returncode == 2 and "model mode needs a model" in no_model.stderr
    assert redis_client.keys("swarm:{build*") == []  # no run was created
