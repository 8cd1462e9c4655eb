"""Process plumbing of the sandbox: bubblewrap arguments, sandbox uids, output capture, killing.

Kept apart from :mod:`swarm_tasks.host.sandbox` (the policy and public API) so each stays readable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import subprocess
import time
from collections.abc import Sequence
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
_UID_HIGH = (2_100_000_000, 2_140_000_000)  # far above login users and subuid ranges
_SIGNAL_MESSAGES = {
    "file_size": ("File size limit exceeded", "File too large"),
    "cpu": ("CPU time limit exceeded",),
    "memory": ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory"),
    "processes": ("fork: retry", "fork: Resource temporarily unavailable", "Resource temporarily unavailable",
                  "can't fork"),
}


def bwrap_argv(bwrap: str, ws: Path, wd: Path, *, network: bool, as_root: bool, extra_ro: list[str],
               tmpfs_size: int | None, borrowed: Sequence[Path] = ()) -> list[str]:
    """bubblewrap arguments: a read-only system, the workspace read-write, nothing else of the host
    but ``borrowed``, read-only (what the caller vouches the command may read, e.g. git objects that
    the workspace's clone borrows)."""
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
    for path in extra_ro:
        args += ["--ro-bind", path, path]
    size = ["--size", str(tmpfs_size)] if tmpfs_size else []
    private = ("/tmp", "/dev/shm")  # noqa: S108 - the sandbox's own, empty and size-capped
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path in private:
        args += ["--perms", "1777", *size, "--tmpfs", path]
    made: set[Path] = set()
    for path in (*borrowed, ws):  # after /tmp: they may live there
        for parent in reversed(path.parents):
            if parent not in _EXISTING and parent not in made and not any(m in parent.parents for m in _MOUNTED):
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
    for path in borrowed:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(ws), str(ws), "--chdir", str(wd)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session"]
    if not network:
        args.append("--unshare-net")
    if as_root:
        # bwrap run by root keeps every capability unless told; the launcher needs these to
        # switch uid, and the command keeps only the file-permission ones (see launcher.py)
        args += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_OVERRIDE", "CAP_FOWNER"):
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


def sandbox_uid() -> int:
    """A uid for one command of a root worker: unused by anyone, fresh per command.

    Fresh, so concurrent commands neither share a process count nor kill each other in the final
    sweep. Taken high in the range this process's user namespace maps (containers often map only
    65536).
    """
    ranges: list[tuple[int, int]] = []
    try:
        for line in Path("/proc/self/uid_map").read_text().splitlines():
            inside, _outside, length = (int(x) for x in line.split())
            ranges.append((inside, inside + length - 1))
    except (OSError, ValueError):
        ranges = [(0, 65535)]
    lo, hi = _UID_HIGH
    if not any(start <= lo and hi <= end for start, end in ranges):
        start, end = max(ranges, key=lambda r: r[1] - r[0])
        hi = min(end, 65533) if end <= 65535 else end - 2  # not nobody, not the invalid uid
        lo = max(start + 1, (start + hi) // 2)
    return lo + secrets.randbelow(hi - lo + 1)


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


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


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
