"""The outcome model: how a tally of agents and left-out work becomes completed, partial or failed,
and the reason sentence a user reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.outcome import MAX_PROBLEMS, ReasonClass, RunStatus, Tally, decide


@dataclass
class Agent:
    id: str
    role: str
    status: AgentStatus
    reason: str | None = None
    reason_class: ReasonClass | None = None
    spec: str = "review.scan"
    labels: dict[str, str] = field(default_factory=dict)
    model: str | None = None


AUTH = "the model openai/gpt-5.2 was refused (401 authentication): set OPENAI_API_KEY"


def scanners(done: int, failed: int) -> list[Agent]:
    out = [Agent(f"d{i}", "scanner", AgentStatus.DONE) for i in range(done)]
    out += [Agent(f"f{i}", "scanner", AgentStatus.FAILED, AUTH, ReasonClass.AUTH, labels={"file": f"src/{i}.py"},
                  model="openai/gpt-5.2") for i in range(failed)]
    return out


def test_every_agent_finished_is_completed_without_a_reason():
    outcome = decide(Tally().add_all(scanners(4, 0)), useful=True)
    assert outcome.status is RunStatus.COMPLETED and outcome.reason is None
    assert outcome.agents == {"done": 4} and outcome.problems == [] and outcome.complete


def test_some_failed_is_partial_with_counts_by_class_and_an_actionable_reason():
    outcome = decide(Tally().add_all(scanners(1, 13)), useful=True)
    assert outcome.status is RunStatus.PARTIAL
    assert outcome.reason == f"13 of 14 scanners failed: {AUTH}"
    assert outcome.failed == {"auth": 13} and outcome.roles == {"scanner": {"done": 1, "failed": 13}}
    assert outcome.problems_total == 13 and outcome.problems[0].subject == "src/0.py"


def test_nothing_useful_is_failed_and_says_why():
    outcome = decide(Tally().add_all(scanners(0, 3)), useful=False)
    assert outcome.status is RunStatus.FAILED and outcome.reason == f"3 of 3 scanners failed: {AUTH}"
    assert decide(Tally(), useful=False).reason == "nothing useful was done"


def test_a_workflow_failure_wins_and_keeps_the_detail():
    outcome = decide(Tally().add_all(scanners(2, 1)), useful=True, failure="the planner failed")
    assert outcome.status is RunStatus.FAILED and outcome.reason.startswith("the planner failed; 1 of 3 scanners")


def test_stopped_groups_left_out_work_and_refusals_all_make_it_partial():
    agents = [Agent("r1", "reviewer", AgentStatus.STOPPED, "loop detected: the same call ...", ReasonClass.LOOP),
              Agent("r2", "reviewer", AgentStatus.STOPPED, "loop detected: the same call ...", ReasonClass.LOOP),
              Agent("r3", "reviewer", AgentStatus.DONE),
              Agent("c1", "reviewer", AgentStatus.CANCELLED, "run cancelled")]
    tally = Tally().add_all(agents)
    for n in range(8):
        tally.leave_out(f"src/f{n}.py", "not scanned (agent cap)")
    tally.refuse(8)
    outcome = decide(tally, useful=True)
    assert outcome.status is RunStatus.PARTIAL
    assert outcome.stopped == {"loop": 2, "cancelled": 1, "run_cap": 8} and outcome.refused == 8
    assert outcome.reason.startswith("2 of 4 reviewers were stopped: loop detected: the same call ...; "
                                     "1 of 4 reviewers was cancelled: run cancelled; ")
    assert outcome.reason.endswith("8 item(s) of work left out, not scanned (agent cap): src/f0.py, src/f1.py, "
                                   "src/f2.py, src/f3.py, src/f4.py and 3 more")
    assert outcome.left_out[0] == "src/f0.py: not scanned (agent cap)"
    assert outcome.left_out_total == 8 and len(outcome.left_out) == 8


def test_old_records_without_a_class_are_classified_from_their_text():
    agents = [Agent("a", "agent", AgentStatus.STOPPED, "loop detected: x"),
              Agent("b", "agent", AgentStatus.STOPPED, "run budget exceeded: cost_usd used 1 of 1"),
              Agent("c", "agent", AgentStatus.STOPPED, "agent budget exceeded: turns used 3 of 3"),
              Agent("d", "agent", AgentStatus.FAILED, "something")]
    outcome = decide(Tally().add_all(agents), useful=True)
    assert outcome.stopped == {"loop": 1, "cost_cap": 1, "budget": 1} and outcome.failed == {"agent_error": 1}


def test_problems_are_capped_but_counted_and_the_reason_stays_short():
    outcome = decide(Tally().add_all(scanners(0, 3 * MAX_PROBLEMS)), useful=True)
    assert len(outcome.problems) == MAX_PROBLEMS and outcome.problems_total == 3 * MAX_PROBLEMS
    assert len(outcome.reason) < 300


def test_left_out_work_may_say_what_and_why_in_one_string():
    tally = Tally()
    tally.leave_out("task t-1 failed: the check failed")
    tally.leave_out("task t-2 failed: the push was refused")
    outcome = decide(tally, useful=True)
    assert outcome.status is RunStatus.PARTIAL and outcome.left_out == ["task t-1 failed: the check failed",
                                                                         "task t-2 failed: the push was refused"]
    assert outcome.reason == ("2 item(s) of work left out: task t-1 failed: the check failed, "
                              "task t-2 failed: the push was refused")
