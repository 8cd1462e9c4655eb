"""A run's progress by phase: a review's inventory, scan, review, dependencies and report; a build's plan,
work and judge. Each phase counts its agents started and ended (``AgentStore`` keeps them per run, by the
``phase`` label a workflow gives its agents, else by role), so the views show done of total per phase,
where the old single bar's total jumped as agents spawned.

A phase's total can still grow while a phase before it is open (scans start reviewers, reviewers start
sub-reviewers): such a total is shown as a floor (``30/44+``) and the estimate of the time left as a
lower bound. Rate and ETA come from the agents ended over the last minute (:class:`RateMeter`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from swarm_tasks.outcome import RunStatus

REVIEW_PHASES = ("inventory", "scan", "review", "dependencies")
BUILD_PHASES = ("plan", "work", "judge")
ROLE_PHASE = {"planner": "plan", "worker": "work", "resolver": "work", "judge": "judge"}


@dataclass(frozen=True)
class PhaseRow:
    """One phase: agents done of total, and whether that total is final."""

    name: str
    done: int
    total: int
    final: bool  # no phase before it is still open: its total will not grow (beyond its own sub-agents)

    @property
    def state(self) -> str:
        if self.total == 0:
            return "waiting"
        return "done" if self.done >= self.total and self.final else "running"

    def shown(self) -> str:
        if self.total == 0:
            return "-"
        return f"{self.done:,}/{self.total:,}{'' if self.final else '+'}"

    def as_json(self) -> dict[str, object]:
        return {"phase": self.name, "done": self.done, "total": self.total, "final": self.final, "state": self.state}


def phase_rows(kind: str, phases: dict[str, dict[str, int]], status: RunStatus) -> list[PhaseRow]:
    """The run's phases in order (a review's report phase last, from the run's status)."""
    counts: dict[str, list[int]] = {}
    for name, c in phases.items():
        key = ROLE_PHASE.get(name, name) if kind == "build" else name
        slot = counts.setdefault(key, [0, 0])
        slot[0] += int(c.get("ended", 0))
        slot[1] += int(c.get("started", 0))
    order = REVIEW_PHASES if kind == "review" else BUILD_PHASES if kind == "build" else tuple(sorted(counts))
    order = (*order, *sorted(set(counts) - set(order)))
    rows: list[PhaseRow] = []
    open_before = False
    ended = status.terminal
    for name in order:
        done, total = counts.get(name, [0, 0])
        final = ended or (not open_before and kind != "build")  # a build's phases come round each cycle
        rows.append(PhaseRow(name, done, total, final))
        open_before = open_before or done < total or (total == 0 and name == "inventory")
    if kind == "review":
        finishing = status is RunStatus.FINALIZING
        rows.append(PhaseRow("report", 1 if ended else 0, 1 if (ended or finishing) else 0, True))
    return rows


class RateMeter:
    """Agents ended per second over the last ``window_s`` seconds, from samples a live view takes."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, ended: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.samples.append((now, ended))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def eta_s(rows: list[PhaseRow], rate: float | None) -> tuple[float | None, bool]:
    """Seconds left at ``rate`` (agents ended per second) for the agents known so far, and whether that is
    only a lower bound (a total may still grow)."""
    left = sum(max(0, r.total - r.done) for r in rows if r.name != "report")
    floor = any(not r.final for r in rows)
    if left == 0:
        return 0.0, floor
    if not rate or rate <= 0:
        return None, floor
    return left / rate, floor


__all__ = ["BUILD_PHASES", "REVIEW_PHASES", "PhaseRow", "RateMeter", "eta_s", "phase_rows"]
