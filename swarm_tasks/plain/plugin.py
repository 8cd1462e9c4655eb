"""The plain agent run as a workflow plug-in (see :mod:`swarm_tasks.plugins`): its runs use the agent
runtime's own tools only, and end through :func:`~swarm_tasks.plain.ending.on_idle`."""

from __future__ import annotations

from swarm_tasks.plain.ending import on_idle
from swarm_tasks.plugins import Workflow

WORKFLOW = Workflow(kind="agents", on_idle=on_idle)
