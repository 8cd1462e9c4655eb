"""Commits landed per minute on ONE shared branch by 1, 4 and 16 concurrent pushers.

Each pusher is a separate OS process (started by ``bench.common.run_together``, forkserver) with its
own clone of one bare repository in a temp dir; it drives git through subprocesses, exactly as a
build worker does. Per commit it "works" for ``work_s`` (a sleep standing in for the agent), writes
its own new file, on every other commit also rewrites its own section of one shared file, commits
and calls :func:`push_with_rebase`. Sections are separated by unchanged lines so git merges them; a
resolver that unions the sections handles any conflict that still occurs.

Wall time runs from the common release to the last landed commit. At the end the bare repository is
checked: every commit is in ``git log``, every file it wrote is in the tree, no file holds a marker.

The repositories live in memory (a tmpfs) when the machine has one, and the 1 and 16 pusher runs are
repeated on disk. On an ext4 without a journal (this project's VMs) a new inode is found by scanning
past those freed in the last half minute, and git frees one at every ref update: in some disk runs
``perf`` put a fifth to a quarter of all CPU at 16 pushers in that scan (``recently_deleted``,
``find_inode_bit``), which measures the file system's allocator, not the push protocol.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.common import BenchResult, Row, at_least, machine_info, progress, ratio, redis_for_bench, run_together
from coordination.backoff import Backoff
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.landing import LandingTurns
from swarm_tasks.builder import (
    PUSH_BACKOFF,
    RebaseConflict,
    RemoteSpec,
    commit_all,
    find_conflict_markers,
    prepare_clone,
    push_with_rebase,
    run_git,
)

GOAL_PUSHERS = 16  # the disk comparison's size
# Issue 23: speed-up over one pusher at 16 and 32 pushers, and at 32 at most one retry per landed commit
# and at most 1.5x the CPU per landed commit of one pusher.
SPEEDUP_GOALS = {16: 14.0, 32: 20.0}
RETRY_GOAL_PUSHERS, MAX_RETRIES_PER_COMMIT, MAX_CPU_RATIO = 32, 1.0, 1.5
MEMORY_ROOT = Path("/dev/shm")  # a tmpfs on Linux; used only if it is one
MIN_MEMORY_FREE = 2 * 2**30
DISK_PUSHERS = (1, GOAL_PUSHERS)
SHARED = "shared.txt"
SEPARATOR = "\n\n\n"  # two blank lines between sections: edits of neighbours never touch


@dataclass(frozen=True, slots=True)
class Params:
    pushers: tuple[int, ...] = (1, 4, 16)
    commits: int = 10
    work_s: float = 1.0
    shared_every: int = 2  # every 2nd commit also edits the shared file: half of them
    max_attempts: int = 200
    backoff_base_s: float = PUSH_BACKOFF.base_s  # the build workers' own policy
    backoff_cap_s: float = PUSH_BACKOFF.cap_s
    refresh_first: bool = True  # fetch before the first push: after a second of work the base is stale
    rounds: int = 1  # each pusher count is measured this many times, interleaved; the median round counts
    root: str | None = None  # where the repositories live; None: the system's temp dir
    ordered: bool = True  # pushers take turns at landing through Redis (coordination/landing.py)
    redis_url: str | None = None

    @classmethod
    def default(cls, full: bool) -> Params:
        # --full keeps the goal's size (10 commits per pusher) and adds 32 pushers and rounds: one
        # round at 16 pushers on 2 cores swings by a third with the machine's other load.
        return cls(pushers=(1, 4, 16, 32), rounds=3) if full else cls()


@dataclass(frozen=True, slots=True)
class Storage:
    """Where the bare repository and the clones live: ``root`` (None is the system temp dir)."""

    kind: str  # "memory" or "disk"
    root: str | None
    fs_type: str

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.fs_type} at {self.root or tempfile.gettempdir()})"


def fs_type(path: Path) -> str:
    """The type of the file system holding ``path`` (the longest mount point above it)."""
    real = path.resolve()
    mounts = [m for m in psutil.disk_partitions(all=True) if real.is_relative_to(m.mountpoint)]
    return max(mounts, key=lambda m: len(m.mountpoint)).fstype if mounts else "unknown"


def memory_storage() -> Storage | None:
    """A writable tmpfs with room to spare, if the machine has one."""
    if not (MEMORY_ROOT.is_dir() and os.access(MEMORY_ROOT, os.W_OK)) or fs_type(MEMORY_ROOT) != "tmpfs":
        return None
    if psutil.disk_usage(str(MEMORY_ROOT)).free < MIN_MEMORY_FREE:
        return None
    return Storage("memory", str(MEMORY_ROOT), "tmpfs")


def disk_storage() -> Storage:
    return Storage("disk", None, fs_type(Path(tempfile.gettempdir())))


@dataclass(frozen=True, slots=True)
class PusherArgs:
    url: str
    index: int
    sections: int
    clone_dir: str
    commits: int
    work_s: float
    shared_every: int
    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    refresh_first: bool
    redis_url: str | None  # set: take turns at landing (the run's own key prefix in ``turns_prefix``)
    turns_prefix: str


@dataclass(frozen=True, slots=True)
class Landing:
    """One commit's fate, as its pusher saw it."""

    landed: bool
    landed_at: float  # time.monotonic, the same clock in every process
    attempts: int
    rebases: int
    conflicts_resolved: int
    first_try: bool
    status: str
    push_s: float  # time inside push_with_rebase (the race, retries and backoff included)
    cpu_s: float  # CPU of this pusher and its git processes for this commit (commit + push)


