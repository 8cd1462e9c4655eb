"""The README keeps its promises: the Quickstart's two commands, the sandbox table, the CLI commands."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from swarm_tasks.cli import main
from swarm_tasks.host.policy import LAUNCH_TABLE, SANDBOX_TABLE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quickstart_is_two_commands_main_job_then_tests():
    section = README.split("## Quickstart", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the Quickstart needs a shell code block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert lines == ["bin/swarm review examples/vulnerable-shop", "bin/test"]
    for command in lines:
        assert (ROOT / command.split()[0]).stat().st_mode & 0o111, f"{command} is not executable"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bin/test" in ci


def _table(marker: str) -> list[list[str]]:
    table = README.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]


def test_sandbox_table_matches_what_the_tests_prove():
    assert _table("sandbox-table") == [[r.threat, r.bwrap, r.subprocess] for r in SANDBOX_TABLE]


def test_launch_table_covers_every_launch_path_with_its_test():
    assert _table("launch-table") == [[r.path, r.how, f"`{r.test}`"] for r in LAUNCH_TABLE]


def test_every_cli_command_in_the_readme_exists():
    named = set(re.findall(r"`swarm ([\w-]+)", README))
    assert named <= set(main.commands), named - set(main.commands)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0


def test_outcome_table_matches_the_exit_codes_the_cli_returns():
    from swarm_tasks import cli_common as cli
    from swarm_tasks.outcome import ReasonClass, RunStatus

    table = README.split("<!-- outcome-table -->", 1)[1].split("<!-- /outcome-table -->", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()[2:]]
    codes = {state: int(code.strip("`")) for state, code, _meaning in rows}
    for status in RunStatus:
        if status.terminal:
            assert codes[f"`{status.value}`"] == cli.exit_for(status), status
    assert codes["`completed`, findings at or above `--fail-on`"] == cli.EXIT_FINDINGS
    assert codes["bad input"] == cli.EXIT_BAD_INPUT and codes["interrupted"] == cli.EXIT_INTERRUPTED
    assert codes["stopped by SIGTERM"] == cli.EXIT_TERMINATED and codes["stopped by SIGHUP"] == cli.EXIT_HANGUP
    assert codes["Redis unreachable"] == cli.EXIT_UNREACHABLE  # tests/cli/test_unreachable.py
    assert len(set(codes.values())) == 9  # 0, 1, 2, 3, 4, 5, 129, 130, 143: every code the CLI has, one table
    classes = README.split("Why an agent did not finish", 1)[1].split("\n\n", 1)[0]
    assert all(f"`{c.value}`" in classes for c in ReasonClass)


def test_every_documented_setting_is_set_by_some_test_in_a_process_environment():
    """Each SWARM_* variable the README documents is named by a test that puts it in the environment of
    a process it starts (or of the CLI it runs), so a knob that never reaches workers cannot hide."""
    documented = set(re.findall(r"\bSWARM_[A-Z][A-Z0-9_]*[A-Z0-9]\b", README))
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.name != "test_readme.py")
    untested = sorted(v for v in documented if v not in tests)
    assert not untested, f"documented settings no test sets: {untested}"
