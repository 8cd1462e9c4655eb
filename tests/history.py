"""Histories of operations on one versioned register, and a linearizability checker for them.

Each client process records what it asked (invoke) and what it was told (ok, fail, or nothing: an op
whose reply was lost is *unknown*, maybe applied) as JSON lines; :func:`load_history` merges the
files. :func:`check_history` then proves or refutes linearizability with a Wing & Gong / Lowe search
(WGL: just-in-time linearization over the real-time partial order, memoized on the set of linearized
ops and the register state); unknown ops may take effect at any point after their invocation, or
never. Cheap O(n log n) checks of the version sequence run first and name the anomaly when they can.

The register holds ``(value, version)``, absent is ``(None, 0)``; a successful write moves it to
``version + 1``. A CAS names the version it expects (0: create if absent).
"""

from __future__ import annotations

import json
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

State = tuple[str | None, int]
INITIAL: State = (None, 0)
_NEVER = 2**63  # completion time of an op that never completed: concurrent with everything after it


class OpKind(StrEnum):
    READ = "read"
    CAS = "cas"
    WRITE = "write"  # unconditional


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "fail"  # definitely not applied
    UNKNOWN = "unknown"  # reply lost: maybe applied, at any time after the invocation


@dataclass(frozen=True, slots=True)
class Operation:
    """One op as seen by its client.

    ``value``/``version``: for a read, what it returned; for an ok write, the value written and the
    new version; for a failed CAS, the version found (if the reply said); for an unknown write, the
    value it tried to write. ``expected`` is the version a CAS named.
    """

    process: str
    index: int
    kind: OpKind
    outcome: Outcome
    invoke_ns: int
    complete_ns: int | None = None
    expected: int | None = None
    value: str | None = None
    version: int | None = None

    @property
    def name(self) -> str:
        return f"{self.process}#{self.index}"

    def describe(self) -> str:
        what = {OpKind.READ: "read", OpKind.WRITE: f"write({self.value!r})",
                OpKind.CAS: f"cas(expected={self.expected}, {self.value!r})"}[self.kind]
        seen = "" if self.version is None else f" -> version {self.version}"
        if self.kind is OpKind.READ and self.outcome is Outcome.OK:
            seen = f" -> ({self.value!r}, {self.version})"
        return f"{self.name} {what} {self.outcome.value}{seen}"


# -- recording ------------------------------------------------------------------------------------

