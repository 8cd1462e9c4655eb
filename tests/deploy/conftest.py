"""Helpers for the deployment tests: real processes (Flower, workers, honcho) on the test Redis."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from coordination.embedded import EmbeddedRedis
from coordination.registry import Kind
from coordination.run import global_registry
from swarm_tasks.settings import SwarmSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
FLOWER_AUTH = ("ops", "flower-test-pw")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def flushed(server: EmbeddedRedis) -> Iterator[str]:
    """The session's embedded server, empty before and after (for module-scoped fixtures). The same URL
    as the ``redis_url`` fixture's: this process's Celery app is never pointed at another server."""
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    try:
        yield server.url
    finally:
        client.flushdb()
        client.close()


def http_get(url: str, auth: tuple[str, str] | None = None, timeout_s: float = 10.0) -> tuple[int, str]:
    """Status and body of a GET (errors too: a 401 is an answer, not an exception)."""
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, *,
             alive: Callable[[], str | None] = lambda: None, every_s: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; ``alive`` names a dead process to fail early."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            result = check()
            if result:
                return result
        dead = alive()
        if dead:
            raise AssertionError(f"waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(every_s)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without the developer's SWARM_*/FLOWER_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "FLOWER_"))}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)])
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env


class Proc:
    """A process we started in its own session, with its output in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT) -> None:
        self.args = list(args)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, cwd=str(cwd),
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def dead(self) -> str | None:
        if self.process.poll() is None:
            return None
        return f"{self.args[:4]} exited with {self.process.returncode}:\n{self.tail()}"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Signal the process group, wait, then SIGKILL it if it is still there."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def live_workers(settings: SwarmSettings) -> set[str]:
    """Celery node names of the workers registered as live in the swarm's registry."""
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        live = global_registry(client, settings).discover(kind=Kind.WORKER)
        return {str(r.meta.get("celery_name", "")) for r in live}
    finally:
        client.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"
