"""Where agents' shell commands run: bubblewrap when it works here, else a restricted subprocess.

This is the one door: the shell tool, the build's check (``--check``, ``check_changed``, the
agents' ``run_check``) and codemod, and anything else that runs what an agent or a repository wrote
start here (:mod:`swarm_tasks.host.commands`). Every command goes ``[bwrap ...] python -I -S -c
<launcher.py> <spec>``: the launcher sets the rlimits, switches a root worker's command to the
workspace's own unused uid with no capabilities (the kernel exempts uid 0 from RLIMIT_NPROC, and
root's capabilities would let it write the worker's files), sets no_new_privs, runs ``bash -c``
(``sh`` without bash) and kills every process the command left when it ends. The environment is
built from an allowlist, never copied from the worker; PATH starts with the worker's own tool
directories (its virtualenv, mounted read-only), so ``python -m pytest`` finds what the worker has.
Output (stdout and stderr interleaved in one pipe, as a terminal shows them) is read incrementally:
the first and last halves of ``shell_max_output_bytes`` are kept, and a command that streams far past
that is killed. On timeout, flood or exit the whole tree dies: the launcher is a child subreaper and
kills every descendant, setsid or not; bubblewrap's PID namespace goes with it; for a root worker
every process of the sandbox uid is killed too.

``SANDBOX_TABLE`` (:mod:`swarm_tasks.host.policy`) states what each mode stops; tests/host/test_sandbox.py
proves each row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from swarm_tasks.errors import SandboxError
from swarm_tasks.host.policy import SANDBOX_TABLE, SandboxRow
from swarm_tasks.host.processes import (
    CapturedOutput,
    bwrap_argv,
    bwrap_supports_size,
    kill_group,
    kill_uid,
    limit_hit,
    nproc_limit,
)
from swarm_tasks.host.uids import lend, make_traversable, running_as, settle, workspace_uid

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings

SandboxMode = Literal["bwrap", "subprocess"]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LAUNCHER = Path(__file__).with_name("launcher.py").read_text(encoding="utf-8")
_FLOOD_MIN_BYTES = 16 * 1024**2
_TERM_GRACE_S = 5.0  # the launcher's sweep after SIGTERM, before the group is killed outright
log = logging.getLogger("swarm_tasks.host.sandbox")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command did.

    ``output`` is stdout and stderr interleaved. ``exit_code`` is None when the sandbox killed the
    command (timeout, output flood); death by signal N is reported as 128+N, as shells do.
    ``limit_hit`` names the limit that stopped it ("timeout", "output", "file_size", "cpu",
    "memory", "processes"), the last four read from the exit status and messages, so best effort.
    """

    exit_code: int | None
    output: str
    timed_out: bool
    truncated: bool
    duration_s: float
    limit_hit: str | None = None

    def to_data(self) -> dict[str, object]:
        return asdict(self)


