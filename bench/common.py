"""What every benchmark shares: the result shape, machine facts, a Redis to run against, a pool of
OS processes that start work at the same moment, peak-RSS helpers, and Markdown/JSON output."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import psutil
import redis

from coordination.embedded import EmbeddedRedis

RESULTS_DIR = Path(__file__).resolve().parent / "results"

A = TypeVar("A")
R = TypeVar("R")


# -- the result shape ------------------------------------------------------------------------------

@dataclass(slots=True)
class Row:
    """One measured metric, next to the baseline it is compared with and the goal it must meet."""

    metric: str
    ours: float | None
    unit: str = ""
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    goal: str | None = None
    goal_met: bool | None = None


@dataclass(slots=True)
class BenchResult:
    """Everything one benchmark measured; written whole to ``bench/results/<name>.json``."""

    name: str
    rows: list[Row]
    machine: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Raw per-run numbers the rows were computed from, for whoever wants to dig further.
    details: dict[str, Any] = field(default_factory=dict)
    # Further Markdown tables (a title line, then the table) for shapes that are not one row per metric.
    tables: list[str] = field(default_factory=list)
    # Set by ``python -m bench`` around the run: what was run, at which size, and how long it took
    # (so a table assembled from several runs can say where each row comes from).
    command: str = ""
    full: bool | None = None
    elapsed_s: float | None = None

    @property
    def goals_met(self) -> bool:
        """False if any row with a goal missed it."""
        return all(row.goal_met is not False for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BenchResult:
        rows = [Row(**row) for row in raw.get("rows", [])]
        return cls(name=raw["name"], rows=rows, machine=raw.get("machine", {}), params=raw.get("params", {}),
                   notes=list(raw.get("notes", [])), details=raw.get("details", {}),
                   tables=list(raw.get("tables", [])), command=raw.get("command", ""),
                   full=raw.get("full"), elapsed_s=raw.get("elapsed_s"))


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or not baseline:
        return None
    return ours / baseline


def at_least(value: float | None, minimum: float) -> bool | None:
    """Goal check that stays None (not False) when there is nothing to compare."""
    return None if value is None else value >= minimum


# -- machine facts ---------------------------------------------------------------------------------

def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(client: redis.Redis | None = None) -> dict[str, Any]:
    """Cores, memory, CPU model, Python, Redis version, date, and the load when the run began
    (a loaded machine explains slow numbers)."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_version": None,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if client is not None:
        with contextlib.suppress(redis.RedisError):
            info["redis_version"] = client.info("server").get("redis_version")
    return info


# -- a Redis to measure against ----------------------------------------------------------------------

@dataclass(slots=True)
class BenchRedis:
    """The server a benchmark uses: its URL (for worker processes) and a client for the parent."""

    url: str
    client: redis.Redis
    embedded: bool

    def new_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def refuse_in_worker() -> None:
    """Stop a benchmark from starting inside one of its own worker processes.

    forkserver and spawn workers re-import the parent's main script; without an
    ``if __name__ == "__main__":`` guard each of 64 workers would start a whole benchmark of its own.
    """
    # _inheriting is what multiprocessing itself checks while a child re-imports the main module.
    if mp.parent_process() is not None or getattr(mp.current_process(), "_inheriting", False):
        raise RuntimeError("a benchmark was started inside a worker process: guard the script that "
                           "starts it with `if __name__ == \"__main__\":`")


@contextlib.contextmanager
def redis_for_bench() -> Iterator[BenchRedis]:
    """``SWARM_REDIS_URL`` if set, else a fresh embedded server that is stopped afterwards.

    Benchmarks must write only under their own run ids on a configured server (never flush it).
    """
    refuse_in_worker()
    url = os.environ.get("SWARM_REDIS_URL")
    server = None if url else EmbeddedRedis().start()
    try:
        target = url or server.url  # type: ignore[union-attr]
        client = redis.Redis.from_url(target)
        try:
            yield BenchRedis(url=target, client=client, embedded=server is not None)
        finally:
            client.close()
    finally:
        if server is not None:
            server.stop()


