"""The Python API: submit reviews and builds from any process that can reach the Redis, and follow them.

    from swarm_tasks.api import Swarm

    with Swarm() as swarm:                      # SWARM_REDIS_URL, or an embedded Redis + local workers
        run = swarm.review("path/to/repo")
        run.wait(timeout_s=600)
        print(run.report().by_severity())
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import JsonValue

from coordination.connection import RedisHandle
from coordination.errors import VersionConflict
from coordination.store import ride_out
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.builder.job import forget_secret
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.errors import JobSpecError, RunNotFound
from swarm_tasks.models.preflight import ModelCheck, check_models, cost_capped
from swarm_tasks.outcome import AgentEnd, ReasonClass, RunOutcome, Tally
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.job import ReviewJob, resolve_models
from swarm_tasks.runs import RunLimits, RunRecord, RunStatus
from swarm_tasks.settings import SwarmSettings, get_settings
from swarm_tasks.sources import SourceSpec
from swarm_tasks.worker.cluster import LocalCluster
from swarm_tasks.worker.control_loop import sweep_agents

if TYPE_CHECKING:
    from swarm_tasks.review.report import Report
    from swarm_tasks.worker.consumers import QueueNeed

T = TypeVar("T")
_ZERO_USAGE: dict[str, float] = dict.fromkeys(
    ("agents", "agents_ended", "prompt_tokens", "completion_tokens", "cost_usd", "model_calls", "tool_calls"), 0.0)
OutageListener = Callable[[float, BaseException | None], None]  # (seconds Redis has been away, the error or None)


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a run for progress displays."""

    status: RunStatus
    agents: dict[str, int]  # by status
    roles: dict[str, dict[str, float]]  # per role: agents started, ended, tokens, cost
    tasks: dict[str, int]
    counters: dict[str, int]
    tokens: int  # of recorded turns
    cost_usd: float
    phases: dict[str, dict[str, int]] = field(default_factory=dict)  # per phase: agents started, ended
    spent_tokens: int = 0  # every model reply so far, counted as it arrived (see AgentStore.count_spent)
    spent_cost_usd: float = 0.0
    in_flight_tokens: int = 0  # prompt tokens of model calls under way

    @property
    def live_tokens(self) -> int:
        """Tokens so far, as up to date as possible: every reply as it arrived, and the prompts of the
        calls still under way (a provider may take a minute; until then the rest reads 0)."""
        return max(self.tokens, self.spent_tokens) + self.in_flight_tokens

    @property
    def live_cost_usd(self) -> float:
        return max(self.cost_usd, self.spent_cost_usd)

    @property
    def started(self) -> int:
        return sum(self.agents.values())

    @property
    def ended(self) -> int:
        return sum(n for s, n in self.agents.items() if AgentStatus(s).terminal)


