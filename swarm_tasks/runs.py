"""Runs: one swarm job (a review, a build, an ad-hoc agent) with its limits, status and index.

With ``SWARM_TASK_SIGNING_KEY`` a run's submitter signs what the run is (:data:`SIGNED_FIELDS`: its
kind, job spec, limits and models, which workers act on) and :meth:`RunStore.get` refuses a record
that does not match (:class:`RecordSignatureError`); status, result and outcome change later and are
not signed."""

from __future__ import annotations

import contextlib

import redis
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from coordination import codec
from coordination.errors import AlreadyExists
from coordination.events import EventLog
from coordination.ids import new_id
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore, Versioned, Write
from swarm_tasks.errors import RunNotFound
from swarm_tasks.outcome import RunOutcome, RunStatus
from swarm_tasks.signing import RecordSigner

RUN_ROOT = "run-root"  # pseudo-parent of every agent of a run: the run is idle when it has no open child
SIGNED_FIELDS = frozenset({"id", "kind", "title", "spec", "limits", "models", "created_at"})


class RunLimits(BaseModel):
    """Hard limits of one run."""

    model_config = ConfigDict(extra="forbid")

    max_agents: int = Field(default=20_000, ge=1, description="Agents the run may start in total.")
    max_concurrent_agents: int = Field(default=6_000, ge=1, description="Agents alive at once.")
    max_cost_usd: float = Field(default=100.0, gt=0, description="Dollars the run may spend.")
    role_max_cost_usd: dict[str, float] = Field(default_factory=dict, description="Dollars per role.")
    max_depth: int = Field(default=8, ge=0, description="How deep sub-agents may nest.")


