"""The report as JSON: the whole :class:`Report` model, and back."""

from __future__ import annotations

from swarm_tasks.display import json_inert
from swarm_tasks.review.report import Report


def render_json(report: Report, indent: int | None = 2) -> str:
    """The report as JSON text (stable: the report's lists are already in a stable order)."""
    return json_inert(report.model_dump_json(indent=indent))


def parse_json(text: str | bytes) -> Report:
    """A report from :func:`render_json` output; :class:`ReviewError` if it is not one."""
    return Report.decode(text)
