"""Run commands with a hard time limit: the repository's quick check, and the git processes of the build.

Every command runs in its own session (process group), so a timeout kills the whole tree it started
(a test runner's workers, git's transport helpers), not just the shell at the top.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_OUTPUT = 20_000
# Seconds a killed group gets between SIGTERM and SIGKILL to flush and clean up.
_KILL_GRACE_S = 0.5


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


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """A finished (or killed) child process. ``exit_code`` is None when it was killed at the timeout."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def child_env(overrides: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environment for a child: ours plus ``overrides`` (None inherits ours unchanged).

    Children inherit the environment as they would from a shell; nothing here reads configuration
    from it.
    """
    if not overrides:
        return None
    return {**os.environ, **overrides}


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process group of ``proc`` (its session), then kill what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGTERM:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_KILL_GRACE_S)


def run_process(argv: Sequence[str] | str, cwd: Path | None, timeout_s: float, *,
                env: Mapping[str, str] | None = None, stdin: bytes | None = None) -> ProcessResult:
    """Run ``argv`` (a string runs through ``/bin/sh -c``) with pipes; kill its group at ``timeout_s``."""
    began = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - argv comes from our own code, a shell string is explicit
        argv, cwd=cwd, env=child_env(env), shell=isinstance(argv, str), start_new_session=True,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    return ProcessResult(None if timed_out else proc.returncode, out, err, timed_out,
                         time.monotonic() - began)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping the start and (mostly) the end: failures
    are usually reported last."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[-tail:]}"


def run_check(command: str, cwd: Path, timeout_s: float, *, max_output: int = DEFAULT_MAX_OUTPUT,
              env: Mapping[str, str] | None = None) -> CheckResult:
    """Run the check ``command`` (a shell command line) in ``cwd``.

    Passed means exit code 0 within ``timeout_s``. At the timeout the whole process group is killed
    and the result is failed with ``timed_out``. Output goes to a file rather than a pipe so that a
    background process that keeps the pipe open cannot make us wait past the command's own end;
    whatever the command left running in its group is killed when it ends.
    """
    began = time.monotonic()
    with tempfile.TemporaryFile() as sink:
        proc = subprocess.Popen(  # noqa: S602 - the check command is configured as a shell command line
            command, cwd=cwd, env=child_env(env), shell=True, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        try:
            exit_code: int | None = proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            exit_code, timed_out = None, True
        finally:
            _kill_group(proc)  # stragglers of a finished check die with it, as do those of a hung one
            proc.wait()
        duration = time.monotonic() - began
        sink.seek(0)
        output = sink.read().decode("utf-8", errors="replace")
    if timed_out:
        output += f"\n[check killed after {timeout_s:g} s]"
    return CheckResult(passed=exit_code == 0, exit_code=exit_code, output=truncate(output, max_output),
                       timed_out=timed_out, duration_s=duration)
