"""The first process of every sandboxed command: set limits, drop privileges, run the shell, and
kill everything it started when it ends.

This file is not imported by the sandbox: its source is passed to ``python -I -S -c`` (inside
bubblewrap when that is used), so it must stay standard-library only and run on any Python 3.8+
that the sandbox can see. It does in a fresh process what ``preexec_fn`` would do in a forked
one, which is not safe in the threaded worker that runs tools.

It forks: the child sets the limits, drops privileges and execs the shell; the parent is a child
subreaper (PR_SET_CHILD_SUBREAPER), so every process the command starts that loses its parent,
even one that called setsid, becomes the parent's child. When the shell exits (or SIGTERM comes:
the sandbox's timeout) the parent kills its children until none is left, then exits with the
shell's status: no process outlives its command, in any mode, as any user.

Why a uid switch: the kernel never applies RLIMIT_NPROC to real uid 0, so a fork bomb run by a
root worker is unbounded, and root's capabilities would let a command write the worker's own files
(a ``.pth`` in its virtualenv runs as root next time). When ``uid`` is given the command runs under
that unused uid (its workspace is lent to it) with no capabilities at all, unless ``keep_caps``
names some. ``no_new_privs`` stops setuid binaries from giving anything back.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from errno import EINVAL
from typing import Any

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_limits(limits: dict[str, list[int]]) -> None:
    """Lower each limit; a hard limit already below the wanted value is kept (raising needs privilege)."""
    for name, (soft, wanted_hard) in limits.items():
        which = getattr(resource, name)
        _, cur_hard = resource.getrlimit(which)
        hard = wanted_hard if cur_hard == resource.RLIM_INFINITY else min(wanted_hard, cur_hard)
        resource.setrlimit(which, (min(soft, hard), hard))


def drop_to(uid: int, keep_caps: list[int], libc: Any) -> None:
    """Become ``uid`` (and gid ``uid``, no supplementary groups) keeping only ``keep_caps``.

    NO_SETUID_FIXUP keeps the capabilities in access(2), which otherwise drops them for a non-root
    real uid: git and pip decide by access() whether they may use a directory.
    """
    for cap in range(64):  # the bounding set too, though no_new_privs already makes it moot
        if cap not in keep_caps and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != EINVAL:
            _check(-1, "prctl(CAPBSET_DROP)")
    bits = SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
    _check(libc.prctl(PR_SET_SECUREBITS, bits, 0, 0, 0), "prctl(SECUREBITS)")
    _check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(KEEPCAPS)")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    mask = 0
    for cap in keep_caps:
        mask |= 1 << cap
    data = (_CapData * 2)()
    for i in (0, 1):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    _check(libc.capset(ctypes.byref(header), data), "capset")
    for cap in keep_caps:  # ambient: the capabilities survive the exec of an ordinary program
        _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl(CAP_AMBIENT)")


class _Stop(Exception):
    """SIGTERM from the sandbox: the command's time is up."""


def _stop(_sig: int, _frame: Any) -> None:
    raise _Stop


def _children(me: int) -> list[int]:
    """Pids whose parent is ``me`` (read from /proc: the launcher is single-threaded)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(name))
    return found


def sweep(child: int) -> None:
    """Kill the command's process group, then every process left to us, until we have no child."""
    with contextlib.suppress(OSError):
        os.killpg(child, signal.SIGKILL)
    me = os.getpid()
    give_up = time.monotonic() + 20  # a process we may not kill: the sandbox kills our group after this
    while time.monotonic() < give_up:
        kids = _children(me)
        for pid in kids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return  # none left, not even a zombie: nothing can be reparented to us any more
        if not kids:
            time.sleep(0.005)


def run_command(spec: dict[str, Any], libc: Any) -> None:
    """In the forked child: limits, privileges, then exec (never returns)."""
    try:
        os.setpgid(0, 0)
        set_limits(spec["limits"])
        if spec.get("uid") is not None:
            drop_to(int(spec["uid"]), list(spec.get("keep_caps") or []), libc)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):  # Python changed these; the command must not
            signal.signal(sig, signal.SIG_DFL)
        os.execv(spec["argv"][0], spec["argv"])  # noqa: S606 - argv is [shell, "-c", command]
    except BaseException as exc:  # whatever happens, the child must not return into the parent's code
        os.write(2, f"sandbox launcher failed: {exc}\n".encode())
    os._exit(126)


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(CHILD_SUBREAPER)")
        os.chdir(spec["cwd"])  # before the uid switch: the new uid may not traverse the workspace's parents
    except OSError as exc:
        os.write(2, f"sandbox launcher failed: {exc}\n".encode())
        os._exit(126)
    signal.signal(signal.SIGTERM, _stop)
    child = os.fork()
    if child == 0:
        run_command(spec, libc)
    code = 128 + signal.SIGKILL
    try:
        _, status = os.waitpid(child, 0)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the sweep finishes whatever comes
    sweep(child)
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
