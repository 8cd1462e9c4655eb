"""Fixtures of the model-boundary tests: a guarded gateway with fast backoff, and mock servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from swarm_tasks.models.gateway import Backoff, ModelGateway
from swarm_tasks.models.mock_server import MockServer
from swarm_tasks.settings import SwarmSettings

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]
FAST = Backoff(base_s=0.001, cap_s=0.005, jitter="equal")


@pytest.fixture
def model_settings(tmp_path: Path) -> SwarmSettings:
    return SwarmSettings(model_guard="local-only", state_dir=tmp_path, model_retries=2)


@pytest.fixture
def make_gateway(model_settings: SwarmSettings) -> Callable[..., ModelGateway]:
    """A gateway on the test's settings, with overrides (``api_base="..."``, ``model_retries=0``...)."""
    def make(**overrides: object) -> ModelGateway:
        if isinstance(overrides.get("api_key"), str):
            overrides["api_key"] = SecretStr(str(overrides["api_key"]))
        settings = SwarmSettings.model_validate({**model_settings.model_dump(), **overrides})  # validated
        return ModelGateway(settings, backoff=FAST)
    return make


@pytest.fixture
def gateway(make_gateway: Callable[..., ModelGateway]) -> ModelGateway:
    return make_gateway()


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    """A quick server with the default policy (text, then finish), shared by a module's tests."""
    with MockServer() as server:
        yield server


@pytest.fixture(scope="session")
def run() -> Iterator[Run[Any]]:
    """Run a coroutine on one event loop kept for the session, as a worker process keeps one: litellm
    caches its HTTP clients per loop, so a fresh loop per test would be unlike production."""
    from swarm_tasks.worker.runtime import _cancel_pending

    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.run_until_complete(_cancel_pending())  # litellm's logging worker too, as a worker's close does
    loop.close()
