"""Process plumbing: bubblewrap arguments, sandbox uids, output capture, and the project's one way to
run a trusted child with a time limit and to stop a process group (the build's git, local workers).

Kept apart from :mod:`swarm_tasks.host.sandbox` (the policy and public API) so each stays readable.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psutil

# What a program needs from /etc: users and groups, name resolution, the dynamic linker,
# Debian's alternatives symlinks, certificates, time zone. Not shadow, ssh keys or sudoers.
ETC_ALLOWLIST = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf", "services",
    "protocols", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
    "ca-certificates.conf", "pki", "crypto-policies", "localtime", "timezone", "os-release", "mime.types",
    "gitconfig", "inputrc", "terminfo", "magic", "pip.conf", "python3", "debian_version",
)
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_MOUNTED = (Path("/usr"), Path("/etc"), Path("/proc"), Path("/dev"))
_EXISTING = (Path("/"), Path("/tmp"), *_MOUNTED)  # noqa: S108 - the sandbox's own /tmp
_SIGNAL_MESSAGES = {
    "file_size": ("File size limit exceeded", "File too large"),
    "cpu": ("CPU time limit exceeded",),
    "memory": ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory"),
    "processes": ("fork: retry", "fork: Resource temporarily unavailable", "Resource temporarily unavailable",
                  "can't fork"),
}


def bwrap_argv(bwrap: str, ws: Path, wd: Path, *, network: bool, as_root: bool, extra_ro: list[str],
               tmpfs_size: int | None, borrowed: Sequence[Path] = (), read_only_git: bool = False) -> list[str]:
    """bubblewrap arguments: a read-only system, the workspace read-write, nothing else of the host
    but ``borrowed``, read-only (what the caller vouches the command may read, e.g. git objects that
    the workspace's clone borrows, the worker's tools). ``read_only_git``: the workspace's own
    ``.git`` directory is mounted read-only over the writable workspace."""
    args = [bwrap, "--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = Path("/", name)
        if path.is_symlink():  # merged /usr: keep the same symlink inside
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    # directories bwrap creates itself default to 0700, and access(2) ignores the capabilities of a
    # non-root uid: programs that check access() (git on /etc/gitconfig) would be refused
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_ALLOWLIST:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for shared in extra_ro:
        args += ["--ro-bind", shared, shared]
    size = ["--size", str(tmpfs_size)] if tmpfs_size else []
    private = ("/tmp", "/dev/shm")  # noqa: S108 - the sandbox's own, empty and size-capped
    args += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in private:
        args += ["--perms", "1777", *size, "--tmpfs", scratch]
    made: set[Path] = set()
    for path in (*borrowed, ws):  # after /tmp: they may live there
        for parent in reversed(path.parents):
            if parent not in _EXISTING and parent not in made and not any(m in parent.parents for m in _MOUNTED):
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
    for path in borrowed:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(ws), str(ws)]
    git_dir = own_git_dir(ws) if read_only_git else None
    if git_dir is not None:
        args += ["--ro-bind", str(git_dir), str(git_dir)]
    args += ["--chdir", str(wd)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session"]
    if not network:
        args.append("--unshare-net")
    if as_root:
        # bwrap run by root keeps every capability unless told; the launcher needs these to enter
        # the lent workspace, switch uid and kill what the command left, and the command keeps none
        # of them (see launcher.py)
        args += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL"):
            args += ["--cap-add", cap]
    else:
        args.append("--unshare-user")
    # read-only /proc: /proc/sys and /proc/sysrq-trigger are otherwise writable with DAC override
    args += ["--remount-ro", "/proc", "--remount-ro", "/"]
    return args


@lru_cache(maxsize=4)
def bwrap_supports_size(bwrap: str) -> bool:
    """``--size`` (bubblewrap 0.7+) caps the private tmpfs; older versions lack it."""
    try:
        help_text = subprocess.run([bwrap, "--help"],  # noqa: S603 - fixed arguments
                                   capture_output=True, text=True, timeout=10,
                                   check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in help_text


def own_git_dir(ws: Path) -> Path | None:
    """``ws/.git`` when it is a real directory of the workspace (not a link an agent planted)."""
    git_dir = ws / ".git"
    if git_dir.is_dir() and not git_dir.is_symlink() and Path(os.path.realpath(git_dir)) == git_dir:
        return git_dir
    return None


def nproc_limit(extra: int) -> int:
    """RLIMIT_NPROC for a command that shares this uid: what the uid already runs, plus ``extra``.

    The kernel counts every task of the user (the worker's threads included), so a bare ``extra``
    would forbid any fork in a busy worker. Approximate by nature; the timeout still applies.
    """
    uid = os.getuid()
    tasks = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        info = proc.info
        if info["uids"] is not None and info["uids"].real == uid:
            tasks += info["num_threads"] or 1
    return tasks + extra


_KILL_GRACE_S = 0.5  # seconds a stopped group gets between SIGTERM and SIGKILL to flush and clean up


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_group(pid: int) -> None:
    signal_group(pid, signal.SIGKILL)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = _KILL_GRACE_S) -> None:
    """SIGTERM the process group of ``proc`` (its session), then :func:`wait_or_kill`."""
    signal_group(proc.pid, signal.SIGTERM)
    wait_or_kill(proc, grace_s)


def wait_or_kill(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``proc`` (already asked to stop), then SIGKILL its group; reap it."""
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


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


def run_process(argv: Sequence[str], cwd: Path | None, timeout_s: float, *, env: Mapping[str, str],
                stdin: bytes | None = None) -> ProcessResult:
    """Run a trusted program (``argv``, never a shell line) with exactly ``env``, in its own session, with
    pipes; at ``timeout_s`` its whole group is stopped. What an agent or a repository wrote does not
    run here: that goes through :mod:`swarm_tasks.host.sandbox`."""
    began = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - argv comes from our own code
        list(argv), cwd=cwd, env=dict(env), start_new_session=True,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        timed_out = True
    except BaseException:
        stop_group(proc)
        raise
    return ProcessResult(None if timed_out else proc.returncode, out, err, timed_out, time.monotonic() - began)


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid``, including any that left its process group with setsid.

    Runs as that uid and sends kill(-1), which reaches exactly the processes of the uid; repeated
    until none is left, so a fork bomb racing the kill cannot outrun it.
    """
    subprocess.run(["/bin/sh", "-c", "n=0; while kill -9 -1 2>/dev/null && [ $n -lt 1000 ]; do n=$((n+1)); done"],
                   user=uid, group=uid, extra_groups=[], env={"PATH": "/usr/bin:/bin"},
                   cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30, check=False)


def limit_hit(exit_code: int | None, output: str, *, timed_out: bool, flooded: bool) -> str | None:
    """Which limit most likely stopped the command (best effort beyond timeout and flood)."""
    if timed_out:
        return "timeout"
    if flooded:
        return "output"
    if exit_code in (None, 0):
        return None
    if exit_code == 128 + signal.SIGXFSZ:
        return "file_size"
    if exit_code == 128 + signal.SIGXCPU:
        return "cpu"
    for name, needles in _SIGNAL_MESSAGES.items():
        if any(needle in output for needle in needles):
            return name
    return None


class CapturedOutput:
    """The first and last halves of ``limit`` bytes of a stream, and how much went by."""

    def __init__(self, limit: int) -> None:
        self.head_cap = limit // 2
        self.tail_cap = limit - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.tail_cap:  # trim in batches, not per chunk
                del self.tail[: len(self.tail) - self.tail_cap]

    def read_from(self, fd: int, max_reads: int = 64) -> bool:
        """Read what is available (non-blocking ``fd``); True at end of file."""
        for _ in range(max_reads):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            self.feed(chunk)
        return False

    def drain(self, fd: int, *, seconds: float) -> None:
        """Collect what the killed command left in the pipe, waiting at most ``seconds``."""
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(left * 1000) and self.read_from(fd):
                return

    def text(self) -> tuple[str, bool]:
        """The kept text, with a note of what was cut; and whether anything was."""
        tail = bytes(self.tail[-self.tail_cap:]) if self.tail_cap else b""
        cut = self.total - len(self.head) - len(tail)
        head = self.head.decode("utf-8", "replace")
        if cut <= 0:
            return (bytes(self.head) + tail).decode("utf-8", "replace"), False
        note = (f"\n[... {cut} bytes of output cut: kept the first {len(self.head)} and the last "
                f"{len(tail)} of {self.total} bytes ...]\n")
        return head + note + tail.decode("utf-8", "replace"), True
