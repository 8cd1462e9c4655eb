"""``python -m bench publish``: the README's benchmark table, rebuilt from ``bench/results/*.json``.

Benchmarks are often run one at a time (a long ``--full`` run of one, after a change to it), so the
published table is assembled from each benchmark's own latest result file, never typed by hand: each
row is exactly what its run printed, and under the table one line per benchmark says which command
produced it, when, at what load and in how long, so numbers from different days or loads are never
passed off as one run. Only the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` is
replaced; the reading of the numbers lives outside those markers, written by people.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.common import RESULTS_DIR, BenchResult, markdown_table

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
# A per-run table (the fault runs: 50 lines) belongs in the result file, not in the README.
MAX_TABLE_LINES = 15
README = Path(__file__).resolve().parent.parent / "README.md"


class PublishError(RuntimeError):
    """The README has no place for the table, or a result file cannot be read."""


def load_results(names: Sequence[str], directory: Path = RESULTS_DIR) -> tuple[list[BenchResult], list[str]]:
    """The latest result of each named benchmark that has one, in the given order, and the names without."""
    results: list[BenchResult] = []
    missing: list[str] = []
    for name in names:
        path = directory / f"{name}.json"
        if not path.exists():
            missing.append(name)
            continue
        try:
            results.append(BenchResult.from_dict(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError) as exc:
            raise PublishError(f"{path}: not a benchmark result ({exc})") from exc
    return results, missing


def provenance(result: BenchResult) -> str:
    """Where a benchmark's rows come from: command, date, machine, load (at the start where recorded), time taken."""
    m = result.machine
    command = result.command or f"python -m bench {result.name}" + (" --full" if result.full else "")
    size = " (size not recorded: run before results said)" if result.full is None and not result.command else ""
    start, load = m.get("load_at_start"), m.get("load_average")  # load_average: read by the benchmark as it ran
    if isinstance(start, list) and start:
        load_text = f"load {start[0]} at the start"
    elif isinstance(load, list) and load:
        load_text = f"load {load[0]} during the run"
    else:
        load_text = "load unknown"
    took = "" if result.elapsed_s is None else f", took {result.elapsed_s / 60:.1f} min"
    return (f"- **{result.name}**: `{command}`{size} on {str(m.get('date', '?'))[:16].replace('T', ' ')} UTC, "
            f"{m.get('cores')} cores, {load_text}{took}")


def section(results: Sequence[BenchResult], missing: Sequence[str]) -> str:
    """The generated block: the table, each benchmark's extra tables, and where every row comes from."""
    parts = [markdown_table(results)]
    long_tables: list[str] = []
    for result in results:
        for table in result.tables:
            if table.count("\n") < MAX_TABLE_LINES:
                parts.append(table)
            elif result.name not in long_tables:
                long_tables.append(result.name)
    lines = ["Where each benchmark's rows come from (rebuilt by `python -m bench publish` from "
             "`bench/results/`):", ""]
    lines += [provenance(result) for result in results]
    lines += [f"- **{name}**: no result yet" for name in missing]
    lines += [f"- the per-run table of **{name}** is in `bench/results/{name}.json` (too long for here)"
              for name in long_tables]
    parts.append("\n".join(lines))
    return "\n\n".join(parts)


def replace_section(text: str, body: str) -> str:
    """``text`` with everything between the markers replaced by ``body``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise PublishError(f"no {START} ... {END} block to replace")
    return f"{text[:start + len(START)]}\n{body}\n\n{text[end:]}"


def publish(names: Sequence[str], *, optional: Sequence[str] = (), readme: Path = README,
            directory: Path = RESULTS_DIR) -> Path:
    """Rewrite the README's benchmark block from the result files of ``names`` (each said missing when it
    has none) and of ``optional`` (left out when it has none); returns the README's path."""
    results, missing = load_results(names, directory)
    results += load_results(optional, directory)[0]
    readme.write_text(replace_section(readme.read_text(), section(results, missing)))
    return readme
