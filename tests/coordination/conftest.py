"""Fixtures of the coordination suite: a controllable clock and a cheap way to start OS processes."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from coordination.run import RunState


@dataclass
class Clock:
    """Stands in for the Redis server clock so lease expiry is driven by the test, not by sleeping."""

    t: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def install(self, run: RunState) -> RunState:
        # RecordStore.now is the single source of time for the board and the registry.
        run.records.now = self.now  # type: ignore[method-assign]
        return run


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def mp_context() -> Iterator[multiprocessing.context.BaseContext]:
    """A forkserver context that preloads the package, so each child starts in milliseconds.

    Children never inherit the test's sockets or fixtures: each builds its own client from a URL.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["redis", "pydantic", "coordination", "tests.coordination._workers"])
    yield ctx
