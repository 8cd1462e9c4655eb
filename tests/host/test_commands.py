"""The build's commands through the one door: the worker's tools on PATH, and a sandbox that cannot run
fails the command with its reason (a check never passes because nothing ran)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swarm_tasks.host.commands import run_confined
from tests.agents import make_settings


@pytest.mark.parametrize("mode", ["auto", "subprocess"])
def test_the_workers_tools_come_first_on_path(tmp_path: Path, mode: str) -> None:
    result = run_confined("command -v python; python -c 'import pytest; print(pytest.__name__)'", root=tmp_path,
                          timeout_s=60, settings=make_settings(sandbox=mode))
    assert result.exit_code == 0, result.output
    first, module = result.output.split()
    assert first == f"{sys.prefix}/bin/python" and module == "pytest"


def test_a_sandbox_that_cannot_run_fails_the_command_saying_why(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("swarm_tasks.host.sandbox.sandbox_problem",
                        lambda box: "no user namespaces" if box.mode == "bwrap" else None)
    result = run_confined("true", root=tmp_path, timeout_s=10, settings=make_settings(sandbox="bwrap"))
    assert result.exit_code == 126 and "bubblewrap does not work here: no user namespaces" in result.output
