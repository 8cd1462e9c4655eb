"""No lock anywhere: coordination is by compare-and-set only. Scans the source for lock primitives.

The one exception is the benchmark's explicit lock baseline (what CAS is compared against), allowed by
path below and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("coordination", "swarm_tasks", "bench")
# The claim benchmark's "lock" mode is the baseline the CAS board is measured against: the one place
# a lock may be taken. Allowed by path, and only as many lines as the baseline needs.
ALLOWED: dict[str, int] = {"bench/coordination.py": 1}

FORBIDDEN: dict[str, re.Pattern[str]] = {
    "SETNX": re.compile(r"\bsetnx\b", re.IGNORECASE),
    "SET ... NX (redis-py keyword)": re.compile(r"\bnx\s*=\s*True\b"),
    "SET ... NX (raw command or Lua)": re.compile(r"""['"]SET['"][^\n]*['"]NX['"]""", re.IGNORECASE),
    "redis-py Lock": re.compile(r"\bredis(\.asyncio)?\.lock\b|from\s+redis[\w.]*\s+import\s+[^\n]*\bLock\b"),
    ".lock( call": re.compile(r"\.lock\("),
    "Redlock": re.compile(r"redlock", re.IGNORECASE),
}


def _sources() -> list[Path]:
    files: list[Path] = []
    for top in SCANNED:
        base = ROOT / top
        if base.is_dir():
            files += [p for p in base.rglob("*") if p.suffix in (".py", ".lua") and p.is_file()]
    return sorted(files)


def _violations(text: str) -> list[str]:
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name, pattern in FORBIDDEN.items():
            if pattern.search(line):
                found.append(f"{lineno}: {name}: {line.strip()}")
    return found


def test_no_lock_primitive_in_the_source() -> None:
    files = _sources()
    assert any(p.parts[-2] == "coordination" and p.name == "store.py" for p in files), "scanned nothing?"
    problems: list[str] = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        found = _violations(path.read_text(errors="replace"))
        lines = {v.split(":", 1)[0] for v in found}
        if len(lines) <= ALLOWED.get(rel, 0):
            continue
        problems += [f"{rel}:{v}" for v in found]
    assert problems == [], "locks are not allowed (use versioned records and CAS):\n" + "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "client.setnx('lock:x', 1)",
    "redis.call('SETNX', KEYS[1], 1)",
    "client.set('lock', token, nx=True, px=3000)",
    "redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 30000)",
    "from redis.lock import Lock",
    "from redis import Redis, Lock",
    "lock = redis.lock.Lock(client, 'name')",
    "with client.lock('name', timeout=5):",
    "from pottery import Redlock",
])
def test_the_scanner_catches_locks(snippet: str) -> None:
    assert _violations(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "coordinated without locks: compare-and-set only",
    "redis.call('SET', k, a[2])",
    "client.set('k', 'v', xx=True)",
    "import threading  # in-process state only",
])
def test_the_scanner_passes_lock_free_code(snippet: str) -> None:
    assert _violations(snippet) == []


def test_the_allowance_is_one_baseline_in_bench() -> None:
    # Widening this list needs a reason: the product itself must never lock.
    assert all(path.startswith("bench/") for path in ALLOWED)
    assert sum(ALLOWED.values()) == 1
