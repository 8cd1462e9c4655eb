"""Registry and discovery on a real Redis: facets, heartbeats, and expiry with nobody cleaning up."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from coordination.errors import InvalidIdentifier, InvalidRecord, NotFound
from coordination.registry import Kind, Registry
from coordination.run import RunState, global_registry
from coordination.settings import CoordinationSettings
from tests.coordination.conftest import Clock

MakeRun = Callable[..., RunState]


def _ids(entries: list) -> list[str]:  # type: ignore[type-arg]
    return [e.id for e in entries]


@pytest.fixture
def registry(make_run: MakeRun, clock: Clock) -> Registry:
    return clock.install(make_run()).registry


@pytest.fixture
def populated(registry: Registry) -> Registry:
    registry.register("coder-1", role="coder", node="n1", capabilities=["python", "git"])
    registry.register("coder-2", role="coder", node="n2", capabilities=["python"])
    registry.register("rev-1", role="reviewer", node="n1", capabilities=["git"])
    registry.register("node-1", role="host", node="n1", kind=Kind.NODE)
    registry.register("wk-1", role="celery", node="n2", kind=Kind.WORKER, capabilities=["gpu"])
    return registry


def test_register_and_get(registry: Registry, clock: Clock) -> None:
    entry = registry.register("a1", role="coder", node="n1", capabilities=["python"], meta={"pid": "7"},
                              ttl_s=20)
    assert entry.registered_at == entry.heartbeat_at == clock.t
    assert entry.expires_at == clock.t + 20
    assert registry.get("a1") == entry
    assert registry.get("nobody") is None


def test_discover_by_each_facet(populated: Registry) -> None:
    assert _ids(populated.discover()) == ["coder-1", "coder-2", "node-1", "rev-1", "wk-1"]
    assert _ids(populated.discover(role="coder")) == ["coder-1", "coder-2"]
    assert _ids(populated.discover(node="n1")) == ["coder-1", "node-1", "rev-1"]
    assert _ids(populated.discover(capability="git")) == ["coder-1", "rev-1"]
    assert _ids(populated.discover(kind=Kind.NODE)) == ["node-1"]
    assert _ids(populated.discover(kind=Kind.WORKER)) == ["wk-1"]
    assert _ids(populated.discover(kind=Kind.AGENT)) == ["coder-1", "coder-2", "rev-1"]
    assert populated.discover(role="nobody") == []
    assert populated.discover(capability="cobol") == []


def test_discover_by_combinations(populated: Registry) -> None:
    assert _ids(populated.discover(role="coder", node="n1")) == ["coder-1"]
    assert _ids(populated.discover(role="coder", capability="git")) == ["coder-1"]
    assert _ids(populated.discover(node="n1", capability="git")) == ["coder-1", "rev-1"]
    assert _ids(populated.discover(node="n2", kind=Kind.WORKER)) == ["wk-1"]
    assert _ids(populated.discover(capability="python", kind=Kind.AGENT, node="n2")) == ["coder-2"]
    assert populated.discover(role="reviewer", node="n2") == []
    assert populated.discover(role="coder", kind=Kind.NODE) == []


def test_reregister_replaces_facets(populated: Registry) -> None:
    populated.register("coder-1", role="reviewer", node="n3", capabilities=["rust"])
    assert _ids(populated.discover(role="coder")) == ["coder-2"]
    assert _ids(populated.discover(role="reviewer")) == ["coder-1", "rev-1"]
    assert _ids(populated.discover(capability="git")) == ["rev-1"]
    assert _ids(populated.discover(node="n3", capability="rust")) == ["coder-1"]


def test_expired_entries_vanish_from_every_view(registry: Registry, clock: Clock) -> None:
    registry.register("short", role="coder", node="n1", ttl_s=5)
    registry.register("long", role="coder", node="n1", ttl_s=60)
    clock.advance(6)
    assert registry.get("short") is None
    assert _ids(registry.discover(role="coder")) == ["long"]
    assert _ids(registry.discover()) == ["long"]
    with pytest.raises(NotFound):
        registry.heartbeat("short")


def test_heartbeat_extends(registry: Registry, clock: Clock) -> None:
    registry.register("a1", role="coder", node="n1", ttl_s=10)
    clock.advance(8)
    beat = registry.heartbeat("a1")
    assert beat.heartbeat_at == clock.t and beat.expires_at == clock.t + 10
    clock.advance(8)  # past the first TTL, within the extended one
    assert registry.get("a1") == beat
    assert _ids(registry.discover(role="coder")) == ["a1"]
    # The Redis key's own TTL was renewed too.
    assert registry.redis.pttl(registry.keys.registration("a1")) > 0


def test_heartbeat_unknown_raises_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.heartbeat("ghost")


def test_deregister(populated: Registry) -> None:
    populated.deregister("coder-1")
    assert populated.get("coder-1") is None
    assert _ids(populated.discover(role="coder")) == ["coder-2"]
    assert _ids(populated.discover(capability="git")) == ["rev-1"]
    populated.deregister("coder-1")  # twice is fine
    populated.deregister("never-was")
    assert populated.register("coder-1", role="coder", node="n1").id == "coder-1"
    assert _ids(populated.discover(role="coder")) == ["coder-1", "coder-2"]


def test_registration_events(populated: Registry, make_run: MakeRun) -> None:
    populated.deregister("rev-1")
    assert populated.events is not None
    types = [(e.type, e.subject) for e in populated.events.read()]
    assert types[:5] == [("agent.registered", "coder-1"), ("agent.registered", "coder-2"),
                         ("agent.registered", "rev-1"), ("node.registered", "node-1"),
                         ("worker.registered", "wk-1")]
    assert types[5:] == [("agent.gone", "rev-1")]


def test_registrations_disappear_after_ttl_without_cleanup(make_run: MakeRun, redis_client: redis.Redis) -> None:
    """Real time: the Redis key expires by itself and discover stops listing it; nobody deregisters."""
    registry = make_run().registry
    ttl_s = 2.0
    registry.register("stays", role="coder", node="n1", ttl_s=120)
    registered = time.monotonic()
    registry.register("dies", role="coder", node="n1", ttl_s=ttl_s)
    seen = _ids(registry.discover(role="coder"))
    if time.monotonic() - registered < ttl_s:  # unless the loaded machine stalled us past the TTL already
        assert seen == ["dies", "stays"]
    key = registry.keys.registration("dies")
    deadline = time.monotonic() + 30  # generous: only the outcome is asserted, not how fast
    while redis_client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not redis_client.exists(key)
    assert registry.get("dies") is None
    assert _ids(registry.discover(role="coder")) == ["stays"]
    assert _ids(registry.discover(node="n1")) == ["stays"]
    # The dead entry also left the index it was found through (discover trims as it reads).
    index = registry.keys.registry_index("role", "coder")
    assert {m.decode() for m in redis_client.zrange(index, 0, -1)} == {"stays"}


def test_global_registry_is_shared_across_runs(redis_url: str, redis_client: redis.Redis) -> None:
    settings = CoordinationSettings(redis_url=redis_url)
    one = global_registry(redis_client, settings)
    two = global_registry(redis_client, settings)
    one.register("node-a", role="host", node="node-a", kind=Kind.NODE)
    assert _ids(two.discover(kind=Kind.NODE)) == ["node-a"]


def test_runs_have_separate_registries(make_run: MakeRun) -> None:
    one, two = make_run(), make_run()
    one.registry.register("a1", role="coder", node="n1")
    assert two.registry.discover() == []


@pytest.mark.parametrize("field", ["ident", "role", "node", "capability"])
def test_bad_identifiers_are_refused(registry: Registry, field: str) -> None:
    args: dict[str, object] = {"ident": "a1", "role": "coder", "node": "n1", "capabilities": ["python"]}
    if field == "capability":
        args["capabilities"] = ["has space"]
    else:
        args[field] = "bad{id}"
    ident = args.pop("ident")
    with pytest.raises(InvalidIdentifier):
        registry.register(ident, **args)  # type: ignore[arg-type]
    assert registry.discover() == []


def test_bad_ttl_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidRecord):
        registry.register("a1", role="coder", node="n1", ttl_s=0)
