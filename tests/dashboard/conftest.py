"""Fixtures of the dashboard tests: the in-process runtime's fixtures, a staged run, a live server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.dashboard import create_app
from swarm_tasks.runs import RunRecord
from swarm_tasks.settings import SwarmSettings
from tests.runtime.conftest import Local, limits, local, make_spec, swarm_settings  # noqa: F401

SCRIPTS = "scripted/py:tests.dashboard.scripts"


def tree_specs() -> list[AgentSpec]:
    """planner -> 3 leads -> 4 workers each (see tests/dashboard/scripts.py)."""
    return [
        AgentSpec(name="planner", role="planner", model=f"{SCRIPTS}:planner", instructions="Plan the review.",
                  tools=("finish", "spawn_agents"), subagents=("lead",)),
        AgentSpec(name="lead", role="reviewer", model=f"{SCRIPTS}:lead", instructions="Lead one area.",
                  tools=("finish", "spawn_agents"), subagents=("worker",)),
        AgentSpec(name="worker", role="worker", model=f"{SCRIPTS}:worker", instructions="Inspect one module.",
                  tools=("finish", "list_files")),
    ]


@dataclass
class StagedRun:
    """A run whose steps are run one at a time by the test, so it grows while a page watches it."""

    local: Local
    run: RunRecord

    def step(self) -> bool:
        """Run this run's oldest queued step; False when none is queued."""
        steps = self.local.scheduler.steps
        mine = next((s for s in steps if s[0] == self.run.id), None)
        if mine is None:
            return False
        steps.remove(mine)
        self.local.runtime.run_step(*mine)
        return True

    def steps(self, n: int) -> int:
        return sum(1 for _ in range(n) if self.step())

    def drain(self) -> None:
        self.local.drain()

    def agents(self):
        return self.local.agents(self.run.id)


@pytest.fixture
def staged(local: Local) -> StagedRun:  # noqa: F811
    run = local.start(tree_specs(), [ChildRequest("planner", "review the project", key="root")],
                      title="dashboard demo")
    return StagedRun(local, run)


@pytest.fixture
def dash_client(local: Local) -> SwarmClient:  # noqa: F811
    """A read-only client, as `swarm dashboard` has (no scheduler)."""
    return SwarmClient.create(local.settings, local.runtime.services.client)


class ServerThread:
    """The dashboard on a free loopback port, served from a thread with its own event loop."""

    def __init__(self, app_factory: Callable[[], web.Application]) -> None:
        self.app_factory = app_factory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dashboard", daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app_factory(), shutdown_timeout=2.0, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def dashboard(swarm_settings: SwarmSettings, dash_client: SwarmClient) -> Iterator[ServerThread]:  # noqa: F811
    server = ServerThread(lambda: create_app(swarm_settings, dash_client)).start()
    yield server
    server.stop()
