"""Settings whose effect shows in a process started with them in its environment, as a user starts one:
the connection cap of a process's Redis pool, and how long a signed task message stays valid. (Model,
budget and dashboard settings are tested the same way beside their features.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from swarm_tasks.settings import QUEUES
from swarm_tasks.worker.cluster import LocalCluster
from tests.cli.test_cli import swarm
from tests.review.helpers import write_tree

KEY = "settings-env-signing-key-5e6f7a8b9c"

# Twelve threads of one process each hold a connection for half a second (BLPOP on an empty list).
BLOCKERS = """
import threading
from coordination.connection import connect
from swarm_tasks.settings import get_settings

client = connect(get_settings()).client
threads = [threading.Thread(target=client.blpop, args=(f"settings-env-empty-{i}", 0.5)) for i in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done")
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return {**keep, "SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path / "state"),
            "SWARM_MODEL_GUARD": "local-only"}


def _peak_blocked(redis_url: str, environ: dict[str, str]) -> int:
    """Most connections of one `BLOCKERS` process seen blocked in BLPOP at once."""
    observer = redis.Redis.from_url(redis_url)
    peak, stop = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sum(1 for c in observer.client_list() if c.get("cmd") == "blpop"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        done = subprocess.run([sys.executable, "-c", BLOCKERS], env=environ, capture_output=True, text=True,
                              timeout=120, check=False)
    finally:
        stop.set()
        sampler.join()
        observer.close()
    assert done.returncode == 0 and "done" in done.stdout, done.stderr  # the threads waited, none failed
    return peak


def test_SWARM_REDIS_MAX_CONNECTIONS_caps_a_process_and_its_threads_wait_for_a_free_connection(env):
    uncapped = _peak_blocked(env["SWARM_REDIS_URL"], env)
    capped = _peak_blocked(env["SWARM_REDIS_URL"], {**env, "SWARM_REDIS_MAX_CONNECTIONS": "3"})
    assert uncapped >= 10, uncapped  # all twelve at once, give or take the sampling
    assert 1 <= capped <= 3, capped


def test_a_message_older_than_SWARM_TASK_SIGNATURE_TTL_S_is_refused_by_the_worker(
        env, tmp_path: Path, swarm_settings):
    """The sender stamps the expiry: a review submitted with a 1 s validity, picked up 3 s later by a
    worker, has its messages refused as expired (with the default of a day they would run)."""
    env = {**env, "SWARM_TASK_SIGNING_KEY": KEY, "SWARM_TASK_SIGNATURE_TTL_S": "1"}
    repo = write_tree(tmp_path / "repo", {"a.py": "import os\n\ndef run(cmd):\n    os.system(cmd)\n"})
    submitted = swarm("review", str(repo), "--detach", env=env)
    assert submitted.returncode == 0, submitted.stderr
    time.sleep(3)
    settings = swarm_settings.model_copy(update={"task_signing_key": SecretStr(KEY)})
    logs = tmp_path / "logs"
    with LocalCluster(settings, workers=1, queues=QUEUES, concurrency=2, name_prefix="ttl", log_dir=logs):
        deadline = time.monotonic() + 90
        while True:
            text = "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
            if "message signature has expired (SWARM_TASK_SIGNATURE_TTL_S)" in text:
                break
            assert time.monotonic() < deadline, f"no expired message was refused; worker logs:\n{text[-3000:]}"
            time.sleep(0.2)
    assert "refused task message" in text
