"""Registry and discovery: agents and nodes announce themselves and heartbeat with a TTL.

A registration is a versioned record that expires by itself (PEXPIRE) unless its owner heartbeats;
sorted-set indexes per role, node and capability are scored by expiry, so ``discover`` reads only
live entries and a dead agent disappears without anyone cleaning up after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from coordination import codec, store
from coordination.errors import NotFound, VersionConflict
from coordination.events import EventLog
from coordination.keys import Keys, check_id
from coordination.store import RecordStore, Versioned, Write


class Kind(StrEnum):
    """What registered."""

    AGENT = "agent"
    NODE = "node"
    WORKER = "worker"


class Registration(BaseModel):
    """A live participant of the swarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Kind = Kind.AGENT
    role: str
    node: str
    capabilities: tuple[str, ...] = ()
    meta: dict[str, str] = Field(default_factory=dict)
    registered_at: float = 0.0
    heartbeat_at: float = 0.0
    ttl_s: float = Field(default=30.0, gt=0)

    @field_validator("id", "role", "node")
    @classmethod
    def _ident(cls, value: str) -> str:
        return check_id(value)

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_id(c, "capability") for c in value)

    @property
    def expires_at(self) -> float:
        return self.heartbeat_at + self.ttl_s


class Registry:
    """Registrations of one scope (a run for agents, the global scope for nodes and workers)."""

    def __init__(self, records: RecordStore, keys: Keys, events: EventLog | None = None) -> None:
        self.records = records
        self.redis = records.redis
        self.keys = keys
        self.events = events

    def register(self, ident: str, *, role: str, node: str, kind: Kind = Kind.AGENT,
                 capabilities: Sequence[str] = (), meta: dict[str, str] | None = None,
                 ttl_s: float = 30.0) -> Registration:
        """Announce (or re-announce) ``ident``; it stays discoverable for ``ttl_s`` after each heartbeat."""
        now = self.records.now()
        entry = codec.build(Registration, id=ident, kind=kind, role=role, node=node,
                            capabilities=tuple(capabilities), meta=meta or {}, registered_at=now,
                            heartbeat_at=now, ttl_s=ttl_s)
        self._put(entry, new=True)
        return entry

    def heartbeat(self, ident: str) -> Registration:
        """Extend a registration by its TTL; :class:`NotFound` if it already expired."""
        current = self.get(ident)
        if current is None:
            raise NotFound(f"{ident!r} is not registered (expired or never registered)")
        entry = current.model_copy(update={"heartbeat_at": self.records.now()})
        self._put(entry, new=False)
        return entry

    def deregister(self, ident: str) -> None:
        """Remove a registration now (a clean exit)."""
        current = self.records.get(self.keys.registration(ident))
        if current is None:
            return
        entry = codec.decode(Registration, current.data, key=current.key)
        ops = [store.zrem(k, entry.id) for k in self._index_keys(entry)]
        if self.events is not None:
            ops.append(self.events.op(f"{entry.kind.value}.gone", entry.id, {"role": entry.role,
                                                                           "node": entry.node}))
        # A heartbeat may race us; the entry then still expires by itself after its TTL.
        with contextlib.suppress(VersionConflict):
            self.records.delete_if_version(current.key, current.version, ops=ops)

    def get(self, ident: str) -> Registration | None:
        rec = self.records.get(self.keys.registration(ident))
        if rec is None:
            return None
        entry = codec.decode(Registration, rec.data, key=rec.key)
        return entry if entry.expires_at > self.records.now() else None

    def discover(self, *, role: str | None = None, node: str | None = None,
                 capability: str | None = None, kind: Kind | None = None, prune: bool = True) -> list[Registration]:
        """Live registrations matching every given facet, sorted by id. ``prune=False`` only reads (for a
        read-only user, such as the dashboard's: the expired entries are skipped either way)."""
        facets = [(f, v) for f, v in (("role", role), ("node", node), ("cap", capability),
                                      ("kind", kind.value if kind else None)) if v is not None]
        index = self.keys.registry_index(*facets[0]) if facets else self.keys.registry_index("all", "all")
        now = self.records.now()
        pipe = self.redis.pipeline(transaction=False)
        if prune:
            pipe.zremrangebyscore(index, "-inf", now)  # dead entries leave the index on the next read
        pipe.zrangebyscore(index, now, "+inf")
        ids = sorted(m.decode() for m in pipe.execute()[-1])
        recs = self.records.get_many([self.keys.registration(i) for i in ids])
        found: list[Registration] = []
        for rec in recs:
            if rec is None:
                continue
            entry = codec.decode(Registration, rec.data, key=rec.key)
            if entry.expires_at <= now:
                continue
            if (role and entry.role != role) or (node and entry.node != node):
                continue
            if (capability and capability not in entry.capabilities) or (kind and entry.kind != kind):
                continue
            found.append(entry)
        return found

    def _index_keys(self, entry: Registration) -> list[str]:
        k = self.keys
        return [k.registry_index("all", "all"), k.registry_index("role", entry.role),
                k.registry_index("node", entry.node), k.registry_index("kind", entry.kind.value),
                *(k.registry_index("cap", c) for c in entry.capabilities)]

    def _put(self, entry: Registration, *, new: bool) -> None:
        key = self.keys.registration(entry.id)
        ttl_ms = max(1, int(entry.ttl_s * 1000))
        ops = [store.zadd(k, entry.expires_at, entry.id) for k in self._index_keys(entry)]
        ops.append(store.pexpire(key, ttl_ms))
        if new and self.events is not None:
            ops.append(self.events.op(f"{entry.kind.value}.registered", entry.id, {
                "role": entry.role, "node": entry.node, "capabilities": list(entry.capabilities)}))
        data = codec.encode(entry, limit=self.records.max_record_bytes, what=f"registration {entry.id}")

        def fn(_current: Versioned | None) -> Write:
            return Write(data, ops=ops)

        self.records.update(key, fn)
