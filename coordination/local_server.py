"""The embedded Redis of a state directory: its data kept, shared by every process of that directory.

Without ``SWARM_REDIS_URL``, a swarm process uses the Redis server whose data lives in its state
directory (``<state dir>/redis``: mode 0700, an append-only file, the server's 0600 configuration). The
first process to need it starts it; every other process of the same directory (a ``swarm status`` in
another terminal, a worker, the dashboard) finds it running and connects. So a quickstart run can be
watched while it runs, and read, reported and resumed after its command exited: the next command starts
the server again on the same data.

Who runs the server is decided by an exclusive ``flock`` on ``owner.lock``, held by the process that
started it for as long as it keeps it; the kernel releases it when that process ends, however it ends.
The server dies with its starter (``PR_SET_PDEATHSIG``), so nothing is left running after the last user.
A process that connected to another's server waits on that lock in a thread: when the starter exits
first, one waiting process gets the lock and starts the server again on the same port with the same
password (both kept in ``server.json``, mode 0600), and every client reconnects as it does after any
Redis restart. Two servers never share the data: a new one starts only under the lock, after the old
one has exited.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordination.embedded import EmbeddedRedis, private_dir, write_private
from coordination.errors import EmbeddedRedisError

SERVER_FILE = "server.json"
OWNER_LOCK = "owner.lock"
ATTACH_WAIT_S = 30.0  # how long a process waits for another one's server to answer while it starts
OLD_SERVER_WAIT_S = 20.0  # how long a new owner waits for the previous server to finish writing and exit


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.json`` says: where the directory's server listens and who runs it."""

    port: int
    password: str
    pid: int = 0  # the redis-server process
    owner: int = 0  # the process that started it (and holds the lock)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


def read_info(data_dir: Path) -> ServerInfo | None:
    """The directory's ``server.json``, or None if there is none (or it does not parse)."""
    try:
        raw = json.loads((data_dir / SERVER_FILE).read_text())
        return ServerInfo(port=int(raw["port"]), password=str(raw["password"]), pid=int(raw.get("pid", 0)),
                          owner=int(raw.get("owner", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def answers(info: ServerInfo, timeout_s: float = 2.0) -> bool:
    client = redis.Redis(host="127.0.0.1", port=info.port, password=info.password, socket_timeout=timeout_s,
                         socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def running_info(data_dir: Path) -> ServerInfo | None:
    """The directory's server if one runs and answers now, else None (``swarm redis-url``)."""
    info = read_info(data_dir)
    return info if info is not None and _alive(info.owner) and answers(info) else None


class LocalServer:
    """This process's use of a state directory's server: started here, or another process's joined."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: EmbeddedRedis | None = None  # set while this process runs the server
        self.info: ServerInfo | None = None
        self._lock_fd: int | None = None
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.info is not None
        return self.info.url

    @property
    def started_here(self) -> bool:
        return self.server is not None

    def open(self) -> LocalServer:
        """Start the directory's server, or connect to the one another process runs."""
        private_dir(self.data_dir)
        fd = os.open(self.data_dir / OWNER_LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.info = self._join()
            self._keeper = threading.Thread(target=self._keep, name="swarm-redis-keeper", daemon=True)
            self._keeper.start()
            return self
        self._lock_fd = fd
        try:
            self._start(from_main=True)
        except BaseException:
            self._release()
            raise
        return self

    def _join(self) -> ServerInfo:
        """Another process holds the lock: its server answers at once, or soon if it is starting."""
        deadline = time.monotonic() + ATTACH_WAIT_S
        while True:
            info = read_info(self.data_dir)
            if info is not None and _alive(info.owner) and answers(info):
                return info
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"another process holds the embedded Redis of {self.data_dir} but it does not answer "
                    f"(see {self.data_dir / 'redis.log'}); set SWARM_REDIS_URL or another SWARM_STATE_DIR")
            time.sleep(0.1)

    def _start(self, *, from_main: bool) -> None:
        """Under the lock: wait for a previous server to exit, then start ours on its port and password."""
        previous = read_info(self.data_dir)
        if previous is not None:
            deadline = time.monotonic() + OLD_SERVER_WAIT_S
            while _alive(previous.pid) and time.monotonic() < deadline:  # still writing its append-only file
                time.sleep(0.05)
        server = EmbeddedRedis(self.data_dir, appendonly=True, port=previous.port if previous else None,
                               password=previous.password if previous else None,
                               die_with_starter=None if from_main else True)
        server.start()
        assert server.process is not None and server.port is not None
        self.server = server
        self.info = ServerInfo(port=server.port, password=server.password, pid=server.process.pid,
                               owner=os.getpid())
        write_private(self.data_dir / SERVER_FILE, json.dumps(self.info.__dict__))

    def _keep(self) -> None:
        """Wait for the server's starter to let go, then run the server here (same port and password)."""
        fd = os.open(self.data_dir / OWNER_LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the starter exits or closes it
        if self._closed.is_set():
            os.close(fd)
            return
        self._lock_fd = fd
        try:
            # From this thread, which lives until close(): the server dies with it (PDEATHSIG), that is
            # with this process.
            self._start(from_main=False)
        except Exception:
            self._release()
            return
        self._closed.wait()
        self._stop_server()

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            with contextlib.suppress(OSError):  # nobody runs it now: the next user starts it afresh
                info = read_info(self.data_dir)
                if info is not None and info.owner == os.getpid():
                    write_private(self.data_dir / SERVER_FILE, json.dumps({**info.__dict__, "pid": 0, "owner": 0}))
        self._release()

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        """Stop the server if this process runs it (another user of the directory then takes it over)."""
        self._closed.set()
        keeper = self._keeper
        if keeper is not None and keeper.is_alive() and self._lock_fd is not None:
            keeper.join(30)  # it took the server over: it stops it
            return
        if self._keeper is None:
            self._stop_server()


__all__ = ["LocalServer", "ServerInfo", "answers", "read_info", "running_info"]
