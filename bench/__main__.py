"""Command line: ``python -m bench <name|all> [--full] [--json-only] [--out DIR]``, and
``python -m bench publish`` (the README's table rebuilt from the result files, see ``bench.publish``).

Benchmark modules are imported only when asked for, so a missing or broken one does not stop the
others. Exit status: 0 when every requested benchmark ran, 1 when one failed, 2 when one is not
implemented yet. Goals missed are reported in the table, not by the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import BENCHMARKS
from bench.common import RESULTS_DIR, BenchResult, Row, machine_info, markdown_table, render, write_json, write_result
from bench.publish import PublishError, publish

# The acceptance bound of a default `python -m bench all` (issue 23): a quick look stays under ten minutes.
ALL_DEFAULT_BOUND_S = 600.0

NOT_IMPLEMENTED = 2
FAILED = 1


def module_name(name: str) -> str:
    """The module of a benchmark (``build-cost`` is ``bench/build_cost.py``)."""
    return f"bench.{name.replace('-', '_')}"


def available(name: str) -> bool:
    return importlib.util.find_spec(module_name(name)) is not None


def run_one(name: str, full: bool) -> BenchResult:
    module = importlib.import_module(module_name(name))
    result = module.run(full)
    if not isinstance(result, BenchResult):
        raise TypeError(f"bench.{name}.run returned {type(result).__name__}, not BenchResult")
    return result


def timing(elapsed: dict[str, float], full: bool) -> BenchResult:
    """How long `all` took, benchmark by benchmark: the default run's total is judged against its bound."""
    total = sum(elapsed.values())
    rows = [Row(f"wall time of {name}", seconds, "s") for name, seconds in elapsed.items()]
    if full:
        rows.append(Row("wall time of bench all --full", total, "s"))
    else:
        rows.append(Row("wall time of bench all (default sizes)", total, "s", goal=f"<= {ALL_DEFAULT_BOUND_S:.0f} s",
                        goal_met=total <= ALL_DEFAULT_BOUND_S))
    return BenchResult("timing-full" if full else "timing", rows, machine_info(), {"full": full},
                       ["Each benchmark's wall time in one `python -m bench all` run, set-up included."],
                       command="python -m bench all" + (" --full" if full else ""), full=full, elapsed_s=total)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run swarm-tasks benchmarks.")
    parser.add_argument("name", choices=[*BENCHMARKS, "all", "publish"],
                        help="benchmark to run, or all; publish rewrites README.md's table from the results")
    parser.add_argument("--full", action="store_true", help="the long version (bigger sizes, longer windows)")
    parser.add_argument("--json-only", action="store_true",
                        help="print only the result JSON on stdout (no table); progress stays on stderr")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help=f"results directory (default {RESULTS_DIR})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    opts = _parser().parse_args(argv)
    if opts.name == "publish":
        try:
            path = publish(BENCHMARKS, optional=("timing", "timing-full"), directory=opts.out)
        except PublishError as exc:
            print(f"publish: {exc}", file=sys.stderr)
            return FAILED
        print(f"publish: rewrote the benchmark table in {path}")
        return 0
    names = list(BENCHMARKS) if opts.name == "all" else [opts.name]
    results: list[BenchResult] = []
    elapsed: dict[str, float] = {}
    status = 0
    for name in names:
        if not available(name):
            print(f"{name}: not implemented yet (no module {module_name(name)})", file=sys.stderr)
            if opts.name != "all":  # `all` runs whatever exists; asking for a missing one is an error
                status = max(status, NOT_IMPLEMENTED)
            continue
        began = time.monotonic()
        load_at_start = [round(x, 2) for x in os.getloadavg()]  # a benchmark reads the load itself, often as it ends
        try:
            result = run_one(name, opts.full)
            result.machine["load_at_start"] = load_at_start
            elapsed[name] = result.elapsed_s = round(time.monotonic() - began, 1)
            result.full = opts.full
            result.command = f"python -m bench {opts.name}" + (" --full" if opts.full else "")
        except Exception:
            elapsed[f"{name} (failed)"] = round(time.monotonic() - began, 1)
            print(f"{name}: FAILED\n{traceback.format_exc()}", file=sys.stderr)
            status = max(status, FAILED) if status != NOT_IMPLEMENTED else status
            continue
        path = write_result(result, opts.out)
        results.append(result)
        if not opts.json_only:
            print(render(result) if opts.name != "all" else f"{name}: wrote {path}", flush=True)
    if opts.name == "all":
        results.append(timing(elapsed, opts.full))
        write_result(results[-1], opts.out)
        write_json("all", [r.to_dict() for r in results], opts.out)
        table = "\n\n".join([markdown_table(results), *(t for r in results for t in r.tables)])
        (opts.out / "all.md").write_text(table + "\n")
        if not opts.json_only:
            print(table)
    if opts.json_only:
        payload = [r.to_dict() for r in results] if opts.name == "all" else (
            results[0].to_dict() if results else None)
        print(json.dumps(payload, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
