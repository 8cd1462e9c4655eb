"""An agent's durable state: one versioned record plus an append-only conversation log.

Every turn ends in one compare-and-set of the record that also appends the turn's messages to the
log and rolls usage up to the agent, its role and the run, all in the same Lua call. So a turn is
either entirely recorded or not at all, and a worker that lost the agent's lease cannot record one.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from enum import StrEnum

import redis
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from coordination import codec, store
from coordination.budget import RESERVED_FIELD
from coordination.errors import (
    InvalidTransition,
    LimitReached,
    MalformedRecord,
    NotFound,
    PayloadTooLarge,
    VersionConflict,
)
from coordination.keys import check_id
from coordination.run import RunState
from coordination.store import Limit, Op
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.outcome import ReasonClass
from swarm_tasks.runs import RUN_ROOT


class AgentStatus(StrEnum):
    """Where an agent is in its life."""

    QUEUED = "queued"  # waiting for a concurrency slot of its run
    READY = "ready"  # its next step is on a queue
    RUNNING = "running"  # a worker holds its turn (a lease until owner_expires_at)
    WAITING = "waiting"  # waiting for its sub-agents to end
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # a budget or loop guard stopped it
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (AgentStatus.DONE, AgentStatus.FAILED, AgentStatus.STOPPED, AgentStatus.CANCELLED)


class Usage(BaseModel):
    """What an agent (or a turn) consumed."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    tool_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     cost_usd=self.cost_usd + other.cost_usd, model_calls=self.model_calls + other.model_calls,
                     tool_calls=self.tool_calls + other.tool_calls)


class AgentState(BaseModel):
    """The record of one agent."""

    model_config = ConfigDict(extra="forbid")

    id: str
    run: str
    spec: str
    role: str
    kind: str = "llm"
    parent: str | None = None
    depth: int = 0
    input: JsonValue = None
    labels: dict[str, str] = Field(default_factory=dict)
    status: AgentStatus = AgentStatus.READY
    reason: str | None = None
    reason_class: ReasonClass | None = None  # why it failed or was stopped (see swarm_tasks.outcome)
    seq: int = 0  # step number: a step message names it, so duplicates and stale messages are dropped
    turn: int = 0  # model turns recorded
    owner: str | None = None
    owner_expires_at: float | None = None
    last_node: str | None = None  # the worker that ran the latest turn
    due_at: float | None = None  # when the sweeper must look at this agent if nothing else happened
    conv_gen: int = 0
    conv_len: int = 0
    usage: Usage = Field(default_factory=Usage)
    last_prompt_tokens: int = 0
    model: str | None = None
    result: JsonValue = None
    result_apart: int = 0  # >0: the result (this many bytes of JSON) is stored apart from the record, too large for it
    recent_calls: list[str] = Field(default_factory=list)
    inflight: list[str] = Field(default_factory=list)  # non-idempotent tool calls started, not recorded
    waiting_call: str | None = None
    waiting_on: list[str] = Field(default_factory=list)
    waiting_tasks: bool = False  # also waiting for the board tasks it filed (parent = its id) to end
    waiting_refused: list[str] = Field(default_factory=list)  # sub-agents of that spawn the run's caps refused
    compactions: int = 0
    turns_lost: int = 0
    model_failures: int = 0
    resent: int = 0
    attempts: int = 0  # times the current turn was started and not recorded (reset when one is recorded)
    retries: int = 0  # times it was started over after it ended without finishing (``swarm retry``)
    last_error: str | None = None  # why the latest unrecorded attempt failed, if it raised
    created_at: float
    started_at: float | None = None
    updated_at: float
    ended_at: float | None = None

    def evolve(self, **changes: object) -> AgentState:
        return self.model_copy(update=changes)


