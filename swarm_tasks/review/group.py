"""A review without models, a group of files per agent: each file scanned, reviewed by the four analyzers,
its imports followed and its findings sub-reviewed, all inside the group's agent.

Run one agent per scan, reviewer and sub-reviewer, such a review spent its time on the agents, not the
analyzers (1,726 agents for 1,000 files: about 8 ms of records and messages each against 0.6 ms of
analyzer work per file). Here the inventory deals the files into a few groups (see
:func:`swarm_tasks.review.triage.plan_groups`) and each group does what those agents did, in the same
order and with the same rules:

* a dependency is scanned once per run and depth, a file's four reviewers run once per run, and a
  sub-review once per run, by whichever group claims its key first in the run's work claims (a Redis hash,
  set-if-absent; a group's redone turn finds its own claims and does that work again);
* a group claims its files a few at a time (``scan:<path>``) and, done with its own, takes on the other
  groups' files not yet claimed, from their ends: a worker that the broker handed fewer groups, or lighter
  ones, helps the others instead of idling;
* the report lists each scan, reviewer and sub-reviewer run by the id the serial review gives it
  (:mod:`swarm_tasks.review.pipeline`), naming the agent it ran inside.

A file, dependency or sub-review whose work raises (a bug on odd input) is handed to an agent of its own,
which fails alone with the reason, as in a model review. A group whose turn was started before and never
recorded (a file killed its worker, or hung it) is not tried whole again: it starts one scan agent per
file instead, so one poisonous file costs its own scan, not its group's. A turn stopped by a signal (a
warm shutdown) is redone whole.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import JsonValue

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.program import ProgramContext, ProgramResult
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.errors import StoppedBySignal
from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.analyzers.python_quality import prepare_batch
from swarm_tasks.review.budget import cap_findings
from swarm_tasks.review.enums import ReviewerKind, ScanFlag
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.inventory import Inventory, describe_file
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.pipeline import reviewer_agent_id
from swarm_tasks.review.report import AgentRole, AgentRun
from swarm_tasks.review.scan import quick_scan
from swarm_tasks.review.source import SkippedPath, SourceFile
from swarm_tasks.review.subreview_rules import SubreviewRequest, plan_subreviews
from swarm_tasks.review.subreviewers import run_subreviewer
from swarm_tasks.review.swarm import (
    SCAN,
    FileInput,
    context_of,
    dependency_scan,
    finding_counters,
    finding_events,
    plan_after_scan,
    rules_of,
    scan_request,
    shared_index,
    source_file,
    subreview_child,
    subreview_key,
)
from swarm_tasks.review.triage import deal

STOP_SIGNAL = "StoppedBySignal"
CLAIM_FILES = 16  # files a group claims at a time: small, so that groups that finish early share the rest evenly
log = logging.getLogger("swarm_tasks.review")


def scan_run_id(path: str, depth: int) -> str:
    """The id of a file's scan run: the serial review's, and the depth for a dependency's."""
    return f"scanner:{path}" if depth == 0 else f"scanner:{path}:d{depth}"


