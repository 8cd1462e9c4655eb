"""Commands a build runs on code agents wrote: the check (``--check``, ``check_changed``, the agents'
``run_check``) and the codemod, through the same sandbox as the shell tool.

They are the submitter's commands, but what they execute is not: a check runs the tests an agent
wrote, a codemod reads files an agent wrote. So they get the shell tool's policy (bubblewrap where it
works, the documented fallback otherwise; an environment from an allowlist, with no Redis URL,
provider key or signing key; limits; the whole process tree killed at the end), with the clone's
``.git`` read-only: neither has any business there, and a hook or config planted in it would run
later, outside the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_tasks.errors import SandboxError
from swarm_tasks.host.sandbox import CommandResult, make_sandbox

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings


def run_confined(command: str, *, root: Path, timeout_s: float, settings: SwarmSettings | None = None,
                 cwd: Path | None = None, reads: Sequence[Path] = ()) -> CommandResult:
    """Run the shell command line ``command`` in ``cwd`` (default ``root``) inside the sandbox, with
    ``root`` as its workspace and ``reads`` (directories the caller vouches for: the objects a clone
    borrows, the git directory of a scratch worktree) readable. A sandbox that cannot run at all is
    reported as a failed command (exit 126) saying why, never as a pass."""
    if settings is None:
        from swarm_tasks.settings import get_settings

        settings = get_settings()
    try:
        sandbox = make_sandbox(settings)
        return sandbox.run(command, workspace=root, cwd=cwd, timeout_s=timeout_s, read_only=reads,
                           git_writable=False)
    except SandboxError as exc:
        return CommandResult(exit_code=126, output=f"the sandbox cannot run this command: {exc}\n", timed_out=False,
                             truncated=False, duration_s=0.0)


__all__ = ["run_confined"]
