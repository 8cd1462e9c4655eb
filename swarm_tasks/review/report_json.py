"""The report as JSON: the whole :class:`Report` model, and back; an earlier report as a baseline."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.display import json_inert
from swarm_tasks.errors import JobSpecError, ReviewError
from swarm_tasks.review.report import Report


def render_json(report: Report, indent: int | None = 2) -> str:
    """The report as JSON text (stable: the report's lists are already in a stable order)."""
    return json_inert(report.model_dump_json(indent=indent))


def parse_json(text: str | bytes) -> Report:
    """A report from :func:`render_json` output; :class:`ReviewError` if it is not one."""
    return Report.decode(text)


def baseline_fingerprints(path: Path) -> tuple[str, ...]:
    """The fingerprints of every finding (every occurrence of aggregated ones) in an earlier JSON report.
    :class:`JobSpecError` (bad input) for a file that is not a report, or one made before reports had
    fingerprints."""
    try:
        report = parse_json(path.read_bytes())
    except OSError as exc:
        raise JobSpecError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    except ReviewError as exc:
        raise JobSpecError(f"baseline {path} is not a review report.json: {exc}") from None
    prints = {f.fingerprint for f in report.findings} | {
        o.fingerprint for f in report.findings for o in f.occurrences}
    prints.discard("")
    if report.findings and not prints:
        raise JobSpecError(f"baseline {path} has no finding fingerprints (made by an older version): "
                          "review once without --baseline and use that report")
    return tuple(sorted(prints))
