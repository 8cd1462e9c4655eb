"""The task record: what a swarm asks for, its status, and who holds it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from coordination.keys import check_id


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)


class Task(BaseModel):
    """One unit of work on a run's board. Stored as JSON under a versioned record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    run: str
    parent: str | None = None
    role: str
    title: str = Field(max_length=1000)
    body: str = ""
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000, description="Higher runs first.")
    depends_on: tuple[str, ...] = ()
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = Field(default=0, ge=0, description="Claims that ended without completing.")
    max_attempts: int = Field(default=3, ge=1)
    claimant: str | None = None
    lease_expires_at: float | None = None
    result: JsonValue = None
    error: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: float
    updated_at: float
    ended_at: float | None = None

    @field_validator("id", "run", "role")
    @classmethod
    def _ident(cls, value: str) -> str:
        return check_id(value)

    @field_validator("parent")
    @classmethod
    def _parent(cls, value: str | None) -> str | None:
        return None if value is None else check_id(value, "parent id")

    @field_validator("depends_on")
    @classmethod
    def _deps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for dep in value:
            check_id(dep, "dependency id")
        return value

    def evolve(self, **changes: object) -> Task:
        """A copy with ``changes`` applied (internal transitions only: not re-validated)."""
        return self.model_copy(update=changes)


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on a task. ``version`` is the fencing token: every write of the holder names it."""

    task: Task
    version: int

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def claimant(self) -> str:
        assert self.task.claimant is not None
        return self.task.claimant

    @property
    def expires_at(self) -> float:
        assert self.task.lease_expires_at is not None
        return self.task.lease_expires_at


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep of the board did."""

    requeued: int = 0
    failed: int = 0
    unblocked: int = 0
    cancelled: int = 0

    def __add__(self, other: SweepReport) -> SweepReport:
        return SweepReport(self.requeued + other.requeued, self.failed + other.failed,
                           self.unblocked + other.unblocked, self.cancelled + other.cancelled)
