"""The cycles of a build: which one is running, in which phase, and what each judge concluded.

One versioned record per run, changed only by compare-and-set, so two idle hooks delivered at once
cannot both start the next phase: the loser reads the winner's record and finds its agents there.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from coordination import codec
from coordination.errors import VersionConflict
from coordination.run import RunState
from swarm_tasks.build.check import CheckResult

MAX_LISTED = 200  # files or failures kept in a stored verdict (the judge agent's own result has them all)


class Phase(StrEnum):
    """Where the current cycle is."""

    WORK = "work"  # planners plan, workers land tasks
    JUDGING = "judging"  # the judge reads the signals on the branch tip
    DONE = "done"


class Decision(StrEnum):
    """What a judge decided at the end of a cycle."""

    CONTINUE = "continue"
    STOP = "stop"


class CheckSummary(BaseModel):
    """One run of the check command, as kept in verdicts and results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: bool
    status: str
    exit_code: int | None
    duration_s: float
    output_tail: str = ""

    @classmethod
    def of(cls, result: CheckResult) -> CheckSummary:
        return cls(passed=result.passed, status=result.status.value, exit_code=result.exit_code,
                   duration_s=round(result.duration_s, 3), output_tail=result.output[-2000:])

    def describe(self) -> str:
        if self.passed:
            return f"passed ({self.duration_s:.1f} s)"
        if self.status == "timed_out":
            return f"TIMED OUT after {self.duration_s:.0f} s (killed)"
        return f"FAILED (exit {self.exit_code}, {self.duration_s:.1f} s)"


class Verdict(BaseModel):
    """The judge's reading of one cycle: objective signals and the decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle: int
    tip: str
    tag: str
    check: CheckSummary | None = None
    decision: Decision
    reason: str
    judged_by: str
    tasks: dict[str, int] = Field(default_factory=dict)
    failed: list[str] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list, description="Codemod: files it still changes.")
    changed_count: int = 0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.tasks.items()) if n) or "no tasks"
        check = f"check {self.check.describe()}" if self.check else "no check configured"
        lines = [f"Cycle {self.cycle}: tasks {counts}; tip {self.tip[:12]} tagged {self.tag}; {check}.",
                 f"Judge ({self.judged_by}): {self.decision.value} - {self.reason}"]
        if self.failed:
            lines.append("Failed: " + "; ".join(self.failed[:10]))
        if self.changed_count:
            lines.append(f"The codemod still changes {self.changed_count} file(s) on the tip.")
        return "\n".join(lines)


class CycleState(BaseModel):
    """The run's cycle bookkeeping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle: int = 1
    phase: Phase = Phase.WORK
    base: str = Field(default="", description="The branch tip when the current cycle started.")
    history: list[Verdict] = Field(default_factory=list)

    def evolve(self, **changes: object) -> CycleState:
        return self.model_copy(update=changes)


def cycle_tag(run_id: str, cycle: int) -> str:
    """The ref each cycle's final tip is recorded under on the shared remote."""
    return f"refs/tags/swarm/{run_id}/cycle-{cycle}"


class CycleBook:
    """Reads and advances the cycle record of one run."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.key = state.keys.record("build", "cycle")

    def read(self) -> tuple[CycleState, int]:
        """The record and its version (the state of cycle 1 at version 0 if never written)."""
        rec = self.state.records.get(self.key)
        if rec is None:
            return CycleState(), 0
        return codec.decode(CycleState, rec.data, key=self.key), rec.version

    def current(self) -> CycleState:
        return self.read()[0]

    def write(self, new: CycleState, version: int) -> bool:
        """Replace the record seen at ``version``; False if someone else changed it first."""
        data = codec.encode(new, what="build cycle record", limit=self.state.records.max_record_bytes)
        try:
            if version == 0:
                self.state.records.create(self.key, data)
            else:
                self.state.records.cas(self.key, version, data)
        except VersionConflict:
            return False
        return True