def _section_resolver(index: int) -> Callable[[RebaseConflict], bool]:
    """Upstream's shared file with this pusher's own section taken from the commit being replayed."""

    def resolve(conflict: RebaseConflict) -> bool:
        for rel in conflict.files:
            if rel != SHARED:
                return False
            mine = (conflict.replayed_version(rel) or b"").decode().split(SEPARATOR)
            merged = (conflict.upstream_version(rel) or b"").decode().split(SEPARATOR)
            merged[index] = mine[index]
            (conflict.path / rel).write_text(SEPARATOR.join(merged))
        return True

    return resolve


def _set_section(text: str, index: int, value: str) -> str:
    sections = text.split(SEPARATOR)
    sections[index] = f"[pusher {index}]\n{value}"
    return SEPARATOR.join(sections)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _pusher(args: PusherArgs, start: Callable[[], float]) -> list[Landing]:
    spec = RemoteSpec(url=args.url, branch="main", timeout_s=60)
    clone = prepare_clone(spec, Path(args.clone_dir), author_name=f"pusher {args.index}",
                          author_email=f"p{args.index}@bench.invalid")
    resolve = _section_resolver(args.index)
    backoff = Backoff(base_s=args.backoff_base_s, cap_s=args.backoff_cap_s)
    own = clone.path / f"p{args.index:02d}"
    own.mkdir()
    landings: list[Landing] = []
    turns = None
    if args.redis_url is not None:
        queue = LandingTurns(redis.Redis.from_url(args.redis_url), Keys(args.turns_prefix, GLOBAL_SCOPE), "main")
        turns = queue.turn
    start()
    for n in range(args.commits):
        time.sleep(args.work_s)  # the agent's work on the task
        (own / f"c{n:02d}.txt").write_text(f"pusher {args.index} commit {n}\n")
        if n % args.shared_every == 0:
            shared = clone.path / SHARED
            shared.write_text(_set_section(shared.read_text(), args.index, f"commit {n}"))
        cpu = _cpu()
        commit_all(clone, f"p{args.index} c{n}")
        began = time.monotonic()
        outcome = push_with_rebase(clone, resolve=resolve, max_attempts=args.max_attempts, backoff=backoff,
                                   refresh_first=args.refresh_first, turns=turns)
        now = time.monotonic()
        landings.append(Landing(outcome.landed, now, outcome.attempts, outcome.rebases, outcome.conflicts_resolved,
                                outcome.first_try, outcome.status.value, now - began, _cpu() - cpu))
    return landings


@dataclass(slots=True)
class Measured:
    pushers: int
    commits: int
    landed: int
    wall_s: float
    per_minute: float
    first_try_share: float
    retries_per_commit: float
    rebases_per_commit: float
    conflicts_resolved: int
    max_attempts_seen: int
    push_s_mean: float
    cpu_ms_per_commit: float  # per landed commit: pushers and their git processes (the bare repository's side too)
    verified: bool
    problems: list[str]
    startup_s: float
    load_before: list[float]
    load_after: list[float]


