"""bin/test, the suite's one command: SWARM_TEST_PROCESSES sets its pytest processes, and `-n` on its
command line wins (0: one process)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/test_readme.py::test_every_cli_command_in_the_readme_exists"


def _bin_test(*args: str, processes: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PYTEST_"))}
    if processes is not None:
        env["SWARM_TEST_PROCESSES"] = processes
    command = [str(ROOT / "bin" / "test"), "-p", "no:cacheprovider", *args, ONE_TEST]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(("processes", "args", "workers"), [
    ("2", (), "created: 2/2 workers"),
    ("2", ("-n", "1"), "created: 1/1 worker"),
    ("2", ("-n", "0"), None),
])
def test_the_processes_come_from_the_environment_and_the_command_line_wins(
        processes: str, args: tuple[str, ...], workers: str | None) -> None:
    out = _bin_test(*args, processes=processes)
    assert "1 passed" in out
    if workers is None:
        assert "workers" not in out and "gw0" not in out
    else:
        assert workers in out, out[-2000:]
