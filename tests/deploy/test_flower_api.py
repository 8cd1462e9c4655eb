"""Flower as the README documents it: ``celery -A swarm_tasks flower`` on loopback answers its HTTP API
(Flower 2 refuses it with 401 unless told otherwise), same-origin only and read-only; without
``SWARM_REDIS_URL`` it stops with one clear line instead of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO_ROOT, Proc, child_env, free_port, wait_for

pytestmark = pytest.mark.slow
FLOWER = [sys.executable, "-m", "celery", "-A", "swarm_tasks", "flower"]


def request(url: str, *, method: str = "GET") -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                 headers={"Origin": "https://elsewhere.example"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


def test_the_api_answers_on_loopback_same_origin_and_read_only(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = child_env({"SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path / "state")})
    flower = Proc([*FLOWER, f"--port={port}"], env, tmp_path / "flower.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: request(f"{base}/healthcheck")[0] == 200, 90, "Flower", alive=flower.dead)
        for path in ("/api/workers", "/api/tasks?search=run-1"):
            status, headers, body = request(base + path)
            assert status == 200, (path, status, body)  # Flower 2's default here is a 401
            assert isinstance(json.loads(body), dict)
            assert "Access-Control-Allow-Origin" not in headers  # another web site cannot read it
        status, _, _ = request(f"{base}/api/task/async-apply/swarm.ping", method="POST")
        assert status != 200  # read-only: nothing can be sent through the open API
    finally:
        flower.stop()


def test_without_the_shared_redis_flower_says_so_in_one_line(tmp_path: Path) -> None:
    env = child_env({"SWARM_STATE_DIR": str(tmp_path / "state")})
    done = subprocess.run([*FLOWER, f"--port={free_port()}"], env=env, cwd=str(REPO_ROOT), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("flower: error: Flower needs SWARM_REDIS_URL")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2, done.stderr