def _seed(root: Path, sections: int) -> str:
    bare, seed = root / "remote.git", root / "seed"
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@bench.invalid"]
    run_git(["init", "--quiet", "--bare", "-b", "main", str(bare)], cwd=root)
    run_git(["init", "--quiet", "-b", "main", str(seed)], cwd=root)
    text = SEPARATOR.join(f"[pusher {i}]\nnothing yet" for i in range(sections)) + "\n"
    (seed / SHARED).write_text(text)
    run_git(["add", "--all"], cwd=seed)
    run_git([*identity, "commit", "--quiet", "-m", "seed"], cwd=seed)
    run_git(["push", "--quiet", str(bare), "main"], cwd=seed)
    return str(bare)


def _verify(bare: str, root: Path, pushers: int, commits: int, shared_every: int) -> list[str]:
    """Everything every pusher committed is on the branch; nothing holds a conflict marker."""
    spec = RemoteSpec(url=bare, branch="main")
    check = prepare_clone(spec, root / "verify", author_name="v", author_email="v@bench.invalid")
    subjects = set(run_git(["log", "--format=%s"], cwd=check.path).stdout.decode().splitlines())
    problems = [f"commit p{p} c{n} missing from log" for p in range(pushers) for n in range(commits)
                if f"p{p} c{n}" not in subjects]
    problems += [f"file p{p:02d}/c{n:02d}.txt missing" for p in range(pushers) for n in range(commits)
                 if not (check.path / f"p{p:02d}" / f"c{n:02d}.txt").is_file()]
    shared = (check.path / SHARED).read_text().split(SEPARATOR)
    last = max((n for n in range(commits) if n % shared_every == 0), default=None)
    problems += [f"shared section {p} lost its last edit" for p in range(pushers)
                 if last is not None and f"commit {last}" not in shared[p]]
    tracked = [t for t in run_git(["ls-files", "-z"], cwd=check.path).stdout.decode().split("\0") if t]
    problems += [f"conflict marker at {f}:{line}" for f, line in find_conflict_markers(check.path, tracked)]
    return problems


def measure(pushers: int, p: Params) -> Measured:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix=f"bench-git-{pushers}-", dir=p.root) as scratch:
        root = Path(scratch)
        bare = _seed(root, max(pushers, 1))
        prefix = f"bench-git-{uuid.uuid4().hex[:12]}"
        args = [PusherArgs(bare, i, pushers, str(root / f"clone-{i}"), p.commits, p.work_s, p.shared_every,
                           p.max_attempts, p.backoff_base_s, p.backoff_cap_s, p.refresh_first,
                           p.redis_url if p.ordered else None, prefix)
                for i in range(pushers)]
        together = run_together(_pusher, args, timeout_s=600, preload=["bench.git"])
        landings = [landing for per in together.results for landing in per]
        problems = _verify(bare, root, pushers, p.commits, p.shared_every)
    landed = [x for x in landings if x.landed]
    problems += [f"not landed: {x.status}" for x in landings if not x.landed]
    wall = max((x.landed_at for x in landed), default=together.released_at) - together.released_at
    total = len(landings)
    return Measured(
        pushers=pushers, commits=total, landed=len(landed), wall_s=round(wall, 3),
        per_minute=len(landed) / wall * 60 if wall > 0 else 0.0,
        first_try_share=sum(x.first_try for x in landings) / max(total, 1),
        retries_per_commit=sum(x.attempts - 1 for x in landings) / max(total, 1),
        rebases_per_commit=sum(x.rebases for x in landings) / max(total, 1),
        conflicts_resolved=sum(x.conflicts_resolved for x in landings),
        max_attempts_seen=max((x.attempts for x in landings), default=0),
        push_s_mean=round(sum(x.push_s for x in landings) / max(total, 1), 3),
        cpu_ms_per_commit=round(1000 * sum(x.cpu_s for x in landings) / max(len(landed), 1), 1),
        verified=not problems, problems=problems[:20], startup_s=round(together.startup_s, 2),
        load_before=load_before, load_after=[round(x, 2) for x in os.getloadavg()])