class FileGroup:
    """The work of one group agent, and what it found."""

    def __init__(self, pctx: ProgramContext, job: ReviewJob, root: Path, inventory: Inventory) -> None:
        self.pctx, self.job, self.root, self.inventory = pctx, job, root, inventory
        self.config = job.config
        self.rules = rules_of(job)
        self.me = pctx.agent.id
        self.scanned: list[str] = []
        self.scans: list[JsonValue] = []
        self.findings: list[Finding] = []
        self.runs: list[AgentRun] = []
        self.cuts: list[str] = []
        self.files: deque[FileInput] = deque()
        self.subreviews: deque[tuple[SubreviewRequest, Finding]] = deque()
        self.pending: list[tuple[SubreviewRequest, Finding]] = []  # sub-reviews planned, not yet claimed
        self.taken: set[str] = set()  # work keys this agent holds in the run's claims
        self.children: list[ChildRequest] = []  # work that raised here, handed to agents of its own
        self.started: set[str] = set()  # work keys asked for in this turn (each is done once)
        self.cancelled = False

    # -- run-wide claims ---------------------------------------------------------------------------------
    def claim(self, keys: list[str]) -> list[bool]:
        """For each of ``keys``, whether this agent does the work it names now: it claimed it now, or on an
        earlier try of its turn, and has not taken it on yet in this one (one round trip). A claim is not a
        lock: nothing waits on it and none is released; it only says once who does a piece of work, as a
        global child key does for an agent, and a claimer whose turn is lost hands its work on (the split)."""
        fresh = list(dict.fromkeys(k for k in keys if k not in self.taken))
        if fresh:
            name = self.pctx.state.keys.work_claims()
            with self.pctx.state.redis.pipeline(transaction=False) as pipe:
                for key in fresh:
                    pipe.hsetnx(name, key, self.me)
                pipe.hmget(name, fresh)
                holders = pipe.execute()[-1]
            self.taken.update(k for k, held in zip(fresh, holders, strict=True)
                              if held is not None and held.decode() == self.me)
        out = []
        for key in keys:  # the first asking for a key takes the work on
            out.append(key in self.taken and key not in self.started)
            self.started.add(key)
        return out

    def run(self, **fields: object) -> None:
        self.runs.append(AgentRun.model_validate({"inside_agent_id": self.me, "depth": self.pctx.agent.depth + 1,
                                                  **fields}))

    # -- the work ----------------------------------------------------------------------------------------
    def review(self, home: list[str], others: list[list[str]]) -> None:
        """Its own files, front to back; then the other groups' files not yet taken, back to front (their
        groups work from the front), so that a worker done early helps one still busy."""
        prepare_batch(self.root, self.inventory.to_scan(), self.config)  # one ruff run for this process's share
        self.take(home, stop_when_taken=False)
        for paths in others:
            self.take(list(reversed(paths)), stop_when_taken=True)

    def take(self, paths: list[str], *, stop_when_taken: bool) -> None:
        """Review each of ``paths`` that this agent claims (``scan:<path>``), a few claims at a time."""
        for start in range(0, len(paths), CLAIM_FILES):
            if self.cancelled or not self.pctx.run_live():
                self.cancelled = True  # the run was cancelled: what is done so far is reported, no more
                return
            chunk = paths[start:start + CLAIM_FILES]
            mine = [p for p, won in zip(chunk, self.claim([f"scan:{p}" for p in chunk]), strict=True) if won]
            if not mine and stop_when_taken:
                return  # met its own group (or another helper) coming the other way
            self.files.extend(FileInput(path=p) for p in mine)
            self.drain()

    def drain(self) -> None:
        while self.files or self.subreviews or self.pending:  # files first, then sub-reviews
            if not self.files and self.pending:  # the sub-reviews planned so far, claimed in one round trip
                planned, self.pending = self.pending, []
                keys = [subreview_key(r, self.rules) for r, _f in planned]
                self.subreviews.extend(work for work, mine in zip(planned, self.claim(keys), strict=True) if mine)
                continue
            if self.files:
                self.scan_files([self.files.popleft() for _ in range(min(len(self.files), CLAIM_FILES))])
            else:
                request, finding = self.subreviews.popleft()
                self.isolated(lambda r=request, f=finding: self.subreview(r, f),
                              subreview_child(request, finding, self.rules))

    def isolated(self, work: Callable[[], None], instead: ChildRequest) -> None:
        """Do one piece of work; if it raises (a bug on odd input), forget what it did and start an agent of
        its own for it instead, which fails alone with the reason, as it would in a model review. The work
        claims what it hands on only once it cannot raise any more, so nothing claimed is dropped."""
        marks = (len(self.scanned), len(self.scans), len(self.findings), len(self.runs), len(self.cuts),
                 len(self.files), len(self.subreviews), len(self.pending))
        try:
            work()
        except StoppedBySignal:
            raise  # the worker is stopping: the turn is redone
        except Exception as exc:
            log.warning("review group %s: %s raised %s: %s; it gets an agent of its own", self.me, instead.key,
                        type(exc).__name__, exc)
            del self.scanned[marks[0]:], self.scans[marks[1]:], self.findings[marks[2]:], self.runs[marks[3]:]
            del self.cuts[marks[4]:]
            while len(self.files) > marks[5]:
                self.files.pop()
            while len(self.subreviews) > marks[6]:
                self.subreviews.pop()
            del self.pending[marks[7]:]
            self.children.append(instead)

    def scan_files(self, batch: list[FileInput]) -> None:
        """Scan a few files; then, in one round trip, claim the reviewers of those to review (once per run)
        and the scans of what they import (once per run and depth); then run the reviewers won."""
        scanned: list[tuple[FileInput, SourceFile, set[ScanFlag], list[ChildRequest]]] = []
        for inp in batch:
            self.isolated(lambda inp=inp: self.scan_file(inp, scanned), file_child(inp))
        keys = [key for _inp, file, _flags, deps in scanned
                for key in (f"review:{file.path}", *(str(d.key) for d in deps))]
        claims = iter(self.claim(keys))
        for inp, file, flags, deps in scanned:
            if next(claims):
                self.isolated(lambda i=inp, f=file, g=flags: self.reviewers(f, scan_run_id(f.path, i.depth), g),
                              file_child(inp))
            self.files.extend(FileInput.model_validate(dep.input) for dep in deps if next(claims))

    def scan_file(self, inp: FileInput,
                  scanned: list[tuple[FileInput, SourceFile, set[ScanFlag], list[ChildRequest]]]) -> None:
        """Scan one file; one to review (flagged, or imported) joins ``scanned`` with the scans it would start."""
        file = source_file(self.root, self.inventory, self.config, inp)
        if isinstance(file, SkippedPath):  # a dependency that may not be read: named in the report as skipped
            self.scans.append({"input": inp.model_dump(mode="json"), "skipped": [file.model_dump(mode="json")],
                               "reviewed": False})
            return
        scan = quick_scan(self.root, file, self.config)
        children, entry = plan_after_scan(self.pctx, self.job, self.root, self.inventory, file, inp, scan.risk,
                                          list(scan.flags), scan)
        if inp.depth == 0:
            self.scanned.append(file.path)
        scan_id = scan_run_id(file.path, inp.depth)
        if not entry["reviewed"]:
            return  # counted as scanned; listed no further (as a batch agent's trivial files are not)
        importer = scan_run_id(inp.imported_by, inp.depth - 1) if inp.imported_by and inp.depth else ""
        self.run(agent_id=scan_id, role=AgentRole.SCANNER, kind="scan", file=file.path, parent_agent_id=importer,
                 summary=f"risk {scan.risk}, flags {', '.join(scan.flags) or 'none'}")
        self.scans.append(entry)
        scanned.append((inp, file, set(scan.flags), [c for c in children if c.spec == SCAN and c.key]))

    def reviewers(self, file: SourceFile, scan_id: str, flags: set[ScanFlag]) -> None:
        found: list[Finding] = []
        for kind in ReviewerKind:
            agent_id = reviewer_agent_id(kind, file.path)
            capped = cap_findings(run_reviewer(kind, self.root, file, self.config, agent_id), self.config)
            if capped.cut:
                self.cuts.append(f"{kind} reviewer of {file.path}: {capped.reason()}")
            self.run(agent_id=agent_id, role=AgentRole.REVIEWER, kind=kind.value, file=file.path,
                     parent_agent_id=scan_id, findings=len(capped.findings),
                     status="stopped" if capped.cut else "done", reason=capped.reason() or "")
            found += capped.findings
        self.findings += found
        self.plan_subreviews(found, {file.path: flags}, 1)

    def plan_subreviews(self, findings: list[Finding], flags: dict[str, set[ScanFlag]], depth: int,
                        parent: str | None = None) -> None:
        """Sub-reviews of ``findings`` (merged, as the serial review plans them), each once per run."""
        merged = merge_findings(findings)
        by_id = {f.id: f for f in merged}
        self.queue_subreviews([(r.model_copy(update={"parent_agent_id": parent or by_id[r.finding_id].agent_id}),
                                by_id[r.finding_id])
                               for r in plan_subreviews(merged, self.rules, flags, depth,
                                                        self.config.subreview_max_depth, parent or "")])

    def queue_subreviews(self, planned: list[tuple[SubreviewRequest, Finding]]) -> None:
        self.pending += planned  # claimed together once the files queued now are done (see drain)

    def subreview(self, request: SubreviewRequest, finding: Finding) -> None:
        """One deterministic sub-reviewer, as :func:`swarm_tasks.review.swarm.subreviewer_program` runs it."""
        index = shared_index(self.root, self.job)
        if finding.file not in index.files:
            extra = describe_file(self.root, finding.file, self.config, origin=finding.origin, package=finding.package)
            if isinstance(extra, SourceFile):
                index = index.including(extra)
        outcome = run_subreviewer(request, finding, index)
        capped = cap_findings(outcome.new_findings, self.config)
        if capped.cut:
            self.cuts.append(f"{request.reviewer} sub-reviewer of {finding.file}:{finding.start_line}: "
                             f"{capped.reason()}")
        self.findings += [outcome.finding, *capped.findings]
        self.run(agent_id=request.agent_id, role=AgentRole.SUBREVIEWER, kind=request.reviewer.value,
                 file=request.file, parent_agent_id=request.parent_agent_id, findings=len(capped.findings),
                 summary=outcome.summary[:300], status="stopped" if capped.cut else "done",
                 reason=capped.reason() or "")
        self.queue_subreviews([(follow, outcome.finding if follow.finding_id == outcome.finding.id else next(
            (f for f in capped.findings if f.id == follow.finding_id), outcome.finding))
            for follow in outcome.follow_ups])
        self.plan_subreviews(capped.findings, {}, request.depth + 1, request.agent_id)

    def result(self) -> ProgramResult:
        findings = self.findings
        reason = "; ".join(self.cuts[:5]) + (f"; and {len(self.cuts) - 5} more" if len(self.cuts) > 5 else "")
        if self.cancelled:
            reason = "; ".join(r for r in ("the run was cancelled: its files not yet taken on were left", reason) if r)
        return ProgramResult(
            status=AgentStatus.CANCELLED if self.cancelled else AgentStatus.STOPPED if self.cuts else AgentStatus.DONE,
            reason=reason or None,
            result={"scanned": self.scanned, "scans": self.scans,
                    "findings": [f.model_dump(mode="json") for f in findings],
                    "runs": [r.model_dump(mode="json", exclude_defaults=True) for r in self.runs]},
            children=self.children, events=finding_events(findings, self.me), counters=finding_counters(findings))


