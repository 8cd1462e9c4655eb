"""The build swarm as a workflow plug-in (see :mod:`swarm_tasks.plugins`): runs of kind ``build`` go
through cycles of planning, work and judging (:func:`~swarm_tasks.builder.workflow.on_idle`); its agents get
the task board, check, push and rebase tools."""

from __future__ import annotations

from swarm_tasks.builder.specs import PROGRAM_MODULES
from swarm_tasks.builder.tools import BUILD_TOOLS
from swarm_tasks.builder.workflow import on_idle
from swarm_tasks.plugins import Workflow

WORKFLOW = Workflow(kind="build", on_idle=on_idle, tools=BUILD_TOOLS, programs=PROGRAM_MODULES)