class HistoryRecorder:
    """Appends one process's invocations and completions to a JSONL file, flushed line by line
    so a process killed mid-op still leaves its invocation (which then reads as unknown)."""

    def __init__(self, path: Path, process: str, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.path = path
        self.process = process
        self.clock = clock
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._next = 0

    def invoke(self, kind: OpKind, *, expected: int | None = None, value: str | None = None) -> int:
        index, self._next = self._next, self._next + 1
        self._line({"type": "invoke", "f": kind.value, "i": index, "expected": expected, "value": value})
        return index

    def complete(self, index: int, outcome: Outcome, *, value: str | None = None,
                 version: int | None = None) -> None:
        self._line({"type": outcome.value, "i": index, "value": value, "version": version})

    def _line(self, record: dict[str, Any]) -> None:
        record["p"] = self.process
        record["t"] = self.clock()  # taken last: an invocation is stamped before the call is sent
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> HistoryRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_history(paths: Iterable[Path]) -> list[Operation]:
    """Merge recorder files into operations; an invocation without a completion is unknown."""
    invokes: dict[tuple[str, int], dict[str, Any]] = {}
    ends: dict[tuple[str, int], dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                (invokes if rec["type"] == "invoke" else ends)[(rec["p"], rec["i"])] = rec
    ops: list[Operation] = []
    for key, inv in invokes.items():
        end = ends.get(key, {"type": Outcome.UNKNOWN.value})
        outcome = Outcome(end["type"])
        done = outcome is not Outcome.UNKNOWN
        kind = OpKind(inv["f"])
        ops.append(Operation(
            process=key[0], index=key[1], kind=kind, outcome=outcome, invoke_ns=inv["t"],
            complete_ns=end["t"] if done else None, expected=inv["expected"],
            value=end["value"] if done and kind is OpKind.READ else inv["value"],
            version=end["version"] if done else None))
    return sorted(ops, key=lambda op: (op.invoke_ns, op.process, op.index))


# -- checking ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CheckResult:
    """Verdict on a history: ``ok`` only if a linearization was found and no cheap check failed."""

    ok: bool
    ops: int
    unknown: int
    explored: int
    problems: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        verdict = "linearizable" if self.ok else "NOT linearizable"
        lines = [f"{verdict}: {self.ops} ops ({self.unknown} unknown), {self.explored} search steps"]
        return "\n  ".join(lines + list(self.problems))


def _relevant(ops: Sequence[Operation]) -> list[Operation]:
    """Drop what changes and constrains nothing: failed reads and writes, unanswered reads.
    A failed CAS stays: it says the register was not at the version it named."""
    def keep(op: Operation) -> bool:
        if op.kind is OpKind.READ:
            return op.outcome is Outcome.OK
        return op.outcome is not Outcome.FAIL or op.kind is OpKind.CAS
    return [op for op in ops if keep(op)]


def _observed(op: Operation) -> int | None:
    """The version the register had (read, failed CAS) or got (ok write) at the op's linearization."""
    return op.version if op.outcome is not Outcome.UNKNOWN else None


def check_versions(ops: Sequence[Operation]) -> list[str]:
    """The cheap checks: each version written once, none skipped, reads return written values, and
    versions never go back in real time. Necessary, not sufficient: :func:`check_linearizable` is."""
    problems: list[str] = []
    written: dict[int, Operation] = {}
    maybe: dict[int, set[str | None]] = {0: {None}}
    anywhere: set[str | None] = set()  # values of unknown blind writes: they may land at any version
    for op in ops:
        if op.kind is OpKind.READ or op.outcome is Outcome.FAIL:
            continue
        if op.kind is OpKind.CAS and op.expected is not None:
            target = op.expected + 1
        elif op.version is None:
            anywhere.add(op.value)
            continue
        else:
            target = op.version
        if op.outcome is Outcome.OK:
            if op.version != target:
                problems.append(f"{op.describe()}: a CAS of version {op.expected} must produce {target}")
            if op.version in written:
                problems.append(f"lost update: version {op.version} written twice, by "
                                f"{written[op.version].describe()} and {op.describe()}")
            written.setdefault(op.version or 0, op)
        maybe.setdefault(target, set()).add(op.value)
    top = max((v for op in ops if (v := _observed(op)) is not None), default=0)
    gaps = [v for v in range(1, top + 1) if v not in maybe]
    if gaps and not anywhere:
        problems.append(f"versions {gaps[:10]} were observed to pass but no write produced them")
    for op in ops:
        if (op.kind is OpKind.READ and op.outcome is Outcome.OK and op.value not in anywhere
                and op.value not in maybe.get(op.version or 0, ())):
            problems.append(f"phantom read: {op.describe()} returned a value no write produced at that version")
    problems += _real_time_problems(ops)
    return problems


def _real_time_problems(ops: Sequence[Operation]) -> list[str]:
    # Sweep by invocation; `best` is the op with the highest observed version among those that
    # completed strictly before the current invocation.
    done = sorted((op for op in ops if op.complete_ns is not None and _observed(op) is not None),
                  key=lambda o: o.complete_ns or 0)
    times = [op.complete_ns or 0 for op in done]
    problems: list[str] = []
    best: Operation | None = None
    seen = 0
    for op in sorted(ops, key=lambda o: o.invoke_ns):
        upto = bisect_left(times, op.invoke_ns)
        for prior in done[seen:upto]:
            if best is None or (_observed(prior) or 0) > (_observed(best) or 0):
                best = prior
        seen = max(seen, upto)
        mine = _observed(op)
        if best is None or mine is None:
            continue
        floor = _observed(best) or 0
        writes = op.kind is not OpKind.READ and op.outcome is Outcome.OK
        if mine < floor or (writes and mine == floor):
            problems.append(f"stale: {op.describe()} started after {best.describe()} had completed")
    return problems


def _step(state: State, op: Operation) -> State | None:
    """The register after ``op`` takes effect in ``state``, or None if it cannot take effect there."""
    version = state[1]
    if op.kind is OpKind.READ:
        return state if (op.value, op.version) == state else None
    if op.kind is OpKind.CAS and op.outcome is Outcome.FAIL:
        if version == op.expected or (op.version is not None and op.version != version):
            return None
        return state
    if op.kind is OpKind.CAS and version != op.expected:
        return None  # for an unknown CAS this is "not applied", the same as leaving it out
    if op.outcome is Outcome.OK and op.version is not None and op.version != version + 1:
        return None
    return (op.value, version + 1)


def check_linearizable(ops: Sequence[Operation], *, initial: State = INITIAL,
                       max_steps: int = 5_000_000) -> CheckResult:
    """WGL search for a total order of the ops that respects real time and the register's rules.

    Every ok and failed op must be placed; an unknown op may be placed after its invocation or left
    out. Gives up (not ok) after ``max_steps``: an inconclusive search is never a pass.

    One reduction keeps wide histories tractable: an op that leaves the state as it is (a read, a
    failed CAS) and fits now is placed at once, as a forced move rather than a choice. Any valid
    completion can be rearranged to start with it (it is minimal in real time, as its call comes
    before every pending return, and moving it changes no other op's state), so when the rest fails
    the configuration before it fails too and no alternative needs trying.
    """
    ops = _relevant(ops)
    n = len(ops)
    required = [op.outcome is not Outcome.UNKNOWN for op in ops]
    keeps_state = [op.kind is OpKind.READ or op.outcome is Outcome.FAIL for op in ops]
    # Entries: calls at invocation, returns at completion (unknown: never). At equal times a call
    # sorts first, so ops that touch in time count as concurrent (the lenient reading).
    entries = sorted([(op.invoke_ns, 0, i) for i, op in enumerate(ops)] +
                     [(op.complete_ns if op.complete_ns is not None else _NEVER, 1, i) for i, op in enumerate(ops)])
    node_op = [-1] + [i for _, _, i in entries]
    is_call = [False] + [kind == 0 for _, kind, _ in entries]
    ret_node = [0] * n
    for node in range(1, 2 * n + 1):
        if not is_call[node]:
            ret_node[node_op[node]] = node
    nxt = [*list(range(1, 2 * n + 1)), -1]  # a doubly linked list of entries; node 0 is the head
    prv = [-1, *list(range(0, 2 * n))]

    def lift(node: int) -> None:
        for x in (node, ret_node[node_op[node]]):
            nxt[prv[x]] = nxt[x]
            if nxt[x] != -1:
                prv[nxt[x]] = prv[x]

    def unlift(node: int) -> None:
        for x in (ret_node[node_op[node]], node):
            nxt[prv[x]] = x
            if nxt[x] != -1:
                prv[nxt[x]] = x

    def forced_move(state: State) -> int:
        x = nxt[0]
        while x != -1 and is_call[x]:  # the minimal ops: those invoked before the first pending return
            if keeps_state[node_op[x]] and _step(state, ops[node_op[x]]) is not None:
                return x
            x = nxt[x]
        return -1

    remaining = sum(required)
    state, linearized, steps, best_depth = initial, 0, 0, 0
    stuck = ""
    cache: set[tuple[int, State]] = set()  # configurations entered: each is on the path or doomed
    stack: list[tuple[int, State, bool]] = []
    node, fresh = nxt[0], True
    while remaining:
        steps += 1
        if steps > max_steps:
            return CheckResult(False, n, n - sum(required), steps,
                               (f"search gave up after {max_steps} steps (inconclusive, not a pass)",))
        forced = forced_move(state) if fresh else -1
        fresh = False
        if forced != -1:
            node = forced
        if node != -1 and is_call[node]:
            i = node_op[node]
            after = _step(state, ops[i])
            if after is not None and (key := (linearized | (1 << i), after)) not in cache:
                cache.add(key)
                stack.append((node, state, forced != -1))
                state, linearized = after, key[0]
                remaining -= required[i]
                lift(node)
                best_depth = max(best_depth, len(stack))
                node, fresh = nxt[0], True
                continue
            if forced == -1:
                node = nxt[node]
                continue
        # Dead end (a pending op must return here unplaced, or a forced move leads somewhere known
        # to fail): undo forced moves, then the last real choice, and try the next candidate.
        if len(stack) >= best_depth and node != -1 and forced == -1:
            stuck = f"{ops[node_op[node]].describe()} could not take effect with the register at {state}"
        while True:
            if not stack:
                return CheckResult(False, n, n - sum(required), steps,
                                   (f"no linearization: at most {best_depth} ops could be ordered; "
                                    f"then {stuck or 'nothing fit'}",))
            node, state, was_forced = stack.pop()
            i = node_op[node]
            linearized &= ~(1 << i)
            remaining += required[i]
            unlift(node)
            if not was_forced:
                break
        node = nxt[node]
    return CheckResult(True, n, n - sum(required), steps)


def check_history(ops: Sequence[Operation], *, initial: State = INITIAL,
                  max_steps: int = 5_000_000) -> CheckResult:
    """Both: the cheap checks (named anomalies) and the WGL search (the proof)."""
    cheap = check_versions(_relevant(ops)) if initial == INITIAL else []
    found = check_linearizable(ops, initial=initial, max_steps=max_steps)
    problems = tuple(cheap[:20]) + found.problems
    return CheckResult(found.ok and not cheap, found.ops, found.unknown, found.explored, problems)