def file_child(inp: FileInput) -> ChildRequest:
    """The scan agent a file gets when its work raised inside a group (a dependency's keeps its key)."""
    return scan_request(inp.path) if inp.depth == 0 else dependency_scan(inp)


def split_group(group: FileGroup, home: list[str], others: list[list[str]], why: str) -> ProgramResult:
    """One scan agent per file of a group whose turn never finished (its own files but those another group
    took on, and the others' it had taken on), so a file that kills or hangs its worker fails alone."""
    own = [p for p, won in zip(home, group.claim([f"scan:{p}" for p in home]), strict=True) if won]
    theirs = [p for paths in others for p in paths]
    held = group.pctx.state.redis.hmget(group.pctx.state.keys.work_claims(), [f"scan:{p}" for p in theirs]) \
        if theirs else []
    helped = [p for p, by in zip(theirs, held, strict=True) if by is not None and by.decode() == group.me]
    paths = own + helped
    return ProgramResult(result={"scanned": [], "scans": [], "findings": [], "runs": [], "split": paths,
                                 "why": why}, children=[scan_request(p) for p in paths])


def other_groups(inventory: Inventory, data: dict[str, object], home: list[str]) -> list[list[str]]:
    """The other groups' files, dealt again as the inventory dealt them (nearest next first); none if this
    process's inventory deals them differently."""
    index, count = data.get("group"), data.get("groups")
    if not isinstance(index, int) or not isinstance(count, int) or count < 1:
        return []
    dealt = [[f.path for f in g] for g in deal(inventory.to_scan(), count)]
    if index >= len(dealt) or dealt[index] != home:
        return []
    return [dealt[(index + k) % count] for k in range(1, count)]


def group_program(pctx: ProgramContext) -> ProgramResult:
    """Review a group of files whole (see the module's docstring)."""
    job, root, inventory = context_of(pctx)
    data = pctx.agent.input if isinstance(pctx.agent.input, dict) else {}
    home = [str(p) for p in data.get("paths") or []]
    others = other_groups(inventory, data, home)
    agent = pctx.agent
    group = FileGroup(pctx, job, root, inventory)
    if agent.attempts > 1 and not (agent.last_error or "").startswith(STOP_SIGNAL):
        why = agent.last_error or "its worker died or hung"
        return split_group(group, home, others, f"an earlier try of this group did not finish ({why}): each "
                                                "file gets its own scan agent")
    group.review(home, others)
    return group.result()