# -- processes that start together -------------------------------------------------------------------

@dataclass(slots=True)
class Together(Generic[R]):
    """What :func:`run_together` returns: the release moment (``time.monotonic``, which is the same
    clock in every process on Linux) and each worker's result, in argument order."""

    released_at: float
    results: list[R]
    startup_s: float


class WorkerFailed(RuntimeError):
    """A benchmark worker process raised or died; carries its traceback."""


def _worker_main(target: Callable[[Any, Callable[[], float]], Any], index: int, arg: Any,
                 ready: Any, go: Any, out: Any) -> None:
    released: list[float] = []

    def start() -> float:
        ready.put(index)
        go.wait()
        released.append(time.monotonic())
        return released[0]

    try:
        out.put((index, True, target(arg, start)))
    except BaseException:  # report anything, even KeyboardInterrupt, so the parent never hangs
        out.put((index, False, traceback.format_exc()))


def run_together(target: Callable[[A, Callable[[], float]], R], args: Sequence[A], *,
                 timeout_s: float = 300.0, context: str = "forkserver",
                 preload: Sequence[str] = ()) -> Together[R]:
    """Run ``target(arg, start)`` in one OS process per ``arg``; all begin work at the same moment.

    Each worker does its setup (connect, build objects), then calls ``start()``, which blocks until
    every worker is ready and returns the release time. Start-up therefore is not measured. The
    default ``forkserver`` context with ``preload`` modules makes 64 workers cheap to start; ``target``
    must be a module-level function and ``args`` picklable.
    """
    refuse_in_worker()
    ctx = mp.get_context(context)
    if context == "forkserver" and preload:
        ctx.set_forkserver_preload(list(preload))
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    began = time.monotonic()
    procs = [ctx.Process(target=_worker_main, args=(target, i, arg, ready, go, out), daemon=True,
                         name=f"bench-worker-{i}") for i, arg in enumerate(args)]
    try:
        for proc in procs:
            proc.start()
        deadline = began + timeout_s
        results: dict[int, R] = {}
        for _ in procs:  # a worker that fails during setup reports instead of becoming ready
            _wait_ready(ready, out, procs, deadline, results)
        startup = time.monotonic() - began
        released_at = time.monotonic()
        go.set()
        while len(results) < len(procs):
            index, ok, value = _next_result(out, procs, deadline)
            if not ok:
                raise WorkerFailed(f"worker {index} failed:\n{value}")
            results[index] = value
        for proc in procs:
            proc.join(timeout=10)
        return Together(released_at, [results[i] for i in range(len(procs))], startup)
    finally:
        for proc in procs:  # only our own workers, and only if still running after an error
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        ready.close()
        out.close()


def _wait_ready(ready: Any, out: Any, procs: Sequence[Any], deadline: float, results: dict[int, Any]) -> None:
    while True:
        try:
            ready.get(timeout=0.2)
            return
        except queue.Empty:
            pass
        with contextlib.suppress(queue.Empty):
            index, ok, value = out.get_nowait()
            if not ok:
                raise WorkerFailed(f"worker {index} failed before starting:\n{value}")
            results[index] = value  # finished without calling start(): fine, it counts as ready
            return
        _check_alive(procs, deadline)


def _next_result(out: Any, procs: Sequence[Any], deadline: float) -> tuple[int, bool, Any]:
    while True:
        try:
            return out.get(timeout=0.2)  # type: ignore[no-any-return]
        except queue.Empty:
            _check_alive(procs, deadline)


def _check_alive(procs: Sequence[Any], deadline: float) -> None:
    if time.monotonic() > deadline:
        raise WorkerFailed("benchmark workers did not finish in time")
    dead = [p for p in procs if p.exitcode not in (None, 0)]
    if dead:
        raise WorkerFailed(f"worker {dead[0].name} died with exit code {dead[0].exitcode}")


# -- memory -------------------------------------------------------------------------------------------

