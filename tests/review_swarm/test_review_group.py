"""A review without models reviews its files in groups, one agent each (swarm_tasks.review.group): a file
whose work raises gets an agent of its own; a group whose turn was lost (its worker died, hung or lost Redis)
splits into one scan agent per file, so that a file that kills or hangs its worker fails alone; one stopped
by a signal (a worker's warm shutdown) is tried whole again. Each time the report is the serial review's."""

from __future__ import annotations

from swarm_tasks.agents.turn import Turn
from swarm_tasks.errors import StoppedBySignal
from swarm_tasks.review.enums import ReviewerKind
from swarm_tasks.review.group import CLAIM_FILES, FileGroup
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.swarm import GROUP, FileInput
from swarm_tasks.review.workflow import load_report, on_idle, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.sources import SourceSpec
from tests.review.helpers import EXAMPLE

FAILING = "shop/db.py"


def review(local):
    run = submit_review(local.services, ReviewJob(source=SourceSpec(location=str(EXAMPLE))))
    local.drain(max_steps=2000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    assert record.status is RunStatus.COMPLETED, record.reason
    report = load_report(local.services, run.id)
    reference = review_locally(EXAMPLE)
    assert {(f.file, f.start_line, f.rule, f.severity) for f in report.findings} == {
        (f.file, f.start_line, f.rule, f.severity) for f in reference.findings}
    assert {r.path for r in report.reviewed} == {r.path for r in reference.reviewed}
    return report, [a for a in report.agents if not a.inside_agent_id]


def test_a_file_whose_work_raised_in_its_group_gets_an_agent_of_its_own(local, monkeypatch):
    work = FileGroup.scan_file
    raised: list[str] = []

    def flaky(self: FileGroup, inp: FileInput, scanned: list) -> None:
        if inp.path == FAILING and inp.depth == 0 and not raised:
            raised.append(inp.path)
            self.runs.append(self.runs[-1] if self.runs else None)  # half done: forgotten with the rest
            raise ValueError("a bug on odd input")
        work(self, inp, scanned)

    monkeypatch.setattr(FileGroup, "scan_file", flaky)
    _report, own = review(local)
    assert raised == [FAILING]
    groups = {a.agent_id for a in own if a.kind == "group"}
    # its own scan agent (whose dependency scans are agents too), and its reviewers
    assert [a.file for a in own if a.kind == "scan" and a.parent_agent_id in groups] == [FAILING]
    assert sorted(a.kind for a in own if a.file == FAILING and a.role.value == "reviewer") == sorted(
        k.value for k in ReviewerKind)


def test_a_group_whose_turn_was_lost_gives_each_of_its_files_a_scan_agent(local, monkeypatch):
    run_program = Turn.run_program
    lost: list[str] = []
    held: list[str] = []

    def lose_once(self: Turn, record: object) -> None:
        if self.spec.name == GROUP and FAILING in self.agent.input["paths"] and not lost:
            lost.append(self.agent.id)
            # what its first try had claimed before its worker lost Redis: its first files
            held.extend(self.agent.input["paths"][:CLAIM_FILES])
            self.ctx.state.redis.hset(self.ctx.state.keys.work_claims(),
                                      mapping={f"scan:{p}": self.agent.id for p in held})
            raise ConnectionError("the worker lost Redis mid-turn")  # the turn is not recorded, and redone
        run_program(self, record)

    monkeypatch.setattr(Turn, "run_program", lose_once)
    report, own = review(local)
    group = next(a for a in own if a.agent_id == lost[0])
    assert "did not finish (ConnectionError: the worker lost Redis mid-turn)" in group.summary
    split = sorted(a.file for a in own if a.kind == "scan" and a.parent_agent_id == group.agent_id)
    assert set(held) <= set(split)  # each file it held: a scan agent (the others' helpers took the rest)
    assert not any(a.inside_agent_id == group.agent_id for a in report.agents)


def test_a_group_stopped_by_a_signal_is_tried_whole_again(local, monkeypatch):
    run_program = Turn.run_program
    stopped: list[str] = []

    def stop_once(self: Turn, record: object) -> None:
        if self.spec.name == GROUP and FAILING in self.agent.input["paths"] and not stopped:
            stopped.append(self.agent.id)
            raise StoppedBySignal("ruff was stopped by SIGTERM")
        run_program(self, record)

    monkeypatch.setattr(Turn, "run_program", stop_once)
    _report, own = review(local)
    assert stopped and not any(a.kind == "scan" for a in own)  # no split: its files reviewed inside groups
    group = next(a for a in own if a.agent_id == stopped[0])
    assert group.status == "done" and "did not finish" not in group.summary
