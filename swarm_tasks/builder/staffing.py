"""Who works on which task: worker slots, claims on board tasks, and starting workers.

At most ``builders`` workers of a cycle hold a slot at once (a compare-and-set record). Workers are
started by whoever can see work appear: a planner filing tasks, a worker ending (its successor), the
idle hook. Each start is: take a slot for the would-be worker's id, claim a task with that id as the
claimant, return the agent to start. Ids derive from who starts and a position, and a claimant's
existing claim is found again, so a start that is repeated after a crash starts nobody twice.

No lost wake-up: a task is filed before its filer looks for a free slot, and a worker gives its slot
back before it looks for tasks, so of two that race one always sees the other's change.
"""

from __future__ import annotations

import contextlib
import json
import threading

from pydantic import BaseModel, ConfigDict, Field

from coordination import codec
from coordination.errors import LeaseLost
from coordination.run import RunState
from coordination.store import Versioned, Write
from coordination.tasks import Lease, Task, TaskStatus
from swarm_tasks.agents.children import ChildRequest, child_id
from swarm_tasks.agents.state import AgentStore
from swarm_tasks.builder.cycles import CycleBook
from swarm_tasks.builder.job import TASK_ROLE, BuildJob, BuildMode
from swarm_tasks.runs import RunStatus, RunStore

SLOT_GRACE_S = 120.0  # a slot taken for an agent that never appeared is freed after this long
MAX_STARTS = 512  # per staffing call: a bound on the loop, far above any sensible builders
MAX_DEFERRED = 8  # tasks held aside per claim while looking for one whose files no running task owns


class SlotTable(BaseModel):
    """The workers of one cycle holding a slot, with when they took it."""

    model_config = ConfigDict(extra="forbid")

    holders: dict[str, float] = Field(default_factory=dict)


class Slots:
    """At most ``size`` workers at once in one cycle."""

    def __init__(self, state: RunState, cycle: int, size: int) -> None:
        self.state = state
        self.size = size
        self.key = state.keys.record("build", f"slots-c{cycle}")
        self.agents = AgentStore(state)

    def _table(self, current: Versioned | None) -> SlotTable:
        return SlotTable() if current is None else codec.decode(SlotTable, current.data, key=self.key)

    def take(self, holder: str) -> bool:
        """Give ``holder`` a slot (True if it has one now, also when it already had one)."""
        taken: list[bool] = []

        def fn(current: Versioned | None) -> Write | None:
            table = self._table(current)
            if holder in table.holders:
                taken[:] = [True]
                return None
            now = self.state.records.now()
            ids = sorted(table.holders)
            pruned = False
            for agent_id, agent in zip(ids, self.agents.get_many(ids), strict=True):
                gone = agent.status.terminal if agent is not None else now - table.holders[agent_id] > SLOT_GRACE_S
                if gone:  # ended without giving it back (crash), or never started
                    del table.holders[agent_id]
                    pruned = True
            if len(table.holders) >= self.size:
                taken[:] = [False]
                return Write(codec.encode(table)) if pruned else None
            table.holders[holder] = now
            taken[:] = [True]
            return Write(codec.encode(table))

        self.state.records.update(self.key, fn)
        return taken[0]

    def give_back(self, holder: str) -> None:
        def fn(current: Versioned | None) -> Write | None:
            table = self._table(current)
            if table.holders.pop(holder, None) is None:
                return None
            return Write(codec.encode(table))

        self.state.records.update(self.key, fn)

    def holders(self) -> list[str]:
        rec = self.state.records.get(self.key)
        return sorted(self._table(rec).holders)


def held_lease(state: RunState, task_id: str, claimant: str) -> Lease | None:
    """The lease on ``task_id`` if ``claimant`` still holds it (its version is the fencing token)."""
    key = state.keys.task(task_id)
    rec = state.records.get(key)
    if rec is None:
        return None
    task = codec.decode(Task, rec.data, key=key)
    if task.status is TaskStatus.CLAIMED and task.claimant == claimant:
        return Lease(task, rec.version)
    return None


