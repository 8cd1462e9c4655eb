"""The agent specs of a review run: a program (analyzers) or a model agent for each role."""

from __future__ import annotations

from swarm_tasks.agents.spec import AgentKind, AgentSpec, Limits
from swarm_tasks.review.enums import ReviewerKind, SubReviewerKind
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.model_agents import (
    FINDINGS_SCHEMA,
    REVIEWER_INSTRUCTIONS,
    SCAN_INSTRUCTIONS,
    SCAN_SCHEMA,
    SUBREVIEW_SCHEMA,
    SUBREVIEWER_INSTRUCTIONS,
)
from swarm_tasks.review.swarm import (
    BATCH,
    GROUP,
    INVENTORY,
    SCAN,
    analyzer_reviewer_spec,
    reviewer_spec,
    subreviewer_spec,
)

_PROGRAMS = "swarm_tasks.review.swarm"
_HOOKS = "swarm_tasks.review.model_agents"
_GROUP = "swarm_tasks.review.group"
PROGRAM_MODULES = (_PROGRAMS, _HOOKS, _GROUP)  # what the specs below name as programs and hooks
_READ_TOOLS = ("read_file", "grep", "list_files")  # read-only: the workspace is the repository itself
_SHOW = f"{_HOOKS}:show_repository"


def review_specs(job: ReviewJob) -> list[AgentSpec]:
    """Every spec a review may start, for the job's models (a role without a model: its analyzer)."""
    specs = [AgentSpec(name=INVENTORY, role="scanner", kind=AgentKind.PROGRAM, queue="scan",
                       program=f"{_PROGRAMS}:inventory_program", tools=()),
             # Trivial files (a flood of one-liners) are quick-scanned by the analyzers in batches, in every mode.
             AgentSpec(name=BATCH, role="scanner", kind=AgentKind.PROGRAM, queue="scan",
                       program=f"{_PROGRAMS}:batch_program", tools=())]
    if job.mode == "deterministic":  # no model at all: the files in groups, each reviewed whole by one agent
        specs.append(AgentSpec(name=GROUP, role="reviewer", kind=AgentKind.PROGRAM, queue="scan",
                               program=f"{_GROUP}:group_program", tools=()))
    scanner = job.model_for("scanner")
    if scanner:
        specs.append(AgentSpec(name=SCAN, role="scanner", model=scanner, queue="scan",
                               instructions=SCAN_INSTRUCTIONS, tools=("finish", "scan_file", *_READ_TOOLS),
                               result_schema=SCAN_SCHEMA, on_finish=f"{_HOOKS}:after_scan", prepare=_SHOW,
                               limits=Limits(max_turns=8)))
    else:
        specs.append(AgentSpec(name=SCAN, role="scanner", kind=AgentKind.PROGRAM, queue="scan",
                               program=f"{_PROGRAMS}:scan_program", tools=()))
    reviewer = job.model_for("reviewer")
    for kind in ReviewerKind:
        if reviewer:
            specs.append(AgentSpec(name=reviewer_spec(kind), role="reviewer", model=reviewer, queue="review",
                                   instructions=REVIEWER_INSTRUCTIONS.format(kind=kind.value),
                                   tools=("finish", "run_analyzer", *_READ_TOOLS), result_schema=FINDINGS_SCHEMA,
                                   on_finish=f"{_HOOKS}:after_review", prepare=_SHOW, limits=Limits(max_turns=20)))
            # files the analyzers cover whole (flagged only as undocumented: scan.analyzers_suffice)
            specs.append(AgentSpec(name=analyzer_reviewer_spec(kind), role="reviewer", kind=AgentKind.PROGRAM,
                                   queue="review", program=f"{_PROGRAMS}:reviewer_program", tools=()))
        else:
            specs.append(AgentSpec(name=reviewer_spec(kind), role="reviewer", kind=AgentKind.PROGRAM, queue="review",
                                   program=f"{_PROGRAMS}:reviewer_program", tools=()))
    sub = job.model_for("subreviewer")
    for sub_kind in SubReviewerKind:
        if sub:
            specs.append(AgentSpec(name=subreviewer_spec(sub_kind.value), role="subreviewer", model=sub,
                                   queue="review", instructions=SUBREVIEWER_INSTRUCTIONS.format(kind=sub_kind.value),
                                   tools=("finish", "trace_finding", *_READ_TOOLS), result_schema=SUBREVIEW_SCHEMA,
                                   on_finish=f"{_HOOKS}:after_subreview", prepare=_SHOW, limits=Limits(max_turns=20)))
        else:
            specs.append(AgentSpec(name=subreviewer_spec(sub_kind.value), role="subreviewer", kind=AgentKind.PROGRAM,
                                   queue="review", program=f"{_PROGRAMS}:subreviewer_program", tools=()))
    return specs
