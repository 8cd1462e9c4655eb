"""A Redis that does not answer is its own, documented failure: exit 5 with one clear sentence, never
"the run failed" (1), and nothing (a dashboard URL included) offered before Redis has answered."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from swarm_tasks.cli_common import EXIT_UNREACHABLE
from tests.cli.test_cli import swarm


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: a connection is refused at once
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["status"], ["workers", "--json"], ["dashboard", "--port", "1"]])
def test_a_closed_redis_port_is_exit_5_with_one_clear_sentence(tmp_path: Path, command: list[str]) -> None:
    port = closed_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWARM_")},
           "SWARM_REDIS_URL": f"redis://:secret-pw@127.0.0.1:{port}/0", "SWARM_STATE_DIR": str(tmp_path),
           "COLUMNS": "300"}
    done = swarm(*command, env=env, timeout=60)
    assert done.returncode == EXIT_UNREACHABLE == 5, done.stderr
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in done.stderr
    assert "Connection refused. Start Redis there" in done.stderr and ".." not in done.stderr
    assert "secret-pw" not in done.stderr and "Traceback" not in done.stderr
    assert "http://" not in done.stderr  # the dashboard names its page only once Redis answered
