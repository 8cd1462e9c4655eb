"""The shell tool: one command line, run in the agent's sandbox, inside its workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.agents.tools.files import confined, workspace_of
from swarm_tasks.errors import SandboxError, ToolError
from swarm_tasks.host.sandbox import CommandResult, make_sandbox

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings


class ShellArgs(ToolArgs):
    command: str = Field(min_length=1, description="A bash command line, e.g. 'pytest -q tests/test_x.py'.")
    timeout_s: float | None = Field(default=None, gt=0, description="Seconds before the command and everything "
                                    "it started are killed. Default and maximum: the configured shell timeout.")
    cwd: str = Field(default=".", description="Directory to run in, relative to the workspace root.")


class ShellTool(Tool):
    name = "shell"
    description = ("Run a bash command in the workspace and get its exit code and output (stdout and stderr "
                   "together; long output keeps its beginning and end). Each call starts fresh: no state, "
                   "no background processes survive it, and no network unless the sandbox allows it. "
                   "The workspace's .git is read-only here: git commands that only read work (status, diff, "
                   "log); to commit use the git or build tools. Prefer the file tools for reading and editing "
                   "files.")
    Args = ShellArgs
    idempotent = False

    def run(self, args: ShellArgs, ctx: ToolContext) -> ToolResult:
        ws = workspace_of(ctx)
        with confined():
            cwd = ws.resolve(args.cwd)
            if not cwd.is_dir():
                raise ToolError(f"cwd {args.cwd!r} is not a directory in the workspace")
        cap = ctx.settings.shell_timeout_s
        timeout = min(args.timeout_s or cap, cap)
        try:
            sandbox = ctx.sandbox or make_sandbox(ctx.settings)
            result = sandbox.run(args.command, workspace=ws.root, cwd=cwd, timeout_s=timeout,
                                 read_only=ctx.read_only)
        except SandboxError as exc:
            raise ToolError(f"the shell is unavailable: {exc}") from None
        return ToolResult(format_result(result, timeout, ctx.settings), is_error=result.exit_code != 0,
                          data=result.to_data())


def format_result(result: CommandResult, timeout: float, settings: SwarmSettings) -> str:
    """The model's view of a command: how it ended, which limit stopped it, then its output."""
    if result.timed_out:
        status = (f"timed out after {timeout:g} s: the command and everything it started were killed "
                  f"(timeout_s may be raised up to {settings.shell_timeout_s:g})")
    elif result.exit_code is None:
        status = "killed by the sandbox"
    else:
        status = f"exit code {result.exit_code}"
    why = {
        "output": "it printed far more than the output limit, so it was killed; redirect output to a file "
                  "and read parts of it",
        "memory": f"it probably hit the memory limit ({settings.shell_memory_bytes // 1024**2} MiB of "
                  "address space)",
        "file_size": f"it hit the limit of {settings.shell_max_file_bytes // 1024**2} MiB per written file",
        "processes": f"it hit the process limit ({settings.shell_max_processes} processes)",
        "cpu": "it used up its CPU time",
    }.get(result.limit_hit or "")
    lines = [f"{status} ({result.duration_s:.1f} s)"]
    if why:
        lines.append(f"limit: {why}")
    if result.truncated:
        lines.append("output was long: the middle is cut (see the note inside)")
    lines.append(result.output.rstrip("\n") if result.output.strip() else "(no output)")
    return "\n".join(lines)


SHELL_TOOLS: tuple[Tool, ...] = (ShellTool(),)
