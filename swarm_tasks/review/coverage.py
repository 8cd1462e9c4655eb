"""What a finished review covered: which inventoried files got their scan and, where flagged, their
four reviewers, and for every file left out, why (an agent failed, a budget ran out, the plan had no
room for it). The review's outcome is partial when anything is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.outcome import class_of
from swarm_tasks.review.enums import ReviewerKind
from swarm_tasks.review.swarm import BATCH, GROUP, SCAN, reviewer_kind

_WHOSE = {BATCH: "batch ", GROUP: "group's "}  # whose scan a file left out waited on


@dataclass
class Coverage:
    """Files scanned and reviewed, and the ones left out (each with why)."""

    inventoried: int = 0
    scanned: set[str] = field(default_factory=set)
    flagged: set[str] = field(default_factory=set)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    reviewers_done: int = 0

    @property
    def useful(self) -> bool:
        """Something came of the review: a reviewer finished, or every scanned file was clean."""
        if self.inventoried == 0:
            return True
        return self.reviewers_done > 0 or (bool(self.scanned) and not self.flagged)


def scan_body(agent: AgentState) -> dict[str, object]:
    """What a scan agent recorded (a model scan: what its hook derived from the model's answer)."""
    result = agent.result if isinstance(agent.result, dict) else {}
    body = result.get("record") if agent.kind == "llm" else result
    return body if isinstance(body, dict) else {}


def _why_not(agent: AgentState) -> str:
    return f"{agent.status.value}, {class_of(agent).label}"


def coverage(agents: list[AgentState], inventoried: list[str], max_agents: int) -> Coverage:
    """Which of the ``inventoried`` paths were scanned and fully reviewed, from the agents' records."""
    cov = Coverage(inventoried=len(inventoried))
    scans: dict[str, AgentState] = {}
    batch_of: dict[str, AgentState] = {}
    unreviewed: set[str] = set()
    reviewers: dict[str, dict[str, AgentState]] = {}
    inline: dict[str, set[str]] = {}  # path -> reviewer kinds run inside a group agent
    for agent in agents:
        if agent.spec == SCAN:
            body = scan_body(agent)
            inp = agent.input if isinstance(agent.input, dict) else {}
            if int(inp.get("depth", 0) or 0) != 0:
                continue
            scans[str(inp.get("path"))] = agent
            if agent.status is AgentStatus.DONE:
                cov.scanned.add(str(inp.get("path")))
                if body.get("flagged"):
                    cov.flagged.add(str(inp.get("path")))
        elif agent.spec == BATCH:
            inp = agent.input if isinstance(agent.input, dict) else {}
            for path in inp.get("paths") or []:
                batch_of[str(path)] = agent
            if agent.status is AgentStatus.DONE and isinstance(agent.result, dict):
                cov.scanned.update(str(p) for p in agent.result.get("scanned") or [])
                cov.flagged.update(str(e["input"]["path"]) for e in agent.result.get("scans") or [])
                unreviewed.update(str(p) for p in agent.result.get("unreviewed") or [])
                cov.flagged.update(unreviewed)
        elif agent.spec == GROUP:  # scanned and reviewed inside the agent: its result says what it did
            inp = agent.input if isinstance(agent.input, dict) else {}
            for path in inp.get("paths") or []:
                batch_of[str(path)] = agent
            result = agent.result if isinstance(agent.result, dict) else {}
            # stopped: a reviewer's findings budget; cancelled: with the run, what it did before is counted
            if agent.status in (AgentStatus.DONE, AgentStatus.STOPPED, AgentStatus.CANCELLED):
                cov.scanned.update(str(p) for p in result.get("scanned") or [])
                for entry in result.get("scans") or []:
                    if entry.get("flagged") and entry["input"]["depth"] == 0:
                        cov.flagged.add(str(entry["input"]["path"]))
                for run in result.get("runs") or []:
                    if run.get("role") == "reviewer":
                        inline.setdefault(str(run.get("file")), set()).add(str(run.get("kind")))
                    if run.get("role") in ("reviewer", "subreviewer"):
                        cov.reviewers_done += run.get("status", "done") == "done"  # stored without defaults
        elif (kind := reviewer_kind(agent.spec)) is not None:  # a model reviewer, or the analyzers as one
            reviewers.setdefault(agent.labels.get("file", ""), {})[kind] = agent
            cov.reviewers_done += agent.status is AgentStatus.DONE
        elif agent.spec.startswith("review.sub."):
            cov.reviewers_done += agent.status is AgentStatus.DONE
    budget = (f"the agent budget ({max_agents} agents) could not cover it: raise --max-agents or "
              "SWARM_RUN_MAX_AGENTS")
    for path in inventoried:
        if path not in cov.scanned:
            scan = scans.get(path) or batch_of.get(path)
            if scan is None:
                why = budget
            elif scan.status is not AgentStatus.DONE:
                why = f"its {_WHOSE.get(scan.spec, '')}scan {_why_not(scan)}"
            else:
                why = "another group took it on and did not finish" if scan.spec == GROUP else budget
            cov.left_out.append((path, f"not scanned ({why})"))
        elif path in unreviewed:
            cov.left_out.append((path, "flagged but not reviewed (the trivial files' share of the agent budget "
                                       "was spent: raise --max-agents)"))
        elif path in cov.flagged and inline.get(path, set()) >= {k.value for k in ReviewerKind}:
            continue  # its four reviewers ran inside its group (one cut short by its findings budget is
            # named by the group's reason)
        elif path in cov.flagged:
            mine = reviewers.get(path, {})
            missing = [f"{k.value} reviewer {_why_not(mine[k.value]) if k.value in mine else 'never started'}"
                       for k in ReviewerKind if k.value not in mine or mine[k.value].status is not AgentStatus.DONE]
            if missing:
                cov.left_out.append((path, f"not fully reviewed ({'; '.join(missing)})"))
    return cov
