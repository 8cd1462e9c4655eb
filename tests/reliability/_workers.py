"""Bodies of the OS processes the reliability tests start: register clients and a connection killer.

Kept out of the test modules so a forkserver child imports only this (and the package), not pytest.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordination.connection import connect
from coordination.errors import VersionConflict
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore, RetryPolicy, Versioned
from tests.history import HistoryRecorder, OpKind, Outcome

# Replies lost to a dropped connection: the op may or may not have been applied.
LOST = (redis.ConnectionError, redis.TimeoutError)


def report(out: Any, name: str, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` and put ``(name, "ok", result)`` or ``(name, "error", traceback)`` on ``out``."""
    try:
        out.put((name, "ok", fn(*args)))
    except BaseException:
        out.put((name, "error", traceback.format_exc()))


class RecordedRegister:
    """One key of a RecordStore, every call recorded in a history."""

    def __init__(self, store: RecordStore, key: str, recorder: HistoryRecorder) -> None:
        self.store = store
        self.key = key
        self.history = recorder

    def read(self) -> Versioned | Outcome | None:
        """The record (None: absent), or ``Outcome.UNKNOWN`` if the reply was lost."""
        i = self.history.invoke(OpKind.READ)
        try:
            record = self.store.get(self.key)
        except LOST:
            self.history.complete(i, Outcome.UNKNOWN)
            return Outcome.UNKNOWN
        if record is None:
            self.history.complete(i, Outcome.OK, value=None, version=0)
        else:
            self.history.complete(i, Outcome.OK, value=record.data.decode(), version=record.version)
        return record

    def cas(self, expected: int, value: str) -> Outcome:
        """Compare-and-set (expected 0: create if absent)."""
        i = self.history.invoke(OpKind.CAS, expected=expected, value=value)
        try:
            if expected == 0:
                version = self.store.create(self.key, value.encode())
            else:
                version = self.store.cas(self.key, expected, value.encode())
        except VersionConflict as conflict:
            self.history.complete(i, Outcome.FAIL, version=conflict.actual)
            return Outcome.FAIL
        except LOST:
            self.history.complete(i, Outcome.UNKNOWN)
            return Outcome.UNKNOWN
        self.history.complete(i, Outcome.OK, value=value, version=version)
        return Outcome.OK


def settings_for(url: str) -> CoordinationSettings:
    return CoordinationSettings(redis_url=SecretStr(url), redis_socket_timeout_s=10.0, redis_connect_timeout_s=10.0)


def client_for(url: str, *, redis_retries: int) -> redis.Redis:
    """A client configured as the product configures it (``connect``), or with redis-py resending a
    command up to ``redis_retries`` times after a connection error."""
    client = connect(settings_for(url), check=False).client
    if redis_retries:
        # Not client.set_retry: redis-py 8.1 reaches into ConnectionPool internals a BlockingConnectionPool
        # lacks. The pool has no connection yet (check=False), so every one it opens gets this retry.
        client.get_connection_kwargs().update({"retry": Retry(NoBackoff(), redis_retries)})
    return client


def run_client(url: str, key: str, process: str, ops: int, seed: int, out: Path, barrier: Barrier,
               redis_retries: int = 0) -> dict[str, int]:
    """``ops`` steps: reads, CAS from a fresh read, and blind CAS naming a stale or guessed version."""
    rng = random.Random(seed)
    client = client_for(url, redis_retries=redis_retries)
    counts = dict.fromkeys(("ok", "fail", "unknown"), 0)
    with HistoryRecorder(out / f"{process}.jsonl", process) as recorder:
        register = RecordedRegister(RecordStore(client, retry=RetryPolicy(1)), key, recorder)
        last_seen = 0
        barrier.wait(timeout=60)
        for n in range(ops):
            roll = rng.random()
            value = f"{process}-{n}"
            if roll < 0.3:
                got = register.read()
                if isinstance(got, Versioned):
                    last_seen = got.version
                continue
            if roll < 0.8:
                got = register.read()
                if got is Outcome.UNKNOWN:
                    continue
                expected = got.version if isinstance(got, Versioned) else 0
            else:
                expected = max(0, last_seen - rng.randint(0, 2) + rng.randint(0, 1))
            outcome = register.cas(expected, value)
            counts[outcome.value] += 1
    client.close()
    return counts


def kill_connections(url: str, stop: Event, seed: int, pause_s: float) -> int:
    """Until ``stop``: every ~``pause_s`` kill one random client connection (now and then all of them)."""
    rng = random.Random(seed)
    admin = redis.Redis.from_url(url, socket_timeout=10)
    me = admin.client_id()
    kills = 0
    while not stop.is_set():
        time.sleep(rng.uniform(0, 2 * pause_s))
        try:
            if rng.random() < 0.1:
                kills += int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
                continue
            ids = [c["id"] for c in admin.client_list(_type="normal") if int(c["id"]) != me]
            if ids:
                kills += int(admin.execute_command("CLIENT", "KILL", "ID", rng.choice(ids)))
        except redis.ResponseError:
            pass  # the client went away by itself between LIST and KILL
    admin.close()
    return kills