class RunRecord(BaseModel):
    """A run as stored in Redis."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    status: RunStatus = RunStatus.RUNNING
    title: str = ""
    spec: JsonValue = None
    limits: RunLimits = Field(default_factory=RunLimits)
    models: dict[str, str] = Field(default_factory=dict)
    created_at: float
    ended_at: float | None = None
    reason: str | None = None
    result: JsonValue = None
    outcome: RunOutcome | None = None  # set when the run ends: counts and reasons behind its status
    signature: str | None = None  # HMAC of SIGNED_FIELDS by the submitter, when the deployment signs

    def signed_part(self) -> JsonValue:
        return self.model_dump(mode="json", include=set(SIGNED_FIELDS))

    @property
    def elapsed_s(self) -> float | None:
        """Seconds from creation to its end (None while it runs: see :meth:`RunStore.elapsed_s`)."""
        return None if self.ended_at is None else max(0.0, self.ended_at - self.created_at)


class RunStore:
    """Create, find and end runs; the index of runs lives in the global scope."""

    def __init__(self, client: redis.Redis, records: RecordStore, settings: CoordinationSettings) -> None:
        self.redis = client
        self.records = records
        self.settings = settings
        self.prefix = settings.key_prefix
        self.index_key = Keys(self.prefix, GLOBAL_SCOPE).runs_index()
        self.signer = RecordSigner.from_settings(settings)

    def keys(self, run_id: str) -> Keys:
        return Keys(self.prefix, run_id)

    def create(self, kind: str, *, title: str = "", spec: JsonValue = None, limits: RunLimits | None = None,
               models: dict[str, str] | None = None, run_id: str | None = None) -> RunRecord:
        run = codec.build(RunRecord, id=run_id or new_id(kind[:8] or "run"), kind=kind, title=title, spec=spec,
                          limits=limits or RunLimits(), models=models or {}, created_at=self.records.now())
        if self.signer is not None:
            run = run.model_copy(update={"signature": self.signer.sign("run", run.id, run.signed_part())})
        keys = self.keys(run.id)
        # The index (global hash tag) and the run (its own tag) are in different cluster slots, so one
        # script cannot write both. Index first: a crash in between leaves an index entry without a run,
        # which list() skips; the other order could leave a run no one lists (nor sweeps).
        self.ensure_new(run.id)  # so a taken id does not move its run in the index
        self.redis.zadd(self.index_key, {run.id: run.created_at})
        try:
            self.records.create(keys.run_record(), codec.encode(run, limit=self.records.max_record_bytes))
        except AlreadyExists:
            raise  # the index entry is the existing run's
        except BaseException:
            with contextlib.suppress(redis.RedisError):
                self.redis.zrem(self.index_key, run.id)
            raise
        return run

    def get(self, run_id: str) -> RunRecord:
        run, _ = self.get_versioned(run_id)
        return run

    def get_versioned(self, run_id: str) -> tuple[RunRecord, int]:
        """The run and its version; :class:`RecordSignatureError` if the deployment signs and it does not
        match its signature (nothing may act on it)."""
        key = self.keys(run_id).run_record()
        rec = self.records.get(key)
        if rec is None:
            raise RunNotFound(f"no run {run_id!r} (list runs with `swarm status`)")
        run = codec.decode(RunRecord, rec.data, key=key)
        if self.signer is not None:
            self.signer.verify("run", run_id, run.signed_part(), run.signature)
        return run, rec.version

    def exists(self, run_id: str) -> bool:
        return self.records.get(self.keys(run_id).run_record()) is not None

    def list(self, limit: int = 50) -> list[RunRecord]:
        """Newest runs first."""
        ids = [m.decode() for m in self.redis.zrevrange(self.index_key, 0, limit - 1)]
        recs = self.records.get_many([self.keys(i).run_record() for i in ids])
        return [codec.decode(RunRecord, r.data, key=r.key) for r in recs if r is not None]

    def transition(self, run_id: str, status: RunStatus, *, reason: str | None = None,
                   result: JsonValue = None, only_from: tuple[RunStatus, ...] | None = None,
                   outcome: RunOutcome | None = None) -> RunRecord | None:
        """Move a run to ``status`` (by compare-and-set); None if it was not in ``only_from``.

        An ending without an ``outcome`` (a cancel, a crash of the workflow) gets one saying so."""
        changed: list[RunRecord] = []
        key = self.keys(run_id).run_record()

        def fn(current: Versioned | None) -> Write | None:
            if current is None:
                raise RunNotFound(f"no run {run_id!r}")
            run = codec.decode(RunRecord, current.data, key=key)
            if only_from is not None and run.status not in only_from:
                return None
            if run.status.terminal:
                return None
            update: dict[str, object] = {"status": status, "reason": reason or run.reason}
            if result is not None:
                update["result"] = result
            if status.terminal:
                update["ended_at"] = self.records.now()
                update["outcome"] = (outcome or RunOutcome(status=status)).model_copy(
                    update={"status": status, "reason": update["reason"]})
            new = run.model_copy(update=update)
            changed[:] = [new]
            events = EventLog(self.redis, self.keys(run_id), maxlen=self.settings.event_stream_maxlen)
            return Write(codec.encode(new), ops=[events.op(f"run.{status.value}", run_id, {"reason": reason})])

        self.records.update(key, fn)
        return changed[0] if changed else None

    def reopen(self, run_id: str, why: str) -> RunRecord | None:
        """An ended run running again (``swarm retry``), by compare-and-set: its end (status, reason,
        outcome, result) cleared, to be decided again when it next goes idle. None if it had not ended (a
        run that is finalizing is left to finish first)."""
        changed: list[RunRecord] = []
        key = self.keys(run_id).run_record()

        def fn(current: Versioned | None) -> Write | None:
            if current is None:
                raise RunNotFound(f"no run {run_id!r}")
            run = codec.decode(RunRecord, current.data, key=key)
            if not run.status.terminal:
                return None
            new = run.model_copy(update={"status": RunStatus.RUNNING, "reason": None, "ended_at": None,
                                         "outcome": None, "result": None})
            changed[:] = [new]
            events = EventLog(self.redis, self.keys(run_id), maxlen=self.settings.event_stream_maxlen)
            return Write(codec.encode(new), ops=[events.op("run.running", run_id, {
                "reason": why, "reopened_from": run.status.value})])

        self.records.update(key, fn)
        return changed[0] if changed else None

    def elapsed_s(self, run: RunRecord) -> float:
        """Seconds the run has taken so far (to its end if it ended), by the store's clock."""
        return run.elapsed_s if run.elapsed_s is not None else max(0.0, self.records.now() - run.created_at)

    def ensure_new(self, run_id: str) -> None:
        if self.exists(run_id):
            raise AlreadyExists(self.keys(run_id).run_record(), 0, 1)


# RunStatus and RunOutcome are defined in swarm_tasks.outcome (a leaf) and read from here as well
__all__ = ["RUN_ROOT", "SIGNED_FIELDS", "RunLimits", "RunOutcome", "RunRecord", "RunStatus", "RunStore"]
