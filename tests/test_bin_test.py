"""bin/test, the suite's one command: SWARM_TEST_PROCESSES sets its pytest processes, and `-n` on its
command line wins (0: one process); a package listed in tests/conftest.py's ONE_PROCESS_PACKAGES goes
whole to one process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/test_readme.py::test_every_cli_command_in_the_readme_exists"


def _bin_test(*args: str, processes: str | None = None, tests: tuple[str, ...] = (ONE_TEST,),
              env_extra: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PYTEST_"))}
    if processes is not None:
        env["SWARM_TEST_PROCESSES"] = processes
    env.update(env_extra or {})
    command = [str(ROOT / "bin" / "test"), "-p", "no:cacheprovider", *args, *tests]
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


# Skips every test before its fixtures (nothing of the multi-host harness is built), after a second: long
# enough that a process finishing its file takes the next file rather than one process taking them all.
_PROBE = """
import time
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    time.sleep(1)
    pytest.skip("scheduling probe")
"""


def test_the_multihost_package_goes_whole_to_one_process(tmp_path: Path) -> None:
    (tmp_path / "scheduling_probe.py").write_text(_PROBE)
    out = _bin_test("-v", "-p", "scheduling_probe", processes="2", tests=("tests/multihost",),
                    env_extra={"PYTHONPATH": str(tmp_path)})
    ran = re.findall(r"\[(gw\d+)\] \[\s*\d+%\] SKIPPED (tests/multihost/\S+)", out)
    assert len(ran) >= 4 and len({path.split("::")[0] for _, path in ran}) >= 3, out[-3000:]
    assert len({worker for worker, _ in ran}) == 1, ran
