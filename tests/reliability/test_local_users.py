"""What another local user can learn of a swarm on this machine: not the embedded Redis password.

The embedded server and a real worker process run as root (as a local `swarm review` would); a process
of user ``nobody`` watches every process start, then reads every ``/proc/*/cmdline``, every
``/proc/*/environ`` it may and every file it can reach under the state directory, and hands all of it
back to the test, which looks for the password. A sentinel on a root process's command line and one in
a world-readable file prove that the scanner sees what is there to see.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from coordination.connection import connect
from coordination.embedded import CONFIG_NAME
from coordination.settings import CoordinationSettings
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv to run a process as another user")

# Runs as nobody under the system Python (the virtualenv may sit where nobody cannot read). Until its
# stdin closes it watches new processes closely for their first second (redis-server rewrites its
# process title once it is up: an argument was readable only in that window), then it reads every
# /proc/*/cmdline and /proc/*/environ it may, and every file under the paths it is given.
SCANNER = r"""
import os, sys, threading, time
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
out, first_seen = set(), {}
def read(path):
    try:
        with open(path, "rb") as f:
            out.add(b"== " + path.encode() + b"\n" + f.read() + b"\n")
    except OSError as exc:
        out.add(f"-- {path}: {type(exc).__name__}\n".encode())
def walk_error(exc):
    out.add(f"-- walk {exc.filename}: {type(exc).__name__}\n".encode())
print("watching", flush=True)
while not stop.is_set():
    now = time.monotonic()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and now - first_seen.setdefault(pid, now) < 1.0:
            read(f"/proc/{pid}/cmdline")
for pid in os.listdir("/proc"):
    if pid.isdigit():
        read(f"/proc/{pid}/cmdline")
        read(f"/proc/{pid}/environ")
for root in sys.argv[1:]:
    read(root)
    for here, dirs, files in os.walk(root, onerror=walk_error):
        for name in files:
            read(os.path.join(here, name))
sys.stdout.buffer.write(b"".join(sorted(out)))
"""


class Watcher:
    """The scanner, running as ``nobody`` from its start to :meth:`finish`."""

    def __init__(self, *paths: Path) -> None:
        self.proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "--inh-caps=-all", "/usr/bin/python3", "-c", SCANNER, *map(str, paths)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"watching\n"

    def finish(self) -> bytes:
        out, _ = self.proc.communicate(b"", timeout=120)
        assert self.proc.returncode == 0
        return out


@pytest.fixture
def shown() -> Iterator[Path]:
    """A world-readable directory (pytest's tmp_path sits in a root-only one)."""
    path = Path(tempfile.mkdtemp(prefix="swarm-shown-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_another_local_user_cannot_learn_the_embedded_password(tmp_path: Path, shown: Path) -> None:
    state = shown / "state"  # open to all: only the server's own directory is closed
    in_argv, in_file = secrets.token_hex(12), secrets.token_hex(12)
    (shown / "readable.txt").write_text(in_file)
    (shown / "readable.txt").chmod(0o644)
    watcher = Watcher(shown, state / "redis" / CONFIG_NAME)
    visible = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", in_argv])
    handle = connect(CoordinationSettings(redis_url=None, embedded_dir=state / "redis"))
    server = handle.embedded
    assert server is not None
    try:
        server.restart()  # a second start, watched as closely
        settings = SwarmSettings(redis_url=SecretStr(handle.url), state_dir=state, model_guard="local-only")
        with LocalCluster(settings, workers=1, queues=("control",), concurrency=2, log_dir=tmp_path / "logs"):
            seen = watcher.finish()
        # The server does use that password: a real secret, not an unused one.
        assert redis.Redis(host="127.0.0.1", port=server.port, password=server.password).ping()
    finally:
        visible.kill()
        visible.wait()
        handle.close()
    assert in_argv.encode() in seen, "the scanner did not see a root process's command line"
    assert in_file.encode() in seen, "the scanner did not read a world-readable file"
    assert b"redis-server" in seen and b"celery" in seen, "it did not see the server and the worker start"
    assert server.password.encode() not in seen
    assert f"-- walk {server.data_dir}: PermissionError".encode() in seen
    assert f"-- walk {state}: PermissionError".encode() not in seen
    assert f"-- {server.config_path}: PermissionError".encode() in seen


def test_the_embedded_servers_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "given"
    data.mkdir(mode=0o755)  # a directory the user named, made open: it is closed on start
    with connect(CoordinationSettings(redis_url=None, embedded_dir=data)) as handle:
        server = handle.embedded
        assert server is not None
        assert server.data_dir.stat().st_mode & 0o777 == 0o700
        assert server.config_path.stat().st_mode & 0o777 == 0o600
        assert server.password in server.config_path.read_text()
        assert "--requirepass" not in " ".join(server.process.args)  # type: ignore[union-attr, arg-type]
