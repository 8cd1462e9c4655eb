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
from swarm_tasks.builder.check import CheckResult

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
    """The judge's reading of one cycle: objective signals and the decision.

    ``accepted``: the tip is a state to keep (the check passes or none is configured, no task failed,
    the codemod failed on no file and is not repeating itself); only an accepted cycle is tagged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle: int
    base: str = ""
    tip: str
    tag: str = Field(default="", description="The cycle's tag on the remote, empty if it was not tagged.")
    accepted: bool = False
    check: CheckSummary | None = None
    decision: Decision
    reason: str
    judged_by: str
    tasks: dict[str, int] = Field(default_factory=dict)
    failed: list[str] = Field(default_factory=list)
    landed: list[str] = Field(default_factory=list, description="Commits of this cycle's tasks, oldest first.")
    landed_count: int = 0
    unchecked: list[str] = Field(default_factory=list, description="Landed commits whose check did not run on "
                                 "the tree they landed on (the judge's full check on the tip covers them).")
    first_bad: str = Field(default="", description="The first commit of the cycle on which the check fails.")
    changed_files: list[str] = Field(default_factory=list, description="Codemod: files it still changes.")
    changed_count: int = 0
    repeated_files: list[str] = Field(default_factory=list, description="Codemod: files it changes again "
                                      "although this run already changed them (not idempotent).")
    repeated_count: int = 0
    file_failures: dict[str, str] = Field(default_factory=dict, description="Codemod: file -> why it fails.")
    file_failure_count: int = 0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.tasks.items()) if n) or "no tasks"
        check = f"check {self.check.describe()}" if self.check else "no check configured"
        tagged = f"tagged {self.tag}" if self.tag else "not tagged"
        lines = [f"Cycle {self.cycle}: tasks {counts}; {self.landed_count} commit(s) landed; tip {self.tip[:12]} "
                 f"{tagged}; {check}.",
                 f"Judge ({self.judged_by}): {self.decision.value} - {self.reason}"]
        if self.failed:
            lines.append("Failed: " + "; ".join(self.failed[:10]))
        if self.first_bad:
            lines.append(f"The check first fails at commit {self.first_bad[:12]}.")
        if self.file_failure_count:
            shown = "; ".join(f"{p}: {why}" for p, why in list(self.file_failures.items())[:5])
            lines.append(f"The command fails on {self.file_failure_count} file(s): {shown}")
        if self.repeated_count:
            lines.append(f"The codemod changes {self.repeated_count} file(s) again that this run already changed "
                         "(it is not idempotent).")
        elif self.changed_count:
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
