"""Bodies of the OS processes the coordination tests start. Each builds its own client from a URL.

Kept out of the test modules so a forkserver child imports only this (and the package), not pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import redis

from coordination.connection import make_client
from coordination.errors import CoordinationError, LeaseLost, VersionConflict
from coordination.mailbox import Mailboxes
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore, RetryPolicy, Versioned, Write
from tests.history import HistoryRecorder, OpKind, Outcome

# Plenty of retries: on a loaded 2-core machine 16 writers collide a lot, and a give-up is not what
# these tests measure (every increment must land).
PATIENT = RetryPolicy(max_attempts=100_000, base_s=0.0005, cap_s=0.02)


def report(out: Any, index: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` and put ``(index, "ok", result)`` or ``(index, "error", traceback)`` on ``out``."""
    try:
        out.put((index, "ok", fn(*args)))
    except BaseException:
        out.put((index, "error", traceback.format_exc()))


def _client(url: str) -> redis.Redis:
    # As the product connects: one server or a cluster (redis+cluster://), by the URL.
    return make_client(_settings(url, redis_socket_timeout_s=60), url)


def _settings(url: str, **kw: Any) -> CoordinationSettings:
    return CoordinationSettings(redis_url=url, cas_max_attempts=100_000, cas_backoff_base_s=0.0005,
                                cas_backoff_cap_s=0.02, **kw)


def _increment(current: Versioned | None) -> Write:
    assert current is not None
    return Write(json.dumps({"n": json.loads(current.data)["n"] + 1}).encode())


def increment(url: str, key: str, times: int, barrier: Barrier) -> list[int]:
    """``times`` read-modify-write increments of one counter; the versions our writes produced."""
    client = _client(url)
    store = RecordStore(client, retry=PATIENT)
    barrier.wait(timeout=120)
    versions: list[int] = []
    for _ in range(times):
        version = store.update(key, _increment)
        assert version is not None
        versions.append(version)
    client.close()
    return versions


def claim_all(url: str, run_id: str, role: str, claimant: str, barrier: Barrier) -> list[str]:
    """Claim and complete until the board has nothing left; the ids this claimant completed."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url, lease_s=600))
    barrier.wait(timeout=120)
    done: list[str] = []
    while (lease := run.board.claim(claimant, role)) is not None:
        run.board.complete(lease, {"by": claimant})
        done.append(lease.task_id)
    client.close()
    return done


def hold_then_complete(url: str, run_id: str, role: str, claimant: str, lease_s: float,
                       out: Any, go: Event) -> None:
    """Claim, report the lease, stop heartbeating; when told, try to complete and report how it went."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url))
    lease = run.board.claim(claimant, role, lease_s=lease_s)
    assert lease is not None
    out.put(("claimed", claimant, lease.task_id, lease.version, lease.expires_at))
    go.wait(timeout=120)
    try:
        run.board.complete(lease, {"by": claimant})
        out.put(("completed", claimant, lease.task_id))
    except LeaseLost as lost:
        out.put(("lease_lost", claimant, lost.expected, lost.actual))
    client.close()


def sweeper(url: str, run_id: str, interval_s: float, stop: Event) -> None:
    """The lease sweeper loop, as a deployment runs it."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url))
    while not stop.is_set():
        run.board.sweep()
        stop.wait(interval_s)
    client.close()


def claim_when_free(url: str, run_id: str, role: str, claimant: str, out: Any, go: Event) -> None:
    """Poll until a task is claimable (a sweeper freed it); report it, complete it when told."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url))
    deadline = time.monotonic() + 120
    lease = None
    while lease is None and time.monotonic() < deadline:
        lease = run.board.claim(claimant, role, lease_s=600)
        if lease is None:
            time.sleep(0.02)
    assert lease is not None
    out.put(("claimed", claimant, lease.task_id, lease.version, lease.task.updated_at))
    go.wait(timeout=120)
    run.board.complete(lease, {"by": claimant})
    out.put(("completed", claimant, lease.task_id))
    client.close()


def read_and_hang(url: str, run_id: str, agent: str, consumer: str, out: Any) -> None:
    """Read a mailbox without acknowledging, report what was read, then wait to be killed."""
    client = _client(url)
    boxes = Mailboxes(client, RunState(client, run_id, _settings(url)).keys)
    got = boxes.receive(agent, consumer=consumer, timeout_s=30)
    out.put([(d.entry_id, d.message.id, d.message.body) for d in got])
    while True:  # never acks: the test SIGKILLs us
        time.sleep(1)


def answer_requests(url: str, run_id: str, agent: str, how_many: int) -> None:
    """Serve ``how_many`` requests of ``agent``'s mailbox, replying with the body upper-cased."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url))
    served = 0
    deadline = time.monotonic() + 120
    while served < how_many and time.monotonic() < deadline:
        for delivery in run.mailboxes.receive(agent, timeout_s=1):
            run.mailboxes.reply(delivery.message, agent, delivery.message.body.upper(),
                                headers={"pid": str(os.getpid())})
            run.mailboxes.ack(agent, delivery)
            served += 1
    client.close()


def revise_progress(url: str, run_id: str, writer: str, times: int, barrier: Barrier) -> None:
    """Add ``times`` sections to the run's progress document, each by compare-and-set."""
    client = _client(url)
    run = RunState(client, run_id, _settings(url))
    barrier.wait(timeout=120)
    for i in range(times):
        def add(doc: Any, i: int = i) -> Any:
            doc.sections[f"{writer}-{i}"] = "done"
            return doc
        run.progress.update(add, author=writer)
    client.close()