def _median(rounds: list[Measured]) -> Measured:
    """The median round by rate; it carries every round's failures, so no bad round is hidden."""
    ordered = sorted(rounds, key=lambda m: m.per_minute)
    mid = ordered[(len(ordered) - 1) // 2]
    problems = [problem for m in rounds for problem in m.problems]
    landed_all = all(m.landed == m.commits for m in rounds)
    return Measured(**{**asdict(mid), "verified": mid.verified and not problems and landed_all,
                       "problems": problems[:20]})


def _rows(measured: dict[int, Measured], where: str = "") -> list[Row]:
    """The table's rows; ``where`` names storage or a variant other than the main one (no goal judged)."""
    rows: list[Row] = []
    one = measured.get(1)
    for n, m in measured.items():
        speedup = ratio(m.per_minute, one.per_minute if one else None)
        goal = SPEEDUP_GOALS.get(n) if one is not None and not where else None
        rows += [
            Row(f"commits landed per minute, {n} pushers{where}", m.per_minute, "/min",
                one.per_minute if one and n != 1 else None, "1 pusher" if one and n != 1 else None,
                speedup if n != 1 else None, f">= {goal:g}x" if goal else None,
                at_least(speedup, goal) if goal else None),
            Row(f"commits landed and verified, {n} pushers{where}", float(m.landed), "", float(m.commits),
                "committed", ratio(m.landed, m.commits), "all", m.verified and m.landed == m.commits),
        ]
        judged = n == RETRY_GOAL_PUSHERS and not where
        cpu_ratio = ratio(m.cpu_ms_per_commit, one.cpu_ms_per_commit) if one and n != 1 else None
        rows += [Row(f"landed on the first try, {n} pushers{where}", m.first_try_share * 100, "%"),
                 Row(f"push retries per commit, {n} pushers{where}", m.retries_per_commit,
                     goal=f"<= {MAX_RETRIES_PER_COMMIT:g}" if judged else None,
                     goal_met=m.retries_per_commit <= MAX_RETRIES_PER_COMMIT if judged else None),
                 Row(f"CPU per landed commit, {n} pushers{where}", m.cpu_ms_per_commit, "ms",
                     one.cpu_ms_per_commit if one and n != 1 else None, "1 pusher" if one and n != 1 else None,
                     cpu_ratio, f"<= {MAX_CPU_RATIO:g}x" if judged else None,
                     (cpu_ratio is not None and cpu_ratio <= MAX_CPU_RATIO) if judged else None)]
    return rows


def _measure_all(p: Params, storage: Storage, pushers: Sequence[int], rounds: int) -> dict[int, list[Measured]]:
    at = Params(**{**asdict(p), "root": storage.root})
    measured: dict[int, list[Measured]] = {n: [] for n in pushers}
    for r in range(max(rounds, 1)):
        for n in pushers:  # interleaved, so each ratio compares runs made moments apart
            m = measure(n, at)
            measured[n].append(m)
            progress(f"git ({storage.kind}): round {r + 1}, {n:>2} pushers: {m.landed}/{m.commits} landed in "
                     f"{m.wall_s:.1f}s = {m.per_minute:.0f}/min, {m.first_try_share:.0%} first try, "
                     f"{m.retries_per_commit:.2f} retries/commit, {m.cpu_ms_per_commit:.0f} ms CPU/commit, "
                     f"load {m.load_before[0]:g}{'' if m.verified else ', PROBLEMS: ' + '; '.join(m.problems[:3])}")
    return measured


def run(full: bool = False, *, pushers: Sequence[int] | None = None, commits: int | None = None,
        work_s: float | None = None, on_disk_too: bool = True, ordered: bool = True,
        compare_blind: bool | None = None) -> BenchResult:
    """Measure every pusher count (in memory when possible, then 1 and 16 on disk); keyword arguments
    shrink the run (for tests)."""
    p = Params.default(full)
    overrides: dict[str, Any] = {"pushers": tuple(pushers) if pushers else None, "commits": commits,
                                 "work_s": work_s, "ordered": ordered}
    p = Params(**{**asdict(p), **{k: v for k, v in overrides.items() if v is not None}})
    on_disk = disk_storage()
    main = memory_storage() or on_disk
    disk: dict[int, Measured] = {}
    blind: dict[int, Measured] = {}
    with redis_for_bench() as target:
        machine = machine_info(target.client)
        p = Params(**{**asdict(p), "redis_url": target.url if p.ordered else None})
        rounds = _measure_all(p, main, p.pushers, p.rounds)
        measured = {n: _median(ms) for n, ms in rounds.items()}
        if on_disk_too and main.kind == "memory":
            disk = {n: ms[0] for n, ms in _measure_all(p, on_disk, [n for n in DISK_PUSHERS if n in p.pushers],
                                                       1).items()}
        if compare_blind if compare_blind is not None else full:  # racing without turns, as before
            most = max(p.pushers)
            blind = {n: ms[0] for n, ms in _measure_all(Params(**{**asdict(p), "ordered": False}), main,
                                                        sorted({1, most}), 1).items()}
    notes = [
        f"Pushers are separate OS processes (forkserver), each with its own clone of one bare repository, "
        f"driving the git CLI through subprocesses as build workers do. Each commit follows {p.work_s:g} s of "
        f"simulated work (sleep); every {p.shared_every}nd commit also edits the pusher's own section of one "
        "shared file.",
        f"Repositories in {main.label}."
        + (f" The rows 'on disk' repeat 1 and {GOAL_PUSHERS} pushers once in {on_disk.label}, for "
           "comparison only: an ext4 without a journal finds each new inode by scanning past those freed in "
           "the last half minute, and git frees one at every ref update; on this project's VMs perf put a "
           "fifth to a quarter of all CPU at 16 pushers in that scan in some disk runs (recently_deleted, "
           "find_inode_bit), so disk rows swing more." if disk else ""),
        "Clones of a remote on the same machine borrow its objects (git clone --shared), as build workers' "
        "do: a fetch reads the tip and transfers nothing.",
        "Wall time runs from the moment all pushers are released (clones are made before) to the last landed "
        "commit; per minute = landed / wall. A retry is a push attempt after the first (the branch had moved: "
        "fetch, replay the commit onto the new tip, push again).",
        f"Backoff between attempts (the build workers' default): full jitter, base {p.backoff_base_s:g} s, cap "
        f"{p.backoff_cap_s:g} s; at most {p.max_attempts} attempts per commit. refresh_first={p.refresh_first}: "
        "each pusher fetches (and replays if the branch moved) before its first push, so 'first try' means no "
        "other commit landed inside the pusher's own fetch-to-push window.",
        f"The machine ({machine['cores']} cores, load {machine['load_average']} at start) was shared with other "
        "work; with more pushers than cores the git processes compete for CPU, so the numbers vary run to run.",
    ]
    cpu = ", ".join(f"{n} pushers {m.cpu_ms_per_commit:.0f} ms" for n, m in measured.items())
    cpu_disk = ", ".join(f"{n} pushers {m.cpu_ms_per_commit:.0f} ms" for n, m in disk.items())
    notes.append(f"CPU per commit (each pusher and its git processes, the bare repository's side of every fetch "
                 f"and push included): {cpu}{f'; on disk {cpu_disk}' if disk else ''}. Taking turns, the gap is the "
                 "replay (a merge-tree; the commit is written in-process), moving the clone to it and the hot-spot "
                 "diff; racing, also the losing pushes. With this many processes on few cores, CPU and the length "
                 "of a turn bound the rate, not the sleeps.")
    if p.rounds > 1:
        notes.append(f"Each pusher count was measured {p.rounds} times, interleaved with the others; the table "
                     "shows the median round (by commits per minute), and a round with a commit that did not land "
                     "or failed verification counts as failed whichever round is shown. Every round's rate is in "
                     "details.<pushers>.round_rates.")
    details: dict[str, Any] = {str(n): {**asdict(m), "round_rates": [round(x.per_minute, 1) for x in rounds[n]]}
                               for n, m in measured.items()}
    details["storage"] = asdict(main)
    if disk:
        details["on_disk"] = {"storage": asdict(on_disk), **{str(n): asdict(m) for n, m in disk.items()}}
    rows = _rows(measured) + (_rows(disk, ", on disk") if disk else []) + (
        _rows(blind, ", racing without turns") if blind else [])
    if blind:
        details["racing_without_turns"] = {str(n): asdict(m) for n, m in blind.items()}
    params = {k: v for k, v in asdict(p).items() if k != "redis_url"}  # a server address is not a parameter
    return BenchResult("git", rows, machine, params, notes, details)