class RunHandle:
    """One run: its status, progress, results and cost; wait, cancel or resume it. ``warnings``: what the
    preflight of its models said when it was submitted here (an unpriced model, a fleet it could not ask)."""

    def __init__(self, client: SwarmClient, run_id: str, *, warnings: list[str] | None = None) -> None:
        self.client = client
        self.id = run_id
        self.warnings = list(warnings or [])
        self.record()  # raises RunNotFound for an unknown id

    def record(self) -> RunRecord:
        return self.client.runs.get(self.id)

    @property
    def status(self) -> RunStatus:
        return self.record().status

    def progress(self) -> Progress:
        ctx = self.client.run(self.id)
        names = self.roles()
        usage, spent, phase_tally, counters, *role_usages = ctx.agents.usages(
            "run", "spent", "phases", "counters", *(f"role:{r}" for r in names))  # one round trip
        roles = dict(zip(names, role_usages, strict=True))
        phases: dict[str, dict[str, int]] = {}
        for name, value in phase_tally.items():
            phase, _, what = name.rpartition(".")
            phases.setdefault(phase, {"started": 0, "ended": 0})[what] = int(value)
        return Progress(status=self.status, agents={s.value: n for s, n in ctx.agents.counts().items()},
                        roles=roles, tasks={s.value: n for s, n in ctx.state.board.counts().items()},
                        counters={k: int(v) for k, v in counters.items()},
                        tokens=int(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)),
                        cost_usd=float(usage.get("cost_usd", 0.0)), phases=phases,
                        spent_tokens=int(spent.get("prompt_tokens", 0) + spent.get("completion_tokens", 0)),
                        spent_cost_usd=float(spent.get("cost_usd", 0.0)),
                        in_flight_tokens=max(0, int(spent.get("prompt_tokens_in_flight", 0))))

    def roles(self) -> list[str]:
        prefix = self.client.run(self.id).state.keys.usage("role:")
        return sorted(k.decode().removeprefix(prefix) for k in self.client.client.scan_iter(match=prefix + "*"))

    def reconnecting(self, fn: Callable[[], T], on_outage: OutageListener | None = None) -> T:
        """``fn()``, riding out a Redis restart or failover of up to ``SWARM_REDIS_RECONNECT_S`` with the
        workers' backoff; ``on_outage(waited_s, error)`` hears of each try (``error`` None: it is back)."""
        return ride_out(fn, within_s=self.client.settings.redis_reconnect_s, on_wait=on_outage)

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.25,
             on_outage: OutageListener | None = None) -> RunRecord:
        """Block until the run ends, riding out Redis restarts (see :meth:`reconnecting`);
        :class:`TimeoutError` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            record = self.reconnecting(self.record, on_outage)
            if record.status.terminal:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.id} is still {record.status.value} after {timeout_s}s")
            time.sleep(poll_s)

    def cancel(self, reason: str = "cancelled by user", *, orphaned: bool = False) -> bool:
        """Stop the run: nothing new starts; agents end at their next step. False if it had already ended.

        ``orphaned``: the workers that were running its agents are gone (a command stopped its own local
        workers), so agents still marked running end now too; a worker that did still hold one would
        find its next write fenced by the record's version and the agent ended."""
        changed = self.client.runs.transition(self.id, RunStatus.CANCELLED, reason=reason,
                                              only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))
        ctx = self.client.run(self.id)
        if changed is not None and changed.kind == "build":
            forget_secret(ctx.state)  # ended: no worker needs the remote's credential any more
        ctx.state.board.cancel_all(reason)
        statuses = (AgentStatus.QUEUED, AgentStatus.READY, AgentStatus.WAITING)
        for status in (*statuses, AgentStatus.RUNNING) if orphaned else statuses:
            for agent_id in ctx.agents.ids(status):
                _end_agent(ctx, agent_id, AgentStatus.CANCELLED, reason, running_too=orphaned)
        return changed is not None

    def resume(self) -> int:
        """Push a stalled run on: re-send waiting steps now, reclaim turns of dead workers, wake waiters,
        and hand a run with no live agent to its workflow. Returns how many agents were moved."""
        if self.status is not RunStatus.RUNNING:
            raise JobSpecError(f"run {self.id} is {self.status.value}; only a running run can be resumed")
        ctx = self.client.run(self.id)
        moved = sweep_agents(self.client, ctx, now=ctx.state.records.now() + 10 * 365 * 86400)
        self.client.promote_and_schedule(ctx)
        if not any(ctx.agents.ids(s) for s in AgentStatus if not s.terminal):
            CeleryScheduler(app).run_idle(self.id)
        return moved

    def outcome(self) -> RunOutcome | None:
        """How the run ended (None while it runs): its status, the reason, agents by status, role and
        reason class, the agents that did not finish and the work left out. The CLI reads the same."""
        return self.record().outcome

    def failed_agents(self) -> list[AgentEnd]:
        """Every agent that ended without finishing its work (failed, stopped, cancelled), with why."""
        tally = Tally().add_all(a for a in self.agents() if a.status.terminal)
        return sorted(tally.problems, key=lambda p: (p.status != "failed", p.role, p.subject, p.agent_id))

    def retry(self, *, failed_only: bool = False, role: str | None = None) -> list[AgentState]:
        """Start the agents that did not finish over, in this run (only the failed ones with
        ``failed_only``, only one role's with ``role``), reopening the run if it ended: when they end, the
        run's end is decided again (a review's report rebuilt). Returns the agents started over."""
        from swarm_tasks.retry import UNFINISHED, retry_agents

        statuses = (AgentStatus.FAILED,) if failed_only else UNFINISHED
        return retry_agents(self.client, self.id, statuses=statuses, role=role)

    def queue_needs(self) -> list[QueueNeed]:
        """The queues the run's waiting agents are on, with the live workers consuming each; a starved one
        (``need.starved``: nobody consumes it) is why a run can sit "running" with nothing happening."""
        from swarm_tasks.worker.consumers import queue_needs

        return queue_needs(self.client, self.client.run(self.id))

    def elapsed_s(self) -> float:
        """Seconds the run has taken: to its end if it ended, else so far."""
        return self.client.runs.elapsed_s(self.record())

    def cycles(self) -> list[dict[str, JsonValue]]:
        """A build's judged cycles so far (tip, tag, check, the judge's decision and reason); [] otherwise."""
        record = self.record()
        if record.kind != "build":
            return []
        result = record.result if isinstance(record.result, dict) else {}
        if isinstance(result.get("cycles"), list):
            return list(result["cycles"])  # type: ignore[arg-type]
        from swarm_tasks.builder.cycles import CycleBook

        return [v.model_dump(mode="json") for v in CycleBook(self.client.run(self.id).state).current().history]

    def hot_spots(self, limit: int = 10) -> list[tuple[str, int]]:
        """A build's files that caused the most rebases and conflicts, most first; [] otherwise."""
        if self.record().kind != "build":
            return []
        from swarm_tasks.builder.landing import top_hotspots

        return top_hotspots(self.client.run(self.id).state, limit)

    def agents(self) -> list[AgentState]:
        ctx = self.client.run(self.id)
        ids = sorted({a for s in AgentStatus for a in ctx.agents.ids(s)})
        return [a for a in ctx.agents.get_many(ids) if a is not None]

    def cost(self, by: str = "role") -> dict[str, dict[str, float | str]]:
        """Tokens and dollars by role (``by="role"``) or by agent (``by="agent"``, each with its role)."""
        if by == "agent":
            return {a.id: {"role": a.role, "tokens": float(a.usage.tokens), "cost_usd": a.usage.cost_usd,
                           "model_calls": float(a.usage.model_calls)} for a in self.agents()}
        if by != "role":
            raise ValueError("by must be 'role' or 'agent'")
        ctx = self.client.run(self.id)
        by_role: dict[str, dict[str, float | str]] = {}
        for role in self.roles():
            usage = {**_ZERO_USAGE, **ctx.agents.usage(f"role:{role}")}  # a field never incremented is 0, not absent
            by_role[role] = {**usage, "tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        return by_role

    def results(self) -> JsonValue:
        """What the run produced (for a review, a summary of its report; see :meth:`report`)."""
        return self.record().result

    def report(self) -> Report:
        """The merged review report: of a cancelled review, what it found until then, marked partial.
        :class:`JobSpecError` if this run is not a review, or is one that is still running."""
        from swarm_tasks.review.workflow import load_report, unfinished_report

        report = load_report(self.client, self.id)
        if report is not None:
            return report
        record = self.record()
        if record.kind == "review" and record.status is RunStatus.CANCELLED:
            return unfinished_report(self.client, record)
        raise JobSpecError(f"run {self.id} has no report (kind {record.kind}, {record.status.value})")


def _end_agent(ctx, agent_id: str, status: AgentStatus, reason: str, *, running_too: bool = False) -> None:
    for _ in range(8):
        agent, version = ctx.agents.load(agent_id)
        if agent.status.terminal or (agent.status is AgentStatus.RUNNING and not running_too):
            return
        now = ctx.state.records.now()
        try:
            ctx.agents.save(agent, version, agent.evolve(status=status, reason=reason, ended_at=now, updated_at=now,
                                                         due_at=None, reason_class=ReasonClass.CANCELLED))
            return
        except VersionConflict:
            continue


class Swarm:
    """A client of the swarm. Without ``SWARM_REDIS_URL`` it starts an embedded Redis and, since nothing
    else could do the work, ``workers`` local worker processes (2 by default) that it stops on close."""

    def __init__(self, settings: SwarmSettings | None = None, *, workers: int | None = None,
                 concurrency: int | None = None, queues: Sequence[str] | None = None) -> None:
        self.settings = settings or get_settings()
        self.handle: RedisHandle = use_settings(self.settings)
        self.client = SwarmClient.create(self.settings, self.handle.client, CeleryScheduler(app))
        if workers is None:
            workers = 2 if self.handle.is_embedded else 0
        self.cluster: LocalCluster | None = None
        if workers:
            try:
                self.start_workers(workers, concurrency=concurrency, queues=queues)
            except BaseException:  # interrupted or failed while starting: leave nothing running
                self.handle.close()
                raise

    def start_workers(self, count: int = 2, *, concurrency: int | None = None,
                      queues: Sequence[str] | None = None) -> LocalCluster:
        """Start ``count`` local worker processes on this client's Redis (stopped on close); what a
        command does without ``SWARM_REDIS_URL``, where no other worker could run its run."""
        if self.cluster is not None:
            return self.cluster
        worker_settings = self.settings.model_copy(update={"redis_url": _secret(self.handle.url)})
        kwargs = {"queues": list(queues)} if queues else {}
        cluster = LocalCluster(worker_settings, workers=count, concurrency=concurrency,
                               name_prefix="local", **kwargs)  # type: ignore[arg-type]
        cluster.start()
        self.cluster = cluster
        return cluster

    # -- submitting ------------------------------------------------------------------------------
    def review(self, source: str | Path, *, ref: str | None = None, models: dict[str, str] | None = None,
               config: ReviewConfig | dict[str, object] | None = None,
               limits: RunLimits | dict[str, object] | None = None, title: str = "") -> RunHandle:
        """Start a deep review of a directory or git URL; the job is validated before anything is enqueued."""
        from swarm_tasks.review.workflow import submit_review

        job = ReviewJob.parse({"source": SourceSpec(location=str(source), ref=ref).model_dump(),
                               "config": _dump(config), "models": models or {}, "limits": _dump(limits),
                               "title": title})
        check = self.check_models(resolve_models(job.models, self.settings), job.limits)
        return RunHandle(self.client, submit_review(self.client, job).id, warnings=check.warnings)

    def build(self, repo: str | Path, **job: object) -> RunHandle:
        """Start a build swarm on a repository (see :mod:`swarm_tasks.builder.workflow`)."""
        from swarm_tasks.builder.job import BuildMode
        from swarm_tasks.builder.job import resolve_models as build_models
        from swarm_tasks.builder.workflow import BuildJob, submit_build

        spec = BuildJob.parse({"repo": str(repo), **job})
        models = build_models(spec, self.settings) if spec.mode is BuildMode.MODEL else {}
        check = self.check_models(models, spec.limits)
        return RunHandle(self.client, submit_build(self.client, spec).id, warnings=check.warnings)

    def check_models(self, models: dict[str, str], limits: RunLimits | None = None) -> ModelCheck:
        """The preflight of a run's models (role -> model): :class:`ModelKeyMissing` (a
        :class:`JobSpecError`) naming the variable to set if a model cannot be called, or if a cost cap
        cannot hold for an unpriced model; otherwise its warnings (on the run's handle). Workers started here get
        this process's provider variables; a remote fleet is asked which variables its workers have."""
        fleet = None
        if self.cluster is None:
            from coordination.registry import Kind
            from coordination.run import global_registry

            fleet = global_registry(self.handle.client, self.settings).discover(kind=Kind.WORKER)
        return check_models(models, self.settings, cost_capped=cost_capped(self.settings, limits), fleet=fleet)

    # -- finding runs ----------------------------------------------------------------------------
    def run(self, run_id: str) -> RunHandle:
        return RunHandle(self.client, run_id)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        return self.client.runs.list(limit=limit)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        self.handle.close()

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dump(value: object) -> object:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):  # only what the caller set: the rest comes from the settings
        return value.model_dump(mode="json", exclude_unset=True)  # type: ignore[no-any-return]
    return value


def _secret(url: str) -> object:
    from pydantic import SecretStr

    return SecretStr(url)


__all__ = ["Progress", "RunHandle", "RunNotFound", "Swarm"]