class AgentStore:
    """Agents of one run: spawn, load, save turns, promote queued agents."""

    def __init__(self, state: RunState, *, step_grace_s: float = 120.0) -> None:
        self.state = state
        self.records = state.records
        self.redis = state.redis
        self.keys = state.keys
        self.events = state.events
        self.step_grace_s = step_grace_s
        self.run_usage = self.keys.usage("run")

    # -- reading -------------------------------------------------------------------------------
    def load(self, agent_id: str) -> tuple[AgentState, int]:
        key = self.keys.agent(agent_id)
        rec = self.records.get(key)
        if rec is None:
            raise NotFound(f"no agent {agent_id!r} in run {self.keys.scope!r}")
        agent = codec.decode(AgentState, rec.data, key=key)
        return (self._with_results([agent])[0] if agent.result_apart else agent), rec.version

    def get(self, agent_id: str) -> AgentState:
        return self.load(agent_id)[0]

    def get_many(self, agent_ids: list[str]) -> list[AgentState | None]:
        recs = self.records.get_many([self.keys.agent(a) for a in agent_ids])
        agents = [None if r is None else codec.decode(AgentState, r.data, key=r.key) for r in recs]
        apart = [a for a in agents if a is not None and a.result_apart]
        if not apart:
            return agents
        loaded = {a.id: a for a in self._with_results(apart)}
        return [None if a is None else loaded.get(a.id, a) for a in agents]

    def _with_results(self, agents: list[AgentState]) -> list[AgentState]:
        """``agents`` with their results stored apart read back in (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for agent in agents:
            pipe.get(self.keys.agent_result(agent.id))
        out: list[AgentState] = []
        for agent, blob in zip(agents, pipe.execute(), strict=True):
            key = self.keys.agent_result(agent.id)
            if blob is None:
                raise MalformedRecord(key, f"agent {agent.id} has a result stored apart, but it is missing")
            try:
                result = json.loads(zlib.decompress(blob))
            except (zlib.error, ValueError, RecursionError) as exc:
                raise MalformedRecord(key, f"the result stored apart does not decode: {exc}") from None
            out.append(agent.evolve(result=result))
        return out

    def conversation(self, agent: AgentState) -> list[ChatMessage]:
        return self.conversation_and_usages(agent)[0]

    def ids(self, status: AgentStatus) -> list[str]:
        return sorted(m.decode() for m in self.redis.smembers(self.keys.agent_status(status)))

    def counts(self) -> dict[AgentStatus, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in AgentStatus:
            pipe.scard(self.keys.agent_status(status))
        return {s: int(n) for s, n in zip(AgentStatus, pipe.execute(), strict=True)}

    def children(self, agent_id: str) -> list[str]:
        return sorted(m.decode() for m in self.redis.smembers(self.keys.agent_children(agent_id)))

    def usage(self, facet: str = "run") -> dict[str, float]:
        return _tally(self.redis.hgetall(self.keys.usage(facet)))

    def usages(self, *facets: str) -> list[dict[str, float]]:
        """The tallies of ``facets`` (``run``, ``role:<name>``...), read in one round trip."""
        return self.conversation_and_usages(None, *facets)[1]

    def conversation_and_usages(self, agent: AgentState | None,
                                *facets: str) -> tuple[list[ChatMessage], list[dict[str, float]]]:
        """The agent's conversation (none without an agent) and the tallies of ``facets``, in one round
        trip: what a model turn reads before its budget check."""
        pipe = self.redis.pipeline(transaction=False)
        read = agent is not None and agent.conv_len > 0
        if read:
            assert agent is not None
            pipe.lrange(self.keys.conversation(agent.id, agent.conv_gen), 0, agent.conv_len - 1)
        for facet in facets:
            pipe.hgetall(self.keys.usage(facet))
        replies = pipe.execute()
        conversation = [json.loads(m) for m in replies.pop(0)] if read else []
        return conversation, [_tally(raw) for raw in replies]

    def due(self, now: float, limit: int = 200) -> list[str]:
        return [m.decode() for m in self.redis.zrangebyscore(self.keys.agent_deadlines(), "-inf", now,
                                                              start=0, num=limit)]

    def count_spent(self, usage: Usage, *, in_flight_done: int = 0) -> None:
        """Add a model reply's tokens and cost to the run's *spent* tally the moment it arrives, for the
        live views: the run's usage grows only when the turn is recorded (after its tool calls), and
        never counts a reply whose turn was lost and redone, though the provider billed it. Its prompt's
        ``in_flight_done`` tokens leave the in-flight count in the same round trip."""
        key = self.keys.usage("spent")
        pipe = self.redis.pipeline(transaction=False)
        if in_flight_done:
            pipe.hincrby(key, "prompt_tokens_in_flight", -in_flight_done)
        pipe.hincrby(key, "prompt_tokens", usage.prompt_tokens)
        pipe.hincrby(key, "completion_tokens", usage.completion_tokens)
        pipe.hincrby(key, "model_calls", usage.model_calls)
        if usage.cost_usd:
            pipe.hincrbyfloat(key, "cost_usd", usage.cost_usd)
        with contextlib.suppress(redis.RedisError):  # a display counter: never worth failing a turn
            pipe.execute()

    def count_in_flight(self, prompt_tokens: int) -> None:
        """Prompt tokens of model calls under way (negative: one came back), for the live views: a
        provider can take a minute to answer, and until the first replies every count would read 0."""
        with contextlib.suppress(redis.RedisError):  # a display counter: never worth failing a turn
            self.redis.hincrby(self.keys.usage("spent"), "prompt_tokens_in_flight", prompt_tokens)

    # -- spawning ------------------------------------------------------------------------------
    def spawn(self, agent: AgentState, messages: list[ChatMessage], *, max_agents: int,
              max_concurrent: int) -> AgentState:
        """Create the agent (idempotent by id): READY if its run has a free slot, else QUEUED.

        Raises :class:`LimitReached` when the run already started ``max_agents`` agents, and
        :class:`AlreadyExists` if an agent with this id exists (a re-run of the same spawn).
        """
        check_id(agent.id, "agent id")
        now = self.records.now()
        ready = agent.evolve(status=AgentStatus.READY, created_at=now, updated_at=now, conv_len=len(messages),
                             due_at=now + self.step_grace_s)
        total = Limit(self.run_usage, "agents_started", max_agents)
        try:
            self._create(ready, messages, [total, Limit(self.run_usage, "active", max_concurrent)])
            return ready
        except LimitReached as exc:
            if exc.field != "active":
                raise
        queued = ready.evolve(status=AgentStatus.QUEUED, due_at=None)
        self._create(queued, messages, [total])
        return queued

    def _create(self, agent: AgentState, messages: list[ChatMessage], limits: list[Limit]) -> None:
        k = self.keys
        ops = self._index_ops(None, agent)
        ops += [store.hincrby(k.usage("phases"), f"{phase_of(agent)}.started", 1),
                store.hincrby(self.run_usage, "agents_started", 1),
                store.hincrby(k.usage(f"role:{agent.role}"), "agents", 1),
                store.hincrby(k.children_open(), RUN_ROOT, 1)]
        if messages:
            ops.append(store.rpush(k.conversation(agent.id, agent.conv_gen), *(_dump(m) for m in messages)))
        if agent.parent:
            ops += [store.hincrby(k.children_open(), agent.parent, 1),
                    store.sadd(k.agent_children(agent.parent), agent.id)]
        self.records.create(k.agent(agent.id), self._encode(agent), ops=ops, limits=limits)

    def promote(self, max_concurrent: int, *, limit: int = 100) -> list[AgentState]:
        """Move queued agents to READY while the run has free slots; returns those promoted."""
        promoted: list[AgentState] = []
        for raw in self.redis.zrange(self.keys.agent_queue(), 0, limit - 1):
            agent_id = raw.decode()
            try:
                agent, version = self.load(agent_id)
            except NotFound:
                self.redis.zrem(self.keys.agent_queue(), agent_id)
                continue
            if agent.status is not AgentStatus.QUEUED:
                continue
            now = self.records.now()
            new = agent.evolve(status=AgentStatus.READY, due_at=now + self.step_grace_s, updated_at=now)
            try:
                self.save(agent, version, new, limits=[Limit(self.run_usage, "active", max_concurrent)])
            except LimitReached:
                break
            except VersionConflict:  # a concurrent promoter won this one; try the next
                continue
            promoted.append(new)
        return promoted

    def reopen(self, agent: AgentState, version: int, messages: list[ChatMessage], *,
               max_concurrent: int) -> AgentState:
        """Start an agent that ended without finishing over, in its run (``swarm retry``): same id, spec,
        input and place in the tree; a fresh conversation (``messages``), turn count and budget; READY if
        the run has a free slot, else QUEUED. The run's totals keep what its earlier attempt spent.
        :class:`VersionConflict` if it changed since ``version`` (someone else retried it)."""
        if not agent.status.terminal or agent.status is AgentStatus.DONE:
            raise ValueError(f"agent {agent.id} is {agent.status.value}: only an agent that did not finish is retried")
        now = self.records.now()
        fresh = agent.evolve(
            status=AgentStatus.READY, reason=None, reason_class=None, seq=agent.seq + 1, turn=0, owner=None,
            owner_expires_at=None, due_at=now + self.step_grace_s, usage=Usage(), last_prompt_tokens=0,
            result=None, result_apart=0, recent_calls=[], inflight=[], waiting_call=None, waiting_on=[],
            waiting_tasks=False, waiting_refused=[], compactions=0, turns_lost=0, model_failures=0, resent=0,
            attempts=0, last_error=None, retries=agent.retries + 1, started_at=None, ended_at=None, updated_at=now)
        k = self.keys
        # The counters its end moved, moved back: it is alive again, and open under its run and parent.
        ops = [store.hincrby(self.run_usage, f"agents_{agent.status.value}", -1),
               store.hincrby(k.usage(f"role:{agent.role}"), "agents_ended", -1),
               store.hincrby(k.usage("phases"), f"{phase_of(agent)}.ended", -1),
               store.hincrby(k.children_open(), RUN_ROOT, 1)]
        if agent.parent:
            ops.append(store.hincrby(k.children_open(), agent.parent, 1))
        try:
            _, saved = self.save(agent, version, fresh, rewrite=messages,
                                 extra_ops=[*ops, store.hincrby(self.run_usage, "active", 1)],
                                 limits=[Limit(self.run_usage, "active", max_concurrent)], reopening=True)
            return saved
        except LimitReached:
            queued = fresh.evolve(status=AgentStatus.QUEUED, due_at=None)
            return self.save(agent, version, queued, rewrite=messages, extra_ops=ops, reopening=True)[1]

    # -- saving --------------------------------------------------------------------------------
    def save(self, old: AgentState, version: int, new: AgentState, *, append: list[ChatMessage] | None = None,
             rewrite: list[ChatMessage] | None = None, usage: Usage | None = None, extra_ops: list[Op] | None = None,
             limits: list[Limit] | None = None, reopening: bool = False) -> tuple[int, AgentState]:
        """Write ``new`` over ``old`` at ``version`` with its messages, usage and index changes.

        The conversation pointer (``conv_gen``, ``conv_len``) is derived here from ``rewrite`` (a
        compaction: a new generation of the log) and ``append``. Returns the new version and record.
        An ended agent comes back to life only through :meth:`reopen` (``reopening``), which counts it
        open again: any other write doing so raises :class:`InvalidTransition` and writes nothing (its
        second ending would close its run's count twice and wake the run while others still run).
        """
        if old.status.terminal and not new.status.terminal and not reopening:
            raise InvalidTransition(f"agent {old.id} has ended ({old.status.value}): it cannot become "
                                    f"{new.status.value} again except by a retry")
        k = self.keys
        generation = old.conv_gen + 1 if rewrite is not None else old.conv_gen
        length = (len(rewrite) if rewrite is not None else old.conv_len) + len(append or [])
        new = new.evolve(conv_gen=generation, conv_len=length)
        ops: list[Op] = []
        if rewrite is not None:
            if rewrite:
                ops.append(store.rpush(k.conversation(new.id, generation), *(_dump(m) for m in rewrite)))
            ops.append(store.delete(k.conversation(old.id, old.conv_gen)))
        if append:
            ops.append(store.rpush(k.conversation(new.id, generation), *(_dump(m) for m in append)))
        if usage is not None:
            ops += self._usage_ops(new, usage)
            # the call this usage is for has ended: what was set aside for it goes back to the run
            ops.append(store.release(k.reservations(), k.usage("run"), new.id, RESERVED_FIELD))
        ops += self._index_ops(old, new)
        ops += extra_ops or []
        data, apart = self._encode_record(new)
        if apart is not None:
            ops.append(apart)
        version = self.records.cas(k.agent(new.id), version, data, ops=ops, limits=limits or ())
        return version, new

    def _usage_ops(self, agent: AgentState, usage: Usage) -> list[Op]:
        ops: list[Op] = []
        for facet in ("run", f"role:{agent.role}", f"agent:{agent.id}"):
            key = self.keys.usage(facet)
            for name, value in (("prompt_tokens", usage.prompt_tokens),
                                ("completion_tokens", usage.completion_tokens),
                                ("model_calls", usage.model_calls), ("tool_calls", usage.tool_calls)):
                if value:
                    ops.append(store.hincrby(key, name, value))
            if usage.cost_usd:
                ops.append(store.hincrbyfloat(key, "cost_usd", usage.cost_usd))
        return ops

    def _index_ops(self, old: AgentState | None, new: AgentState) -> list[Op]:
        """Index changes taking ``old`` to ``new``, derived from the two records."""
        k = self.keys
        queue = k.agent_queue()
        ops: list[Op] = []
        if old is None or old.status is not new.status:
            if old is not None:
                ops.append(store.srem(k.agent_status(old.status), new.id))
            ops.append(store.sadd(k.agent_status(new.status), new.id))
            if new.status is AgentStatus.QUEUED:
                ops.append(store.zadd(queue, new.created_at, new.id))
            elif old is not None and old.status is AgentStatus.QUEUED:
                ops.append(store.zrem(queue, new.id))
                if not new.status.terminal:
                    ops.append(store.hincrby(self.run_usage, "active", 1))
            elif old is None and not new.status.terminal:
                ops.append(store.hincrby(self.run_usage, "active", 1))
            if old is not None and new.status.terminal and not old.status.terminal:
                if old.status is not AgentStatus.QUEUED:
                    ops.append(store.hincrby(self.run_usage, "active", -1))
                ops.append(store.hincrby(self.run_usage, f"agents_{new.status.value}", 1))
                ops.append(store.hincrby(k.usage(f"role:{new.role}"), "agents_ended", 1))
                ops.append(store.hincrby(k.usage("phases"), f"{phase_of(new)}.ended", 1))
                ops.append(store.child_end(k.children_open(), RUN_ROOT, k.wake_requests(), k.wakeups(), 100_000))
                if new.parent:
                    ops.append(store.child_end(k.children_open(), new.parent, k.wake_requests(), k.wakeups(),
                                               100_000))
            ops.append(self.events.op(f"agent.{new.status.value}", new.id, {
                "role": new.role, "spec": new.spec, "parent": new.parent, "depth": new.depth,
                "kind": new.kind, "turn": new.turn, "reason": (new.reason or "")[:300] or None,
                "class": new.reason_class.value if new.reason_class else None,
                "labels": new.labels or None, "node": new.last_node,
                "tokens": new.usage.tokens, "cost_usd": round(new.usage.cost_usd, 6)}))
        if new.status.terminal or new.status is AgentStatus.QUEUED or new.due_at is None:
            if old is not None and old.due_at is not None:
                ops.append(store.zrem(k.agent_deadlines(), new.id))
        elif old is None or new.due_at != old.due_at:
            ops.append(store.zadd(k.agent_deadlines(), new.due_at, new.id))
        return ops

    def _encode(self, agent: AgentState) -> bytes:
        return codec.encode(agent, limit=self.records.max_record_bytes, what=f"agent {agent.id}")

    def _encode_record(self, agent: AgentState) -> tuple[bytes, Op | None]:
        """The record's bytes within the record budget, checked before anything is written. A result
        too large to ride in the record is stored apart (compressed, in the same atomic write) up to
        ``max_result_bytes``; past that, or when the rest of the record is too large, this raises
        :class:`PayloadTooLarge` and nothing is written."""
        data = codec.encode(agent, what=f"agent {agent.id}")
        budget = self.records.max_record_bytes
        if len(data) <= budget and not agent.result_apart:
            return data, None
        if agent.result is None:
            return self._encode(agent), None
        result = json.dumps(agent.result, separators=(",", ":"), ensure_ascii=False).encode()
        limit = self.state.settings.max_result_bytes
        if len(result) > limit:
            raise PayloadTooLarge(f"result of agent {agent.id}", len(result), limit)
        slim = agent.evolve(result=None, result_apart=len(result))
        return self._encode(slim), store.set_value(self.keys.agent_result(agent.id), zlib.compress(result, 6))


def phase_of(agent: AgentState) -> str:
    """The phase of its run the agent belongs to (a review's ``scan``, ``review``...: the ``phase`` label
    its workflow gave it, inherited by its sub-agents), else its role. Counted per run, started and ended,
    for the progress views."""
    return agent.labels.get("phase") or agent.role


def _dump(message: ChatMessage) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _tally(raw: dict[bytes, bytes]) -> dict[str, float]:
    """A usage hash as read from Redis, decoded."""
    return {k.decode(): float(v) for k, v in raw.items()}