class Sandbox:
    """Runs shell commands inside one agent's workspace with the protection of its ``mode``."""

    def __init__(self, mode: SandboxMode, settings: SwarmSettings, *, bwrap_path: str | None = None,
                 note: str | None = None, tools: Sequence[Path] | None = None) -> None:
        self.mode: SandboxMode = mode
        # the worker's own tool directories: on the command's PATH, readable, never writable
        self.tools = tuple(tools) if tools is not None else worker_tools()
        self.settings = settings
        self.note = note
        self.as_root = os.geteuid() == 0
        self.shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        self._bwrap = bwrap_path or shutil.which("bwrap", path=SYSTEM_PATH) or "bwrap"
        self.python, self._extra_binds = _launcher_python(bwrap=mode == "bwrap")

    def describe(self) -> str:
        """What protection is active, in plain words (for logs, the CLI and the model)."""
        s = self.settings
        limits = (f"limits per command: {s.shell_timeout_s:g} s timeout (whole process tree killed), "
                  f"{s.shell_memory_bytes // 1024**2} MiB address space, {s.shell_max_processes} "
                  f"processes, {s.shell_max_file_bytes // 1024**2} MiB per file written, "
                  f"{s.shell_max_output_bytes} bytes of output kept")
        who = ("runs as its workspace's own unused uid (the workspace is lent to it) with no capabilities"
               if self.as_root else "runs as this worker's user")
        env = "environment built from an allowlist (no secrets of the worker)"
        if self.mode == "bwrap":
            text = (f"bubblewrap sandbox: the command sees only /usr, the system libraries, a few /etc "
                    f"files, its workspace (read-write) and a private /tmp; no network unless a call "
                    f"asks for it; other processes are invisible (own PID namespace); {who}; {env}; "
                    f"{limits}.")
        elif self.as_root:
            text = (f"WARNING: restricted subprocess only - there is NO filesystem isolation and NO "
                    f"network isolation: the command can read any file every user may, write where every "
                    f"user may (/tmp) besides its workspace and reach the network; it cannot touch the "
                    f"worker's own files. Protection is only: {limits}; {env}; the clone's .git read-only; "
                    f"cwd in the workspace; {who}.")
        else:
            text = (f"WARNING: restricted subprocess only - there is NO filesystem isolation and NO "
                    f"network isolation: the command can read and write any file this worker can and "
                    f"reach the network. Protection is only: {limits}; {env}; cwd in the workspace; "
                    f"{who}.")
        return f"{text} ({self.note})" if self.note else text

    def run(self, command: str, *, workspace: Path, cwd: Path | None = None, timeout_s: float | None = None,
            network: bool = False, env: dict[str, str] | None = None,
            read_only: Sequence[Path] = (), git_writable: bool = False) -> CommandResult:
        """Run ``command`` with ``bash -c`` in ``cwd`` (default: the workspace root). ``read_only``: host
        directories it may also read (bwrap mounts them read-only), as the caller vouches: never taken
        from the workspace, whose files the command itself can change. ``git_writable=False``: the
        workspace's ``.git`` stays read-only to the command (a check or codemod has no business there;
        bwrap mounts it read-only, a root worker keeps it its own)."""
        ws, wd = _check_dirs(workspace, cwd)
        timeout = float(timeout_s if timeout_s is not None else self.settings.shell_timeout_s)
        if timeout <= 0:
            raise SandboxError(f"timeout must be positive, got {timeout}")
        uid = workspace_uid(ws) if self.as_root else None
        real = [Path(os.path.realpath(d)) for d in read_only]
        extra = {Path(p) for p in self._extra_binds}
        borrowed = [d for d in dict.fromkeys((*real, *self.tools)) if d.is_dir() and not d.is_relative_to(ws)
                    and d not in extra]
        host_tmp = None
        if self.mode == "subprocess":
            host_tmp = tempfile.mkdtemp(prefix="swarm-sh-")
        with running_as(uid) as alone:
            if uid is not None:
                lend(ws, uid, git=git_writable)
                if host_tmp:
                    os.chown(host_tmp, uid, uid)
                if self.mode == "subprocess":  # the uid must reach its workspace and tools, nothing more
                    for path in (ws, *borrowed):
                        make_traversable(path)
            tmpdir = host_tmp or "/tmp"  # noqa: S108 - the private tmpfs inside bwrap
            spec = {"limits": self._limits(timeout, uid), "uid": uid, "keep_caps": [],
                    "cwd": str(wd), "argv": [self.shell, "-c", command]}
            argv = [self.python, "-I", "-S", "-c", _LAUNCHER, json.dumps(spec)]
            if self.mode == "bwrap":
                size = self.settings.shell_max_file_bytes if bwrap_supports_size(self._bwrap) else None
                argv = [*bwrap_argv(self._bwrap, ws, wd, network=network, as_root=self.as_root,
                                    extra_ro=self._extra_binds, tmpfs_size=size, borrowed=borrowed,
                                    read_only_git=not git_writable), "--", *argv]
            # the uid's sweep: only when no other command of the same workspace still runs as it
            env = _command_env(ws, tmpdir, uid, self.tools, env)
            try:
                return self._execute(argv, env, ws, timeout, uid if alone() else None)
            finally:
                if uid is not None and alone():  # the last command out: git wants the top back as ours
                    settle(ws, git=git_writable)
                if host_tmp:
                    shutil.rmtree(host_tmp, ignore_errors=True)

    # -- internals ------------------------------------------------------------------------------

    def _limits(self, timeout: float, uid: int | None) -> dict[str, list[int]]:
        s = self.settings
        cpu = math.ceil(timeout) + 1
        # bwrap without root gets its own user namespace, where the process count starts at zero
        fresh_count = uid is not None or self.mode == "bwrap"
        nproc = s.shell_max_processes if fresh_count else nproc_limit(s.shell_max_processes)
        return {"RLIMIT_AS": [s.shell_memory_bytes] * 2, "RLIMIT_FSIZE": [s.shell_max_file_bytes] * 2,
                "RLIMIT_CPU": [cpu, cpu + 1], "RLIMIT_NPROC": [nproc] * 2, "RLIMIT_CORE": [0, 0]}

    def _execute(self, argv: list[str], env: dict[str, str], ws: Path, timeout: float,
                 sweep_uid: int | None) -> CommandResult:
        limit = self.settings.shell_max_output_bytes
        flood_at = max(256 * limit, _FLOOD_MIN_BYTES)
        out = CapturedOutput(limit)
        start = time.monotonic()
        deadline = start + timeout
        try:
            proc = subprocess.Popen(  # noqa: S603 - the command is the point; it runs confined
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                cwd=ws, start_new_session=True)
        except OSError as exc:
            raise SandboxError(f"cannot start {argv[0]}: {exc}") from None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        timed_out = flooded = eof = False
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                wait_ms = min(remaining, 0.05) * 1000
                if eof:
                    time.sleep(wait_ms / 1000)  # stdout closed; wait for the process itself
                elif poller.poll(wait_ms):
                    eof = out.read_from(fd)
                    if out.total > flood_at:
                        flooded = True
                        break
                if _exited(proc.pid):
                    break
        finally:
            if self.mode == "subprocess" and proc.returncode is None and not _exited(proc.pid):
                # the launcher kills everything the command started, then exits
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=_TERM_GRACE_S)
            kill_group(proc.pid)  # bwrap: its PID namespace dies with it
            if sweep_uid is not None:
                kill_uid(sweep_uid)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # unkillable (D state): leave it, report what we have
                proc.kill()
            if not eof and not flooded:
                out.drain(fd, seconds=2.0)
            proc.stdout.close()
        text, truncated = out.text()
        code = None if (timed_out or flooded or proc.returncode is None) else _shell_code(proc.returncode)
        return CommandResult(exit_code=code, output=text, timed_out=timed_out, truncated=truncated,
                             duration_s=time.monotonic() - start,
                             limit_hit=limit_hit(code, text, timed_out=timed_out, flooded=flooded))


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it: its zombie keeps the process group id ours."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _shell_code(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def _check_dirs(workspace: Path, cwd: Path | None) -> tuple[Path, Path]:
    try:
        ws = Path(os.path.realpath(workspace, strict=True))
        wd = Path(os.path.realpath(cwd if cwd is not None else ws, strict=True))
    except OSError as exc:
        raise SandboxError(f"workspace or cwd does not exist: {exc}") from None
    if not ws.is_dir() or not wd.is_dir():
        raise SandboxError(f"workspace {ws} and cwd {wd} must be directories")
    if wd != ws and ws not in wd.parents:
        raise SandboxError(f"cwd {wd} is outside the workspace {ws}")
    if ws == Path("/"):
        raise SandboxError("the file system root cannot be a workspace")
    return ws, wd


