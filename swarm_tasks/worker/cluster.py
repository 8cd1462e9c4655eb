"""Start and stop local Celery worker processes: the README's main job, the tests and the benchmarks
use the very same ``celery -A swarm_tasks worker`` command a user runs on another machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coordination.embedded import die_with_parent
from coordination.registry import Kind
from coordination.run import global_registry
from swarm_tasks.errors import SwarmError
from swarm_tasks.host.processes import signal_group, wait_or_kill
from swarm_tasks.settings import QUEUES, SwarmSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: SwarmSettings) -> dict[str, str]:
    """``SWARM_*`` variables that rebuild ``settings`` in a child process (secrets included: the
    child needs them; the result is passed as the child's environment, never logged)."""
    env: dict[str, str] = {}
    for name, dumped in settings.model_dump(mode="json").items():
        if dumped is None:
            continue
        raw = getattr(settings, name)
        value = raw.get_secret_value() if hasattr(raw, "get_secret_value") else dumped
        env[f"SWARM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@dataclass
class WorkerProcess:
    """One ``celery worker`` process."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


class LocalCluster:
    """N worker processes on this machine, all on the same Redis (settings.redis_url must be set)."""

    def __init__(self, settings: SwarmSettings, *, workers: int = 2, queues: Sequence[str] = QUEUES,
                 concurrency: int | None = None, pool: str | None = None, name_prefix: str = "worker",
                 log_dir: Path | None = None, extra_env: dict[str, str] | None = None,
                 base_env: dict[str, str] | None = None, launcher: Sequence[str] = (),
                 provider_env: dict[str, str] | None = None) -> None:
        if settings.redis_url is None:
            raise SwarmError("LocalCluster needs settings.redis_url (start an embedded server first)")
        self.settings = settings
        self.count = workers
        self.queues = list(queues)
        self.concurrency = concurrency or settings.worker_concurrency
        self.pool = pool or settings.worker_pool
        self.prefix = name_prefix
        self.log_dir = log_dir or settings.state_dir / "logs"
        self.extra_env = extra_env or {}
        self.base_env = dict(base_env) if base_env is not None else {}
        self.launcher = list(launcher)  # a prefix for the command (``ip netns exec <host>`` in tests)
        # Model provider keys and endpoints (OPENAI_API_KEY, AWS_*...): litellm reads them in the worker
        # process that makes the call, so they must be handed on. Default: this process's own.
        self.provider_env = dict(provider_env) if provider_env is not None else settings.provider_environment()
        self.workers: list[WorkerProcess] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in self.base_env.items() if not k.startswith("SWARM_")}
        env.update(self.provider_env)
        env.update(settings_env(self.settings))
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        env.setdefault("PATH", os.defpath)
        return env

    def spawn(self, index: int) -> WorkerProcess:
        name = f"{self.prefix}{index}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        args = [*self.launcher, sys.executable, "-m", "celery", "-A", "swarm_tasks", "worker", "-n", f"{name}@%h",
                "-Q", ",".join(self.queues), "-P", self.pool, "-c", str(self.concurrency), "-E",
                "--without-gossip", "--without-mingle", "-l", "WARNING"]
        with log_path.open("ab") as log:
            # Its own session (a terminal's Ctrl-C is ours to handle), and it dies with us even if we are
            # killed with -9: a worker of a command that is gone has nothing left to work for.
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                       env=self.env(), cwd=str(REPO_ROOT), start_new_session=True,
                                       preexec_fn=die_with_parent())  # noqa: PLW1509
        worker = WorkerProcess(name, process, log_path)
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        return worker

    def start(self, *, timeout_s: float = 90.0) -> LocalCluster:
        """Start the workers and wait until each has registered itself as live; if that fails or is
        interrupted (Ctrl-C, SIGTERM), the workers already started are stopped before it raises."""
        try:
            for index in range(self.count):
                self.spawn(index)
            self.wait_ready([w.name for w in self.workers], timeout_s=timeout_s)
        except BaseException:
            self.stop(timeout_s=10.0)
            raise
        return self

    def wait_ready(self, names: Sequence[str], *, timeout_s: float = 90.0) -> None:
        from coordination.connection import connect

        handle = connect(self.settings)
        try:
            registry = global_registry(handle.client, self.settings)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                live = {r.meta.get("celery_name", "") for r in registry.discover(kind=Kind.WORKER)}
                missing = [n for n in names if not any(c.startswith(f"{n}@") for c in live)]
                if not missing:
                    return
                dead = [w for w in self.workers if w.name in missing and not w.alive()]
                if dead:
                    raise SwarmError(f"worker {dead[0].name} exited at start; see {dead[0].log_path}:\n"
                                     + self.tail(dead[0]))
                time.sleep(0.2)
            raise SwarmError(f"workers {missing} did not become ready within {timeout_s:.0f}s; logs in {self.log_dir}")
        finally:
            handle.client.close()

    def tail(self, worker: WorkerProcess, lines: int = 20) -> str:
        try:
            return "\n".join(worker.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill a worker's whole process group (as a crash or an OOM kill would)."""
        worker = self.workers[index]
        signal_group(worker.process.pid, sig)
        worker.process.wait(timeout=30)

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """Warm shutdown (SIGTERM) of every worker at once, then SIGKILL what is left after ``timeout_s``."""
        for worker in self.workers:
            if worker.alive():
                signal_group(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            wait_or_kill(worker.process, max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
