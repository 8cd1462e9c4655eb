"""The first process of every sandboxed command: set limits, drop privileges, exec the shell.

This file is not imported by the sandbox: its source is passed to ``python -I -S -c`` (inside
bubblewrap when that is used), so it must stay standard-library only and run on any Python 3.8+
that the sandbox can see. It does in a fresh process what ``preexec_fn`` would do in a forked
one, which is not safe in the threaded worker that runs tools.

Why a uid switch: the kernel never applies RLIMIT_NPROC to real uid 0, so a fork bomb run by a
root worker is unbounded. When ``uid`` is given the command runs under that unused uid, keeping
only CAP_DAC_OVERRIDE and CAP_FOWNER (as ambient capabilities) so it can still write the
root-owned workspace. ``no_new_privs`` stops setuid binaries from giving anything back.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from errno import EINVAL
from typing import Any

PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
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


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        set_limits(spec["limits"])
        if spec.get("uid") is not None:
            drop_to(int(spec["uid"]), list(spec["keep_caps"]), libc)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the command must not
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(spec["cwd"])
        os.execv(spec["argv"][0], spec["argv"])  # noqa: S606 - argv is [shell, "-c", command]
    except OSError as exc:
        os.write(2, f"sandbox launcher failed: {exc}\n".encode())
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv)