def start_embedded_and_wait(out: Any) -> None:
    """Own an embedded server, report its pid, then wait to be killed (SIGKILL: no cleanup runs)."""
    from coordination.embedded import EmbeddedRedis

    server = EmbeddedRedis().start()
    assert server.process is not None
    out.put((server.process.pid, server.port))
    signal.pause()


def run_in_processes(ctx: Any, fn: Callable[..., Any], arg_lists: list[tuple[Any, ...]],
                     timeout_s: float = 240.0) -> list[Any]:
    """Run ``fn`` once per argument tuple, each in its own OS process; their results in order.

    Fails (after killing every child) if one raises or they do not all finish within ``timeout_s``.
    """
    out = ctx.Queue()
    procs = [ctx.Process(target=report, args=(out, i, fn, *args), daemon=True)
             for i, args in enumerate(arg_lists)]
    for proc in procs:
        proc.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(results) + len(errors) < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(results)} of {len(procs)} processes finished in {timeout_s}s")
            try:
                index, status, value = out.get(timeout=min(left, 1.0))
            except Exception:  # queue.Empty: check nobody died without reporting
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and out.empty():
                    raise AssertionError(f"process exited with {dead[0].exitcode} without reporting") from None
                continue
            if status == "ok":
                results[index] = value
            else:
                errors.append(value)
        if errors:
            raise AssertionError("child process failed:\n" + errors[0])
        for proc in procs:
            proc.join(timeout=30)
        return [results[i] for i in range(len(procs))]
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
        out.close()
        out.join_thread()


# -- histories over a failover (tests/coordination/test_cluster_failover.py) --------------------------

class RecordingStore(RecordStore):
    """A RecordStore that records every read and write of every record in a history, one register per
    key: a write whose reply was lost is unknown. Values are ``<status>:<digest>`` of the record."""

    LOST = (redis.ConnectionError, redis.TimeoutError)

    def __init__(self, client: redis.Redis, out: Path, process: str, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.out = out
        self.process = process
        self._recorders: dict[str, HistoryRecorder] = {}

    def recorder(self, key: str) -> HistoryRecorder:
        if key not in self._recorders:
            folder = self.out / key.replace(":", "_").replace("{", "").replace("}", "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "key").write_text(key)
            self._recorders[key] = HistoryRecorder(folder / f"{self.process}.jsonl", self.process)
        return self._recorders[key]

    @staticmethod
    def label(data: bytes) -> str:
        try:
            status = json.loads(data).get("status", "?")
        except ValueError:
            status = "?"
        return f"{status}:{hashlib.sha1(data).hexdigest()[:10]}"  # a label, not security

    def get(self, key: str) -> Versioned | None:
        rec = self.recorder(key)
        i = rec.invoke(OpKind.READ)
        try:
            got = super().get(key)
        except self.LOST:
            rec.complete(i, Outcome.UNKNOWN)
            raise
        rec.complete(i, Outcome.OK, value=None if got is None else self.label(got.data),
                     version=0 if got is None else got.version)
        return got

    def _write(self, key: str, expected: int, data: bytes, call: Callable[[], int], guards: Any) -> int:
        # A write refused by a guard says nothing of this register's version: the model has no such op.
        assert not guards, "RecordingStore records writes without guards only"
        rec = self.recorder(key)
        i = rec.invoke(OpKind.CAS, expected=expected, value=self.label(data))
        try:
            version = call()
        except VersionConflict as conflict:
            rec.complete(i, Outcome.FAIL, version=conflict.actual)
            raise
        except self.LOST:
            rec.complete(i, Outcome.UNKNOWN)
            raise
        rec.complete(i, Outcome.OK, value=self.label(data), version=version)
        return version

    def create(self, key: str, data: bytes, **kw: Any) -> int:
        return self._write(key, 0, data, lambda: super(RecordingStore, self).create(key, data, **kw),
                           kw.get("guards"))

    def cas(self, key: str, expected: int, data: bytes, **kw: Any) -> int:
        return self._write(key, expected, data, lambda: super(RecordingStore, self).cas(key, expected, data, **kw),
                           kw.get("guards"))

    def close(self) -> None:
        for rec in self._recorders.values():
            rec.close()


def failover_worker(url: str, run_id: str, out: str, name: str, work_s: float, stop: Event) -> dict[str, int]:
    """Claim and complete tasks (each takes ``work_s``), sweeping expired leases, until ``stop``; every
    record operation goes to a history. Errors of a failover (lost replies) are counted and ridden out."""
    client = _client(url)
    settings = _settings(url, lease_s=3.0)
    store = RecordingStore(client, Path(out), name, retry=PATIENT)
    run = RunState(client, run_id, settings, records=store)
    counts = {"completed": 0, "lease_lost": 0, "errors": 0}
    while not stop.is_set():
        try:
            run.board.sweep()
            lease = run.board.claim(name, "worker")
            if lease is None:
                stop.wait(0.05)
                continue
            time.sleep(work_s)
            run.board.complete(lease, {"by": name})
            counts["completed"] += 1
        except LeaseLost:
            counts["lease_lost"] += 1
        except (redis.RedisError, CoordinationError):
            counts["errors"] += 1  # a reply lost to the failover: recorded as unknown; go on
            stop.wait(0.1)
    store.close()
    client.close()
    return counts