def peak_rss_self_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_children_mb() -> float:
    """Largest peak RSS among children that have been waited for (not their sum)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class RssSampler:
    """Samples the summed RSS of a process tree in a background thread; ``peak_mb`` is the highest sum.

    Use for memory of many processes at once (``ru_maxrss`` only knows the largest single one)::

        with RssSampler(os.getpid()) as rss:
            ...
        print(rss.peak_mb)
    """

    def __init__(self, pid: int | None = None, *, interval_s: float = 0.1, children: bool = True) -> None:
        self.pid = pid or os.getpid()
        self.interval_s = interval_s
        self.children = children
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> float:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *(root.children(recursive=True) if self.children else [])]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        mb = total / 2**20
        self.peak_mb = max(self.peak_mb, mb)
        return mb

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- output -------------------------------------------------------------------------------------------

def fmt(value: float | None, unit: str = "") -> str:
    """Numbers for humans: thousands separators, three significant digits for small values."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _met(flag: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: ""}[flag]


def markdown_table(results: Sequence[BenchResult]) -> str:
    """One Markdown table (benchmark, metric, ours, baseline, ratio, goal, met) for all results."""
    lines = ["| benchmark | metric | ours | baseline | ratio | goal | met |",
             "|---|---|---:|---:|---:|---|---|"]
    for result in results:
        for row in result.rows:
            baseline = fmt(row.baseline, row.unit)
            if row.baseline_name and row.baseline is not None:
                baseline = f"{baseline} ({row.baseline_name})"
            ratio_text = "-" if row.ratio is None else f"{row.ratio:.2f}x"
            lines.append(f"| {result.name} | {row.metric} | {fmt(row.ours, row.unit)} | {baseline} | "
                         f"{ratio_text} | {row.goal or ''} | {_met(row.goal_met)} |")
    return "\n".join(lines)


def render(result: BenchResult) -> str:
    """The table plus the notes and the machine line, as printed at the end of a run."""
    m = result.machine
    parts = [markdown_table([result]), "",
             f"machine: {m.get('cores')} cores, {m.get('memory_gb')} GB, {m.get('cpu_model')}, "
             f"Python {m.get('python')}, Redis {m.get('redis_version')}, "
             f"load {m.get('load_average')} at {m.get('date')}"]
    parts += [f"- {note}" for note in result.notes]
    parts += [f"\n{table}" for table in result.tables]
    return "\n".join(parts)


def write_json(name: str, payload: Any, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def write_result(result: BenchResult, directory: Path = RESULTS_DIR) -> Path:
    """Write the whole result to ``<directory>/<name>.json``."""
    return write_json(result.name, result.to_dict(), directory)


def progress(message: str) -> None:
    """Progress goes to stderr so ``--json-only`` output stays clean."""
    print(message, file=sys.stderr, flush=True)


def worker_names(cluster: Any) -> list[str]:
    """Celery node names (``name@host``) of a :class:`swarm_tasks.worker.cluster.LocalCluster`'s workers."""
    import socket

    return [f"{w.name}@{socket.gethostname()}" for w in cluster.workers]


def consumers(app: Any, names: list[str], *, add: bool, queue: str = "agents") -> None:
    """Start or stop the named workers consuming ``queue`` (Celery remote control), and wait for them."""
    call = app.control.add_consumer if add else app.control.cancel_consumer
    replies = call(queue, destination=names, reply=True, timeout=10)
    if len(replies or []) != len(names):
        raise RuntimeError(f"{'add' if add else 'cancel'}_consumer answered by {replies!r}, expected {names}")


def tasks_started(app: Any, names: list[str], task: str) -> int:
    """How many ``task`` the named workers have started since they came up (Celery ``inspect stats``)."""
    stats = app.control.inspect(destination=names, timeout=5.0, limit=len(names)).stats() or {}
    if len(stats) != len(names):
        raise RuntimeError(f"inspect stats answered by {sorted(stats)}, expected {names}")
    return sum(int(s.get("total", {}).get(task, 0)) for s in stats.values())
