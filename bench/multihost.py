"""Swarm runs spread over several hosts on one machine: network namespaces on a bridge (bench/netns.py),
each with its own Celery workers (``celery -A swarm_tasks worker``, started in the host with
``ip netns exec``) and its own workspace root (``SWARM_STATE_DIR``), all reaching one Redis and one git
server over the bridge. Only the test process, in the root namespace, talks to Redis over loopback.

The review reads the shipped example from a git daemon (so each host clones it into its own state
directory) and the build pushes to a bare repository served by the same daemon: no worker shares a
checkout with another host. Runs, and how they are judged, are the fault harness's (bench/faultlib.py).

A host's clock can be set minutes off: with Debian's libfaketime (``LD_PRELOAD``: the worker and every
process it starts see the offset wall clock; the monotonic clock is left alone, as on a real host with a
wrong clock), else by an offset on Python's ``time.time`` in the worker (a ``sitecustomize`` module: the
clock Python code reads, not the C libraries' nor the children's). libfaketime is preferred because
nothing in the worker can reach past it; the price is a shim for ``time.sleep``, which it breaks.
"""

from __future__ import annotations

import contextlib
import glob
import random
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import SecretStr

from bench.faultlib import EXAMPLE, QUEUES, FaultHarness, Injector, _git
from bench.netns import Host, Network
from coordination.embedded import EmbeddedRedis
from coordination.registry import Kind
from coordination.run import global_registry
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.errors import SwarmError
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster

_SITECUSTOMIZE = '''"""Test clock skew for this worker (bench/multihost.py): SWARM_TEST_CLOCK_OFFSET_S sets Python's
wall clock that many seconds off; SWARM_TEST_SLEEP_SHIM makes time.sleep wait with select(), because under
libfaketime 0.9.10 CPython 3.11's time.sleep (clock_nanosleep, TIMER_ABSTIME) fails with EINVAL."""
import os
import select
import time

_offset = float(os.environ.get("SWARM_TEST_CLOCK_OFFSET_S", "0"))
if _offset:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _offset
    time.time_ns = lambda: _time_ns() + int(_offset * 1e9)

if os.environ.get("SWARM_TEST_SLEEP_SHIM"):
    def _sleep(secs: float) -> None:
        if secs < 0:
            raise ValueError("sleep length must be non-negative")
        end = time.monotonic() + secs
        while (left := end - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
'''


