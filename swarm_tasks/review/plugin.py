"""The review swarm as a workflow plug-in (see :mod:`swarm_tasks.plugins`): runs of kind ``review`` end
by merging one report (:func:`~swarm_tasks.review.workflow.on_idle`); model reviewers get the analyzers
as tools."""

from __future__ import annotations

from swarm_tasks.plugins import Workflow
from swarm_tasks.review.model_agents import REVIEW_TOOLS
from swarm_tasks.review.specs import PROGRAM_MODULES
from swarm_tasks.review.workflow import on_idle, warm_up

WORKFLOW = Workflow(kind="review", on_idle=on_idle, tools=tuple(REVIEW_TOOLS), programs=PROGRAM_MODULES,
                    warm_up=warm_up)