def worker_tools() -> tuple[Path, ...]:
    """This process's tool directories beyond the system's: its virtualenv, if it runs in one (the
    interpreter and the tools installed with the project: pytest, ruff), and the Python installation
    it is made from when that is not part of the system (pyenv)."""
    found = []
    if sys.prefix != sys.base_prefix:
        found.append(Path(os.path.realpath(sys.prefix)))
    base = Path(os.path.realpath(sys.base_prefix))
    if not base.is_relative_to("/usr"):
        found.append(base)
    return tuple(found)


def _command_env(ws: Path, tmpdir: str, uid: int | None, tools: Sequence[Path],
                 extra: dict[str, str] | None) -> dict[str, str]:
    """The whole environment of a command: nothing is inherited from the worker."""
    path = os.pathsep.join([*(str(t / "bin") for t in tools if (t / "bin").is_dir()), SYSTEM_PATH])
    env = {"PATH": path, "HOME": str(ws), "TMPDIR": tmpdir, "LANG": "C.UTF-8", "TERM": "dumb",
           "XDG_CACHE_HOME": f"{tmpdir}/.cache"}
    if uid is not None:  # the sandbox uid does not own the repository's .git; git would refuse it
        env |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
    return env | (extra or {})


def _launcher_python(*, bwrap: bool) -> tuple[str, list[str]]:
    """An interpreter for the launcher, and what bubblewrap must mount for it to be visible."""
    own = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    if not bwrap:
        return own, []
    for candidate in (own, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.access(real, os.X_OK):
            return real, []
    return own, [os.path.realpath(sys.base_prefix)]  # read-only: the interpreter, not its owner's home


_PROBES: dict[tuple[str, str], str | None] = {}
_PROBE_LOCK = threading.Lock()


def sandbox_problem(sandbox: Sandbox) -> str | None:
    """None if ``sandbox`` really runs a command here, else why not. Probed once per process."""
    key = (sandbox.mode, sandbox._bwrap if sandbox.mode == "bwrap" else "")
    with _PROBE_LOCK:
        if key not in _PROBES:
            _PROBES[key] = _probe(sandbox)
        return _PROBES[key]


def _probe(sandbox: Sandbox) -> str | None:
    if sandbox.mode == "bwrap" and shutil.which(sandbox._bwrap, path=SYSTEM_PATH) is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="swarm-probe-") as tmp:
        try:
            result = sandbox.run("echo sandbox-ok", workspace=Path(tmp), timeout_s=30)
        except SandboxError as exc:
            return str(exc)
    if result.exit_code == 0 and result.output.strip() == "sandbox-ok":
        return None
    return (result.output.strip() or f"exit code {result.exit_code}")[:500]