def faketime_library() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def clock_skew_env(offset_s: float, scratch: Path) -> tuple[dict[str, str], str]:
    """Environment that sets a worker's wall clock ``offset_s`` off, and how it does it."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    library = faketime_library()
    if library:
        return ({"LD_PRELOAD": library, "FAKETIME": f"{offset_s:+.0f}", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                 "PYTHONPATH": str(scratch), "SWARM_TEST_SLEEP_SHIM": "1"},
                "libfaketime (the worker and everything it starts; time.sleep through select(), which "
                "libfaketime 0.9.10 breaks in CPython 3.11)")
    return ({"PYTHONPATH": str(scratch), "SWARM_TEST_CLOCK_OFFSET_S": f"{offset_s}"},
            "an offset on Python's time.time in the worker (libfaketime is not installed: its children and "
            "datetime keep the true clock)")


class BridgedRedis(EmbeddedRedis):
    """The embedded server, listening on the bridge as well as on loopback."""

    def __init__(self, data_dir: Path, address: str) -> None:
        super().__init__(data_dir)
        self.address = address

    def _config(self, port: int) -> str:
        return super()._config(port) + f"bind 127.0.0.1 {self.address}\n"  # the later line wins

    def url_at(self, host: str) -> str:
        return f"redis://:{self.password}@{host}:{self.port}/0"


class GitDaemon:
    """``git daemon`` serving the repositories under ``base`` on the bridge (fetch and push)."""

    def __init__(self, base: Path, address: str) -> None:
        self.base = base
        self.address = address
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> GitDaemon:
        with socket.socket() as probe:
            probe.bind((self.address, 0))
            self.port = probe.getsockname()[1]
        self.base.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", f"--listen={self.address}", f"--port={self.port}",
             f"--base-path={self.base}", "--export-all", "--enable=receive-pack", "--informative-errors",
             str(self.base)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # git, not a socket of ours: the tests' network guard allows only loopback to Python sockets.
            done = subprocess.run(["git", "ls-remote", self.url("probe.git")], capture_output=True, check=False)
            if b"unable to connect" not in done.stderr and b"Connection refused" not in done.stderr:
                return self  # it answered (that there is no such repository)
            time.sleep(0.1)
        raise SwarmError(f"git daemon did not start on {self.address}:{self.port}")

    def url(self, relative: str) -> str:
        return f"git://{self.address}:{self.port}/{relative}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class MultiHostHarness(FaultHarness):
    """``hosts`` network namespaces with ``workers`` Celery workers each; runs as in the fault harness."""

    def __init__(self, tmp: Path, *, hosts: int = 3, workers: int = 1, seed: int = 0) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.rabbit = None
        self.generation = 0
        self.reference = None
        self.builds = 0
        self.workers_per_host = workers
        self.network = Network(hosts).start()
        try:
            address = self.network.bridge_address
            self.redis = BridgedRedis(tmp / "redis", address).start()
            self.git = GitDaemon(tmp / "builds", address).start()
            self.settings = SwarmSettings(
                redis_url=SecretStr(self.redis.url), state_dir=tmp / "client", model_guard="local-only",
                agent_turn_lease_s=3.0, agent_step_grace_s=6.0, sweep_interval_s=0.3, lease_s=5.0)
            handle = use_settings(self.settings)
            self.client = SwarmClient.create(self.settings, handle.client, CeleryScheduler(app))
            self.clusters: list[LocalCluster | None] = [None] * hosts
            self.skews: dict[int, float] = {}
            self.skew_mechanism = ""
            self.shop = self._serve_example()
            self.build_reference = self._build_reference()
        except BaseException:
            self.close()
            raise

    @property
    def hosts(self) -> list[Host]:
        return self.network.hosts

    # -- topology --------------------------------------------------------------------------------
    def host_settings(self, index: int, turn_lease_s: float | None = None) -> SwarmSettings:
        """What host ``index``'s workers are configured with: Redis over the bridge, their own state dir
        (and a turn lease other than the harness's where given)."""
        return self.settings.model_copy(update={
            "redis_url": SecretStr(self.redis.url_at(self.network.bridge_address)),
            "state_dir": self.tmp / f"host{index}",
            "agent_turn_lease_s": turn_lease_s or self.settings.agent_turn_lease_s})

    def use_hosts(self, indices: Sequence[int], *, skews: dict[int, float] | None = None,
                  turn_lease_s: float | None = None, timeout_s: float = 180.0) -> None:
        """Workers on exactly ``indices`` (restarted where their clock skew or turn lease changes); waits
        until live."""
        skews = skews or {}
        lease_s = turn_lease_s or self.settings.agent_turn_lease_s
        started: list[str] = []
        for index in range(len(self.hosts)):
            cluster = self.clusters[index]
            wanted = index in indices
            if cluster is not None and (not wanted or self.skews.get(index, 0.0) != skews.get(index, 0.0)
                                        or cluster.settings.agent_turn_lease_s != lease_s):
                cluster.stop()
                self.clusters[index] = cluster = None
            if wanted and cluster is None:
                extra: dict[str, str] = {}
                if skews.get(index):
                    extra, self.skew_mechanism = clock_skew_env(skews[index], self.tmp / f"skew{index}")
                cluster = LocalCluster(self.host_settings(index, lease_s), workers=self.workers_per_host, queues=QUEUES,
                                       concurrency=6, name_prefix=f"h{index}-", log_dir=self.tmp / "logs",
                                       extra_env=extra, launcher=self.hosts[index].launcher)
                for worker in range(self.workers_per_host):
                    started.append(cluster.spawn(worker).name)
                self.clusters[index] = cluster
        self.skews = {i: s for i, s in skews.items() if i in indices}
        self._wait_live(started, timeout_s)

    def _wait_live(self, names: list[str], timeout_s: float) -> None:
        # The cluster's own wait reads Redis at the hosts' (bridge) address; the test process uses loopback.
        registry = global_registry(self.client.client, self.settings)
        deadline = time.monotonic() + timeout_s
        missing = list(names)
        while time.monotonic() < deadline:
            live = {r.meta.get("celery_name", "") for r in registry.discover(kind=Kind.WORKER)}
            missing = [n for n in names if not any(c.startswith(f"{n}@") for c in live)]
            if not missing:
                return
            for cluster in self.clusters:
                for worker in (cluster.workers if cluster else []):
                    if worker.name in missing and not worker.alive():
                        raise SwarmError(f"worker {worker.name} exited at start:\n{cluster.tail(worker)}")  # type: ignore[union-attr]
            time.sleep(0.2)
        raise SwarmError(f"workers {missing} did not become ready within {timeout_s:.0f}s; logs in {self.tmp / 'logs'}")

    def kill_host(self, index: int) -> None:
        """kill -9 every worker of host ``index`` (the host dies)."""
        cluster = self.clusters[index]
        assert cluster is not None
        for worker in range(len(cluster.workers)):
            cluster.kill(worker)
        self.clusters[index] = None

    def held_by(self, run_id: str, index: int) -> list[AgentState]:
        """Agents of the run whose turn a worker of host ``index`` holds now."""
        agents = self.client.run(run_id).agents
        held = [a for a in agents.get_many(agents.ids(AgentStatus.RUNNING)) if a is not None]
        return [a for a in held if (a.owner or "").startswith(f"h{index}-")]

    def hosts_that_ran(self, run_id: str) -> Counter[int]:
        """How many of the run's agents each host ran last (by the node that last took a turn)."""
        ctx = self.client.run(run_id)
        agents = [a for a in ctx.agents.get_many(sorted({i for st in AgentStatus for i in ctx.agents.ids(st)}))
                  if a is not None and a.last_node]
        return Counter(int(a.last_node.split("-", 1)[0].removeprefix("h")) for a in agents  # type: ignore[union-attr]
                       if (a.last_node or "").startswith("h"))

    def takeovers(self) -> list[str]:
        """What the hosts' workers logged of turns taken over (whose, by how much the lease had lapsed)
        and of turns they lost: the lines that say why a turn was redone."""
        return [f"{log.stem}: {line.strip()}" for log in sorted((self.tmp / "logs").glob("*.log"))
                for line in log.read_text(errors="replace").splitlines()
                if "lapsed" in line or "lost its turn lease" in line]

    def clock_offsets_min(self, run_id: str) -> Counter[int]:
        """Events of the run by how far the writer's wall clock was from the server's, in whole minutes
        (an event carries its writer's ``time.time()``; its stream id is the server's time)."""
        events = self.client.run(run_id).state.events.read(count=100_000)
        return Counter(round((e.ts - int(e.id.split("-")[0]) / 1000) / 60) for e in events)

    # -- faults of a host ----------------------------------------------------------------------
    def _when_holding(self, run_id: str, index: int, stop: threading.Event, timeout_s: float = 120.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            held = self.held_by(run_id, index)
            if held:
                return [a.id for a in held]
            time.sleep(0.02)
        raise SwarmError(f"host {index} never held a turn of run {run_id}")

    def cut(self, index: int, down_s: float, held: list[str]) -> Injector:
        """Cut host ``index`` off while it holds turns, for ``down_s``, then bring it back; the agents it
        held go to ``held``."""
        def inject(run_id: str, _ready: Callable[[], bool], injected: list[str], stop: threading.Event) -> None:
            self._when_holding(run_id, index, stop)
            self.hosts[index].cut()
            held.extend(a.id for a in self.held_by(run_id, index))  # read after: it can write nothing more
            injected.append(f"cut host {index} off holding {len(held)} turns")
            try:
                time.sleep(down_s)
            finally:
                self.hosts[index].restore()
            injected.append(f"its link up again after {down_s:.0f} s")
        return inject

    def kill(self, index: int, held: list[str]) -> Injector:
        """kill -9 host ``index``'s workers while it holds turns; the agents it held go to ``held``."""
        def inject(run_id: str, _ready: Callable[[], bool], injected: list[str], stop: threading.Event) -> None:
            self._when_holding(run_id, index, stop)
            self.kill_host(index)
            held.extend(a.id for a in self.held_by(run_id, index))  # read after: it can take no more
            injected.append(f"killed host {index}'s workers holding {len(held)} turns")
        return inject

    def close(self) -> None:
        clusters = [c for c in getattr(self, "clusters", []) if c is not None]
        if clusters:  # each host's warm shutdown takes seconds: all at once
            with ThreadPoolExecutor(len(clusters)) as pool:
                list(pool.map(lambda cluster: cluster.stop(), clusters))
        for part in ("git", "redis"):
            with contextlib.suppress(Exception):
                getattr(self, part).stop()
        self.network.stop()

    # -- sources over the network --------------------------------------------------------------
    def _serve_example(self) -> str:
        seed, bare = self.tmp / "shop-seed", self.tmp / "builds" / "shop.git"
        shutil.copytree(EXAMPLE, seed)
        _git(seed, "init", "--quiet", "-b", "main")
        _git(seed, "add", "-A")
        _git(seed, "commit", "--quiet", "-m", "the shop")
        _git(self.tmp, "clone", "--quiet", "--bare", str(seed), str(bare))
        return self.git.url("shop.git")

    def review_source(self) -> str:
        return self.shop

    def remote_url(self, bare: Path) -> str:
        return self.git.url(str(bare.relative_to(self.tmp / "builds")))
