"""The repository's check as the build runs it: through the sandbox (:mod:`swarm_tasks.host.commands`),
with a hard time limit, its whole process tree killed when it ends.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_tasks.host.commands import run_confined

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings

DEFAULT_MAX_OUTPUT = 20_000


class CheckStatus(enum.Enum):
    """How a check ended."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one run of the check command. ``output`` is stdout and stderr interleaved, truncated."""

    passed: bool
    exit_code: int | None
    output: str
    timed_out: bool
    duration_s: float

    @property
    def status(self) -> CheckStatus:
        if self.timed_out:
            return CheckStatus.TIMED_OUT
        return CheckStatus.PASSED if self.passed else CheckStatus.FAILED


def truncate(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping the start and (mostly) the end: failures
    are usually reported last."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[-tail:]}"


def run_check(command: str, cwd: Path, timeout_s: float, *, max_output: int = DEFAULT_MAX_OUTPUT,
              settings: SwarmSettings | None = None, reads: Sequence[Path] = ()) -> CheckResult:
    """Run the check ``command`` (a shell command line) in the clone or worktree ``cwd``, sandboxed.

    Passed means exit code 0 within ``timeout_s``. At the timeout, or when it ends, every process it
    started is killed; a timed-out check is failed with ``timed_out``. ``reads``: directories outside
    ``cwd`` it may read (see :func:`~swarm_tasks.host.commands.run_confined`).
    """
    result = run_confined(command, root=cwd, timeout_s=timeout_s, settings=settings, reads=reads)
    output = result.output
    if result.timed_out:
        output += f"\n[check killed after {timeout_s:g} s]"
    elif result.exit_code is None:
        output += f"\n[check killed by the sandbox: {result.limit_hit or 'limit'}]"
    return CheckResult(passed=result.exit_code == 0 and not result.timed_out, exit_code=result.exit_code,
                       output=truncate(output, max_output), timed_out=result.timed_out,
                       duration_s=result.duration_s)


__all__ = ["CheckResult", "CheckStatus", "run_check", "truncate"]
