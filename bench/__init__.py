"""Benchmarks of swarm-tasks: ``python -m bench <name> [--full] [--json-only]``.

Each benchmark is a module ``bench/<name>.py`` with ``run(full: bool) -> BenchResult``; see README.md.
"""

BENCHMARKS = ("coordination", "agents", "git", "review", "faults", "dispatch", "scale", "build-cost")

__all__ = ["BENCHMARKS"]
