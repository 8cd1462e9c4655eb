"""The embedded Redis of a state directory: its data outlives the process that started it, every process
of the directory uses the one server, and when its starter dies another user takes it over on the same
address with the same data; never two servers on one directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import redis

from coordination.local_server import LocalServer, read_info, running_info

OWNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from coordination.local_server import LocalServer
    server = LocalServer(Path(sys.argv[1])).open()
    print(server.url, flush=True)
    time.sleep(600)
""")


def redis_servers_in(data: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"redis-server" in (entry / "cmdline").read_bytes() \
                    and Path(os.readlink(entry / "cwd")) == data:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_data_is_kept_the_server_is_shared_and_taken_over_when_its_starter_dies(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    first = LocalServer(data).open()
    assert first.started_here and data.stat().st_mode & 0o777 == 0o700
    assert (data / "server.json").stat().st_mode & 0o777 == 0o600
    client = redis.Redis.from_url(first.url)
    client.set("kept", "yes")
    client.close()
    first.close()  # the last user: the server stops, its data stays
    assert running_info(data) is None and redis_servers_in(data) == []

    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(data)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        url = owner.stdout.readline().strip()  # type: ignore[union-attr]
        assert url == first.url  # started again on the same address and password: its data read back
        joined = LocalServer(data).open()  # another process of the directory joins, starts nothing
        assert not joined.started_here and joined.url == url and len(redis_servers_in(data)) == 1
        client = redis.Redis.from_url(url)
        assert client.get("kept") == b"yes"
        client.set("later", "also")
        old = read_info(data)
        assert old is not None and old.owner == owner.pid
        os.kill(owner.pid, signal.SIGKILL)  # its server dies with it; the joined process takes over
        deadline = time.monotonic() + 30
        while not joined.started_here and time.monotonic() < deadline:
            time.sleep(0.05)
        assert joined.started_here and joined.url == url
        assert client.get("later") == b"also" and client.get("kept") == b"yes"  # the same client reconnects
        assert redis_servers_in(data) == [joined.info.pid]  # type: ignore[union-attr]
        client.close()
        joined.close()
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while redis_servers_in(data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_servers_in(data) == []
