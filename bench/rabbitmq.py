"""The machine's RabbitMQ as a Celery broker for tests and benchmarks: a dedicated vhost per use.

A vhost of our own (created and deleted with ``rabbitmqctl``) keeps our queues apart from anyone
else's on the server. A broker restart (``rabbitmqctl stop_app`` / ``start_app``) stops the whole
server, so it is done only when no other vhost has a connection; otherwise every connection of our
vhost is closed instead, and the caller is told which happened.

``SWARM_TEST_AMQP_URL`` names another server (default ``amqp://guest:guest@127.0.0.1:5672``);
``rabbitmqctl`` must be able to manage it (root on the machine that runs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

AMQP_URL = os.environ.get("SWARM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


class RabbitUnavailable(RuntimeError):
    """No RabbitMQ we can use here (the reason says why)."""


def _ctl(*args: str, timeout_s: float = 120.0) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RabbitUnavailable(f"rabbitmqctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def rabbitmq_unavailable() -> str | None:
    """Why the tests cannot use a RabbitMQ here (a reason to skip with), or None."""
    parts = urlsplit(AMQP_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            pass
    except OSError as exc:
        return f"no RabbitMQ at {parts.hostname}:{parts.port or 5672} ({exc}); set SWARM_TEST_AMQP_URL or start one"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH: the tests create and delete a vhost of their own with it"
    try:
        _ctl("list_vhosts", timeout_s=60)
    except (RabbitUnavailable, subprocess.TimeoutExpired) as exc:
        return f"cannot manage RabbitMQ with rabbitmqctl (root is needed): {exc}"
    return None


class Vhost:
    """A vhost of our own on the broker, with the URL's user allowed everything in it."""

    def __init__(self, prefix: str = "swarm-test") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        parts = urlsplit(AMQP_URL)
        self.user = parts.username or "guest"
        self._base = AMQP_URL.rstrip("/")

    @property
    def url(self) -> str:
        return f"{self._base}/{self.name}"

    def create(self) -> Vhost:
        _ctl("add_vhost", self.name)
        _ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        _ctl("delete_vhost", self.name)

    def __enter__(self) -> Vhost:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def queue_types(self) -> dict[str, str]:
        """Queue name -> type (``quorum``, ``classic``) of every queue in the vhost."""
        out = _ctl("list_queues", "-p", self.name, "name", "type", "--no-table-headers")
        return dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)

    def others_connected(self) -> bool:
        """Has any other vhost a client connection now?"""
        out = _ctl("list_connections", "vhost", "--no-table-headers")
        return any(line.strip() and line.strip() != self.name for line in out.splitlines())

    def restart_broker(self, down_s: float = 3.0) -> str:
        """Restart RabbitMQ (stop_app, ``down_s``, start_app) if nobody else uses it, else close every
        connection of this vhost; says which."""
        if self.others_connected():
            _ctl("close_all_connections", "--vhost", self.name, "broker restart (test)")
            return "closed every connection of the vhost (the server is shared: not restarted)"
        _ctl("stop_app")
        try:
            time.sleep(down_s)
        finally:
            _ctl("start_app")
            _ctl("await_startup", timeout_s=180)
        return f"restarted RabbitMQ (stop_app, {down_s:.0f} s down, start_app)"