def claim_for(state: RunState, claimant: str, lease_s: float, *, ownership: bool = False) -> Lease | None:
    """A task for ``claimant``: the one it already holds (a repeated start), else the best pending one.

    With ``ownership``, a task waits while a task in progress owns one of its costly files (files
    whose rebase conflicts needed a model before): it is held aside while another is looked for,
    then handed back untouched, and started when the owner has ended.
    """
    claimed = state.board.tasks([TaskStatus.CLAIMED], role=TASK_ROLE)
    for task in claimed:
        if task.claimant == claimant:
            lease = held_lease(state, task.id, claimant)
            if lease is not None:
                return lease
    costly = costly_files(state) if ownership else set()
    owned = {f for t in claimed for f in task_files(t)} & costly
    held: list[Lease] = []
    try:
        for _ in range(MAX_DEFERRED + 1):
            lease = state.board.claim(claimant, TASK_ROLE, lease_s=lease_s)
            if lease is None or not owned & set(task_files(lease.task)):
                return lease
            held.append(lease)  # held while we look on, so the next claim picks another
        return None
    finally:
        for lease in held:
            with contextlib.suppress(LeaseLost):
                state.board.release(lease)


def costly_files(state: RunState) -> set[str]:
    """Files whose rebase conflicts had to be resolved by a model in this run."""
    return {k.decode() for k in state.redis.hkeys(state.keys.costly_conflicts())}


def record_costly(state: RunState, files: list[str]) -> None:
    if files:
        pipe = state.redis.pipeline(transaction=False)
        for path in files:
            pipe.hincrby(state.keys.costly_conflicts(), path, 1)
        pipe.execute()


def task_files(task: Task) -> list[str]:
    """The files a task expects to change (a JSON list in its ``files`` label)."""
    try:
        files = json.loads(task.labels.get("files", "[]"))
    except json.JSONDecodeError:
        return []
    return [str(f) for f in files] if isinstance(files, list) else []


class LeaseKeeper:
    """Heartbeats a task lease from a thread while a program works; fenced complete and fail."""

    def __init__(self, state: RunState, lease: Lease, lease_s: float) -> None:
        self.board = state.board
        self.lease_s = lease_s
        self._lease = lease
        self._lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="swarm-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            self.beat()

    def beat(self) -> bool:
        """Extend the lease now; False once it is lost."""
        with self._lock:
            if self._lost:
                return False
            try:
                self._lease = self.board.heartbeat(self._lease, lease_s=self.lease_s)
            except LeaseLost:
                self._lost = True
            return not self._lost

    def complete(self, result: dict[str, object]) -> bool:
        """Mark the task done; False if the lease was lost first (someone else has the task now)."""
        with self._lock:
            self._stop.set()
            if self._lost:
                return False
            try:
                self.board.complete(self._lease, result)  # type: ignore[arg-type]
            except LeaseLost:
                return False
            return True

    def fail(self, error: str) -> None:
        """Give the task up: back to pending while attempts remain, else failed."""
        with self._lock:
            self._stop.set()
            if not self._lost:
                with contextlib.suppress(LeaseLost):  # someone else holds it now: theirs to settle
                    self.board.fail(self._lease, error[:2000], retry=True)


def worker_request(job: BuildJob, task: Task, key: str, cycle: int) -> ChildRequest:
    """The agent that works on ``task`` (claimed for the id ``key`` gives)."""
    from swarm_tasks.builder.specs import CODEMOD_WORKER, WORKER, worker_task

    spec = CODEMOD_WORKER if job.mode is BuildMode.CODEMOD else WORKER
    text = worker_task(job, task, cycle) if job.mode is BuildMode.MODEL else f"codemod task {task.id}"
    return ChildRequest(spec, task=text, input={"task": task.id, "cycle": cycle},
                        labels={"task": task.id, "cycle": str(cycle)}, key=key, global_key=True, detached=True)


def staff(state: RunState, runs: RunStore, job: BuildJob, *, starter: str) -> list[ChildRequest]:
    """Workers to start now: one per free slot and pending task, each task already claimed for it."""
    if runs.get(state.run_id).status is not RunStatus.RUNNING:
        return []
    cycle = CycleBook(state).current().cycle
    slots = Slots(state, cycle, job.builders)
    requests: list[ChildRequest] = []
    for index in range(MAX_STARTS):
        key = f"worker:{starter}:{index}"
        worker = child_id("run", "global", key)
        if not slots.take(worker):
            break
        lease = claim_for(state, worker, job.task_lease_s, ownership=job.mode is BuildMode.MODEL)
        if lease is None:
            slots.give_back(worker)
            if state.board.counts()[TaskStatus.PENDING] == 0:
                break
            continue  # a racing starter took the task we saw; look again
        requests.append(worker_request(job, lease.task, key, cycle))
    return requests
