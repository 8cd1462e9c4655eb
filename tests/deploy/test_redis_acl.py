"""The Redis users of the deploy examples (deploy/redis/users.acl) on a real redis-server: each process
does its whole job as its own user, and nothing more.

The ACL file is rendered by the deploy's own script, the server started with it, and then: a review
submitted by `swarm review` as swarm-client runs to its end on a `celery worker` logged in as
swarm-worker, Flower (swarm-flower) sees the worker and its tasks, the dashboard's views read the run as
swarm-dashboard and KEDA's list lengths come as swarm-keda, with not one ACL denial on the way. Then
each user is refused what it has no business doing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.dashboard.views import Views
from swarm_tasks.settings import QUEUES, SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster, settings_env
from tests.deploy.conftest import DEPLOY, Proc, child_env, free_port, http_get, wait_for
from tests.review.helpers import write_tree

pytestmark = pytest.mark.slow

ROLES = {"admin": "REDIS_PASSWORD", "swarm-worker": "REDIS_WORKER_PASSWORD", "swarm-client": "REDIS_CLIENT_PASSWORD",
         "swarm-dashboard": "REDIS_DASHBOARD_PASSWORD", "swarm-flower": "REDIS_FLOWER_PASSWORD",
         "swarm-keda": "REDIS_KEDA_PASSWORD"}
FLOWER_AUTH = ("ops", "acl-flower-ui-pw")


def redis_7() -> str | None:
    found = shutil.which("redis-server")
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout
    major = version.split("v=", 1)[1].split(".", 1)[0] if "v=" in version else "0"
    return found if major.isdigit() and int(major) >= 7 else None


@dataclass
class AclRedis:
    port: int
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), socket_timeout=10)


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def render(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(DEPLOY / "redis" / "render-acl.sh"), str(DEPLOY / "redis" / "users.acl"),
                           str(tmp / "users.acl")], env={"PATH": os.defpath, **env}, capture_output=True, text=True,
                          check=False)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    binary = redis_7()
    if binary is None:
        pytest.skip("the deploy's ACL file needs Redis 7 (key permissions): no redis-server 7 on PATH "
                    "(scripts/system-deps.sh installs one)")
    passwords = {user: f"{user}-pw-{os.urandom(6).hex()}" for user in ROLES}
    done = render(tmp_path, {var: passwords[user] for user, var in ROLES.items()})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    acl = tmp_path / "users.acl"
    assert acl.stat().st_mode & 0o777 == 0o600
    assert not any(p in acl.read_text() for p in passwords.values())
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--aclfile", str(acl), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = AclRedis(port, passwords)
    try:
        wait_for(lambda: answers(server.client("admin")), 30, "redis-server with the ACL file",
                 alive=lambda: None if proc.poll() is None else (tmp_path / "redis.log").read_text())
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def denied(fn, *args: object) -> bool:
    try:
        fn(*args)
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as exc:  # a script's command refused
        return "permission" in str(exc).lower() or "can't run" in str(exc)
    return False


def test_each_process_does_its_job_as_its_own_user_and_nothing_more(acl_redis: AclRedis, tmp_path: Path) -> None:
    admin = acl_redis.client("admin")
    state = tmp_path / "state"
    worker = SwarmSettings(redis_url=SecretStr(acl_redis.url("swarm-worker")), state_dir=state,
                           model_guard="local-only")
    flower_settings = SwarmSettings(redis_url=SecretStr(acl_redis.url("swarm-flower")), state_dir=state,
                                    flower_basic_auth=SecretStr(":".join(FLOWER_AUTH)))
    flower_port = free_port()
    flower = Proc([sys.executable, "-m", "celery", "-A", "swarm_tasks", "flower", f"--port={flower_port}"],
                  child_env(settings_env(flower_settings)), tmp_path / "logs" / "flower.log")
    repo = write_tree(tmp_path / "repo", {"app.py": "def run(expr):\n    return eval(expr)\n"})
    env = child_env({"SWARM_REDIS_URL": acl_redis.url("swarm-client"), "SWARM_STATE_DIR": str(state),
                     "SWARM_MODEL_GUARD": "local-only"})
    try:
        with LocalCluster(worker, workers=1, queues=QUEUES, concurrency=4, name_prefix="acl",
                          log_dir=tmp_path / "logs"):
            review = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "review", str(repo), "--workers", "0",
                                     "--json"], env=env, capture_output=True, text=True, timeout=300, check=False)
            assert review.returncode == 0, review.stderr[-2000:]
            run_id = json.loads(review.stdout)["run"]
            status = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "status", run_id, "--json"], env=env,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert status.returncode == 0 and json.loads(status.stdout)["status"] == "completed", status.stderr
            base = f"http://127.0.0.1:{flower_port}"
            workers = wait_for(lambda: json.loads(http_get(f"{base}/api/workers?refresh=1", FLOWER_AUTH)[1]) or None,
                               90, "Flower to see the worker", alive=flower.dead)
            assert [name.split("@")[0] for name in workers] == ["acl0"]
            tasks = json.loads(http_get(f"{base}/api/tasks", FLOWER_AUTH)[1])
            assert any(str(t.get("name")).startswith("swarm.agent.step") for t in tasks.values()), tasks
            assert http_get(f"{base}/metrics")[0] == 200
    finally:
        flower.stop()
    views = Views(SwarmClient.create(
        SwarmSettings(redis_url=SecretStr(acl_redis.url("swarm-dashboard")), state_dir=state),
        acl_redis.client("swarm-dashboard")))
    assert [r.id for r in views.runs()] == [run_id] and views.run_detail(run_id)["run"]["status"] == "completed"
    agents = views.agents(run_id)["agents"]
    assert agents and views.agent(run_id, agents[0]["id"]).agent["id"] == agents[0]["id"]
    assert views.board(run_id)["total"] >= 0
    keda = acl_redis.client("swarm-keda")
    assert [keda.llen(q) for q in QUEUES] == [0] * len(QUEUES)
    assert admin.acl_log() == [], "a process was refused something its job needs"

    # ... and nothing more.
    worker_client, client = acl_redis.client("swarm-worker"), acl_redis.client("swarm-client")
    dashboard, flower_client = acl_redis.client("swarm-dashboard"), acl_redis.client("swarm-flower")
    admin.set("other-app:secret", "x")
    record_key = next(k.decode() for k in admin.scan_iter(match="swarm:*", count=1000))
    for user, refused in {
        "swarm-worker": [(worker_client.flushall,), (worker_client.config_get, "*"), (worker_client.keys, "*"),
                         (worker_client.acl_list,), (worker_client.get, "other-app:secret"),
                         (worker_client.execute_command, "SLOWLOG", "RESET"),
                         (worker_client.execute_command, "CONFIG", "SET", "appendonly", "no"),
                         (worker_client.script_flush,)],
        "swarm-client": [(client.brpop, ["agents"], 1), (client.flushdb,), (client.get, "other-app:secret")],
        "swarm-dashboard": [(dashboard.set, record_key, "x"), (dashboard.delete, record_key),
                            (dashboard.lpush, "agents", "x"), (dashboard.eval, "return 1", 0)],
        "swarm-flower": [(flower_client.lpush, "agents", "x"), (flower_client.get, record_key)],
        "swarm-keda": [(keda.get, record_key), (keda.lpush, "agents", "x"), (keda.lrange, "agents", 0, -1)],
    }.items():
        for call in refused:
            assert denied(*call), f"{user} may {call[0].__name__}{call[1:]}"
    assert admin.exists(record_key) and admin.llen("agents") == 0


def test_a_user_without_a_password_is_switched_off(tmp_path: Path) -> None:
    done = render(tmp_path, {"REDIS_PASSWORD": "admin-pw", "REDIS_WORKER_PASSWORD": "worker-pw"})
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in (tmp_path / "users.acl").read_text().splitlines()}
    assert " on #" in lines["admin"] and " on #" in lines["swarm-worker"]
    for user in ("swarm-client", "swarm-dashboard", "swarm-flower", "swarm-keda"):
        assert " off resetpass " in lines[user] and "{{" not in lines[user]
        assert f"{ROLES[user]} is not set" in done.stderr
    assert lines["default"] == "user default off"