_ANNOUNCED: set[tuple[str, str | None]] = set()


def announce(sandbox: Sandbox) -> None:
    """Say once per process which protection shell commands get: INFO for bubblewrap, a WARNING
    naming what is not isolated for the restricted subprocess."""
    key = (sandbox.mode, sandbox.note)
    with _PROBE_LOCK:
        if key in _ANNOUNCED:
            return
        _ANNOUNCED.add(key)
    if sandbox.mode == "bwrap":
        log.info("shell sandbox: %s", sandbox.describe())
    else:
        log.warning("shell sandbox: %s", sandbox.describe())


def make_sandbox(settings: SwarmSettings) -> Sandbox:
    """The sandbox ``settings.sandbox`` asks for: "auto" prefers bubblewrap and falls back. The
    protection it gives is logged once per process (see :func:`announce`)."""
    if settings.sandbox != "subprocess":
        bwrap = Sandbox("bwrap", settings)
        problem = sandbox_problem(bwrap)
        if problem is None:
            announce(bwrap)
            return bwrap
        if settings.sandbox == "bwrap":
            raise SandboxError(
                f"SWARM_SANDBOX=bwrap but bubblewrap does not work here: {problem}. Install it "
                "(apt-get install bubblewrap / dnf install bubblewrap) and allow unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04+ "
                "kernel.apparmor_restrict_unprivileged_userns=0; in Docker run with a seccomp profile "
                "that allows them), or set SWARM_SANDBOX=subprocess to accept no isolation.")
        fallback = Sandbox("subprocess", settings, note=f"auto mode: bubblewrap unusable here: {problem}")
    else:
        fallback = Sandbox("subprocess", settings)
    problem = sandbox_problem(fallback)
    if problem is not None:
        raise SandboxError(f"cannot run sandboxed commands at all: {problem}")
    announce(fallback)
    return fallback


__all__ = ["SANDBOX_TABLE", "CommandResult", "Sandbox", "SandboxRow", "announce", "make_sandbox", "sandbox_problem"]
