"""Land local commits on the shared branch: push, and when the branch moved, fetch, replay, push again.

Pushes are never forced, and git updates a ref atomically, so the remote only ever moves from one
complete commit to a descendant of it: nothing is half-pushed and no landed commit can be lost. A
push that loses the race costs a fetch and a replay (see :mod:`swarm_tasks.builder.replay`) and is
tried again after a jittered backoff, up to ``max_attempts`` pushes.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from coordination.backoff import Backoff
from swarm_tasks.builder.check import CheckResult
from swarm_tasks.builder.gitops import Clone, find_conflict_markers, format_markers, split_z
from swarm_tasks.builder.replay import RebaseConflict, Replayer, ReplayState, Resolver
from swarm_tasks.errors import GitError
from swarm_tasks.host.processes import ProcessResult

__all__ = ["PUSH_BACKOFF", "PushOutcome", "PushStatus", "RebaseConflict", "Recheck", "push_with_rebase"]

# Words of a "[remote rejected]" push that mean another push won the ref lock: a race, so retry.
_LOCK_RACE = ("cannot lock", "failed to lock", "failed to update ref", "incorrect old value",
              "but expected", "reference already exists", "unable to update")
_MOVED = ("fetch first", "non-fast-forward", "stale info")


class PushStatus(enum.Enum):
    """How :func:`push_with_rebase` ended."""

    LANDED = "landed"
    UP_TO_DATE = "up_to_date"  # the remote already held every local change (landed, nothing pushed)
    CONFLICT_UNRESOLVED = "conflict_unresolved"
    CONFLICT_MARKERS = "conflict_markers"
    CHECK_FAILED = "check_failed"
    REJECTED = "rejected"  # refused for a reason other than the branch moving (a server hook, say)
    RETRIES_EXHAUSTED = "retries_exhausted"
    REMOTE_ERROR = "remote_error"  # the remote could not be reached on the last attempt


class Recheck(enum.Enum):
    """When :func:`push_with_rebase` re-runs the check after replaying onto a moved branch."""

    ALWAYS = "always"  # after every replay: upstream can break us without touching our files
    # Only when upstream changed a file we change (or a conflict was resolved): much shorter race
    # window with a slow check, at the risk of missing a break elsewhere.
    CONTENDED = "contended"


# Between push attempts: full jitter spreads builders racing for the branch (the project's one backoff).
PUSH_BACKOFF = Backoff(base_s=0.05, cap_s=1.0)


@dataclass(slots=True)
class PushOutcome:
    """What happened to the local commits. ``first_try``: landed by the first push. ``attempts``:
    pushes made; ``rebases``: replays onto a moved branch. ``conflicted_files`` needed resolving;
    ``contended_files`` were changed both locally and upstream meanwhile (the hot spots to feed
    back to the planner). ``sha``: what landed, else the local branch head."""

    status: PushStatus
    landed: bool
    sha: str | None
    attempts: int
    rebases: int
    conflicts_resolved: int
    first_try: bool
    conflicted_files: list[str]
    contended_files: list[str]
    reason: str
    check: CheckResult | None = None
    checked: bool | None = None  # the check passed on the very tree that landed (None: no check given)

    @property
    def hot_spots(self) -> list[str]:
        return sorted({*self.conflicted_files, *self.contended_files})


@dataclass(slots=True)
class _Tally:
    attempts: int = 0
    rebases: int = 0
    resolved: int = 0
    conflicted: set[str] = field(default_factory=set)
    contended: set[str] = field(default_factory=set)
    check: CheckResult | None = None

    def outcome(self, status: PushStatus, sha: str | None, reason: str, checked: bool | None = None) -> PushOutcome:
        landed = status in (PushStatus.LANDED, PushStatus.UP_TO_DATE)
        return PushOutcome(status=status, landed=landed, sha=sha, attempts=self.attempts,
                           rebases=self.rebases, conflicts_resolved=self.resolved,
                           first_try=landed and self.attempts <= 1,
                           conflicted_files=sorted(self.conflicted), contended_files=sorted(self.contended),
                           reason=reason, check=self.check, checked=checked)


class _Push(enum.Enum):
    PUSHED = "pushed"
    UP_TO_DATE = "up_to_date"
    MOVED = "moved"
    REFUSED = "refused"
    ERROR = "error"


def _push(clone: Clone, sha: str) -> tuple[_Push, str]:
    """Push ``sha`` to the branch by URL (never by the clone's remote name, which its config could point
    anywhere)."""
    ref = f"refs/heads/{clone.branch}"
    result = clone.git("push", "--porcelain", clone.spec.git_url, f"{sha}:{ref}", network=True, check=False)
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        flag, _, rest = line.partition("\t")
        refs, _, summary = rest.partition("\t")
        if len(flag) != 1 or not refs.endswith(f":{ref}"):
            continue
        if flag in "= +*-":  # the remote's branch is at sha now (the caller moves the tracking ref)
            return (_Push.UP_TO_DATE if flag == "=" else _Push.PUSHED), summary
        if "[remote rejected]" in summary:
            raced = any(word in summary for word in _LOCK_RACE)
            said = [line.removeprefix("remote:").strip() for line in
                    result.stderr.decode("utf-8", "replace").splitlines() if line.startswith("remote:")]
            said = [line for line in said if line][-3:]  # what the server's hook said, in its words
            detail = f"{summary}: {' / '.join(said)}" if said and not raced else summary
            return (_Push.MOVED if raced else _Push.REFUSED), clone.spec.redact(detail)
        if "[remote failure]" in summary:
            return _Push.ERROR, clone.spec.redact(summary)
        moved = any(word in summary for word in _MOVED)
        return (_Push.MOVED if moved else _Push.REFUSED), clone.spec.redact(summary)
    return _Push.ERROR, _failure(result, "push", clone)


def _failure(result: ProcessResult, what: str, clone: Clone) -> str:
    if result.timed_out:
        return f"{what} timed out after {clone.spec.timeout_s:g} s"
    tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    return clone.spec.redact(f"{what} failed: " + " / ".join(tail))


def _state(clone: Clone) -> tuple[str, list[str]]:
    """HEAD and the tracked files with uncommitted changes, in one git call."""
    entries = split_z(clone.git("status", "--porcelain=v2", "--branch", "-z", "--untracked-files=no").stdout)
    head = next((e.split()[-1] for e in entries if e.startswith("# branch.oid ")), "")
    fields = {"1": 8, "2": 9, "u": 10}  # fields before the path in each kind of porcelain v2 entry
    return head, [e.split(" ", fields[e[0]])[-1] for e in entries if e[:2] in ("1 ", "2 ", "u ")]


def _outgoing(clone: Clone) -> set[str]:
    """Files the local commits change relative to the remote branch (as last fetched)."""
    return set(split_z(clone.git("diff", "--name-only", "-z", "--no-renames",
                                 f"{clone.upstream_ref}...HEAD").stdout))


class _Transient(Exception):
    """A fetch failed in a way worth retrying (the remote is unreachable for a moment)."""


class _Run:
    """The state of one :func:`push_with_rebase` call between its attempts."""

    def __init__(self, clone: Clone, resolve: Resolver, check: Callable[[], CheckResult] | None,
                 recheck: Recheck, overlaps_conflict: bool, checked: str | None) -> None:
        busy = clone.operation_in_progress()
        if busy:
            raise GitError(f"a {busy} is in progress in {clone.path}")
        self.head, dirty = _state(clone)
        if dirty:
            raise GitError(f"uncommitted changes in {clone.path}: {', '.join(dirty[:10])}; commit them first")
        self.clone, self.check, self.recheck = clone, check, recheck
        self.checked_tree = self.tree(checked) if checked else None
        self.first_head, self.candidate, self.last_onto = self.head, self.head, ""
        # A tip read but not yet written to the tracking ref: that write waits until after the push,
        # out of the window between reading the tip and pushing (see :meth:`track`).
        self.untracked: str | None = None
        self.ours, self.scan = _outgoing(clone), True
        self.replayer = Replayer(clone, resolve, overlaps_conflict=overlaps_conflict)
        self.tally = _Tally()

    def tree(self, commit: str) -> str:
        return self.clone.out("rev-parse", f"{commit}^{{tree}}")

    def track(self, sha: str | None = None, why: str = "tip read from the shared remote") -> None:
        """Bring the tracking ref to ``sha`` (what was pushed), else to the last tip read, if it lags."""
        target = sha or self.untracked
        if target is not None:
            self.clone.track(target, why)
        self.untracked = None

    def finish(self, status: PushStatus, sha: str, why: str, checked: bool | None = None) -> PushOutcome:
        self.track()
        if self.last_onto:  # hot spots, computed once and after the race: ours vs all that landed meanwhile
            self.tally.contended |= self.ours & self.replayer.upstream_files(self.first_head, self.last_onto)
        return self.tally.outcome(status, sha, why, checked)

    def markers(self) -> PushOutcome | None:
        """Refuse conflict markers; only new content can bring them (our commits, a resolver's edits)."""
        if self.scan:
            self.scan = False
            found = find_conflict_markers(self.clone.path, sorted(self.ours))
            if found:
                return self.finish(PushStatus.CONFLICT_MARKERS, self.head,
                                   f"refusing to push conflict markers: {format_markers(found)}")
        return None

    def move_branch(self) -> None:
        """Bring the branch and files to the replayed commit (which only existed as an object)."""
        if self.candidate != self.head:
            moved = self.clone.git("reset", "--quiet", "--keep", self.candidate, check=False)
            if not moved.ok:  # an untracked file where upstream added one: upstream's version wins
                self.clone.git("reset", "--quiet", "--hard", self.candidate)
            self.head = self.candidate

    def landed(self, detail: str) -> PushOutcome:
        self.move_branch()  # only now, after the race
        checked = None
        if self.check is not None or self.checked_tree is not None:
            checked = self.checked_tree is not None and self.checked_tree == self.tree(self.candidate)
        return self.finish(PushStatus.LANDED, self.candidate, detail, checked)

    def rebase(self, attempt: int, *, only_if_moved: bool) -> PushOutcome | None:
        """Fetch the tip and replay onto it (and re-check); an outcome if that ends the push."""
        clone = self.clone
        before = clone.upstream_sha() if only_if_moved else ""
        try:
            tip = clone.fetch_tip(track=False)
        except GitError as error:
            raise _Transient(str(error)) from error
        onto, onto_tree = tip.sha, tip.tree
        if onto == before:
            return None
        self.untracked = None if tip.tracked else onto
        self.last_onto = onto
        self.tally.rebases += 1
        contended_check = self.check is not None and self.recheck is Recheck.CONTENDED
        replayed = self.replayer.replay(self.head, onto, onto_tree, ours=self.ours, attempt=attempt,
                                        want_upstream=contended_check,
                                        base=before or (clone.upstream_sha() if self.replayer.undecided else None))
        self.tally.conflicted |= replayed.conflicted
        self.tally.resolved += replayed.resolved
        if replayed.state is ReplayState.ABORTED:
            return self.finish(PushStatus.CONFLICT_UNRESOLVED, self.head, replayed.reason)
        if replayed.state is ReplayState.MARKERS:
            return self.finish(PushStatus.CONFLICT_MARKERS, self.head, replayed.reason)
        self.candidate = replayed.head
        if replayed.branch_moved:
            self.head = self.candidate
        if replayed.state is ReplayState.EMPTY:
            return self.finish(PushStatus.UP_TO_DATE, self.head, "every local change was already upstream")
        if replayed.resolved:
            self.track()  # ours is measured from the tip replayed onto
            self.ours, self.scan = _outgoing(clone), True
        contended = bool(self.ours & (replayed.upstream_files or set()))
        if self.check is not None and (self.recheck is Recheck.ALWAYS or contended or replayed.resolved):
            return self.run_check()
        return None

    def run_check(self) -> PushOutcome | None:
        assert self.check is not None
        self.move_branch()  # the check needs the files
        result = self.tally.check = self.check()
        if _state(self.clone)[1]:  # what is pushed is what was committed: the check's edits go
            self.clone.git("reset", "--quiet", "--hard")
        if result.passed:
            self.checked_tree = self.tree(self.head)
            return None
        what = "timed out" if result.timed_out else f"failed (exit {result.exit_code})"
        return self.finish(PushStatus.CHECK_FAILED, self.head, f"check {what}")


def push_with_rebase(clone: Clone, *, resolve: Resolver, check: Callable[[], CheckResult] | None = None,
                     max_attempts: int = 5, backoff: Backoff | None = None, overlaps_conflict: bool = False,
                     recheck: Recheck = Recheck.ALWAYS, refresh_first: bool = False,
                     rng: random.Random | None = None, checked: str | None = None, check_first: bool = False,
                     sleep: Callable[[float], None] = time.sleep,
                     turns: Callable[[], AbstractContextManager[bool]] | None = None) -> PushOutcome:
    """Push the clone's branch to the shared branch, replaying onto it whenever it moved.

    ``resolve`` is called for each commit that conflicts (see :class:`RebaseConflict`); False aborts
    with the local commits untouched. ``check`` runs after a replay (see :class:`Recheck`); a failure
    stops, the clone keeping the replayed commits. Files with conflict markers are never pushed. At
    most ``max_attempts`` pushes, with jittered ``backoff`` between them. ``refresh_first`` fetches
    (and replays, if the branch moved) before the first push: cheaper when the base is usually stale
    by the time work is committed, as in a busy swarm. ``overlaps_conflict``: see
    :mod:`swarm_tasks.builder.replay`. ``checked``: a commit the check already passed on (the caller
    ran it before pushing); the outcome's ``checked`` says whether the tree that landed is one the
    check passed on. ``check_first``: run the check before the first push (after the refresh) unless
    it already passed on that tree. Whatever the outcome the clone is left on its branch with no
    rebase or cherry-pick in progress, and the remote holds either all of it or none of it.
    ``turns``: the branch's queue (:class:`coordination.landing.LandingTurns.turn`): each attempt
    (fetch, replay, push) waits for its turn instead of racing, and fetches first, since whoever held
    the turn before moved the branch. Correctness never rests on it: the push stays git's own
    compare-and-set of the branch. With a ``check`` no turn is taken: an attempt's check (seconds to
    minutes) would run holding the turn and serialise every pusher's checks, so such pushes race.
    """
    if max_attempts < 1:
        raise GitError("max_attempts must be at least 1")
    backoff = backoff or PUSH_BACKOFF
    rng = rng or random.Random()
    shared = clone.borrowed_remote()
    if shared is not None and not (shared / "objects").is_dir():
        # Without the remote this clone lacks the objects it borrows: no git command here can work.
        head = clone.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).stdout.decode().strip()
        return _Tally().outcome(PushStatus.REMOTE_ERROR, head or None,
                                f"the remote {clone.spec.display_url} is gone, and this clone borrows its "
                                "objects (a local remote is cloned with --shared): put the remote back")
    if check is not None:
        turns = None
    run = _Run(clone, resolve, check, recheck, overlaps_conflict, checked)
    kind, reason, refresh = _Push.ERROR, "", refresh_first
    for attempt in range(1, max_attempts + 1):
        with turns() if turns is not None else nullcontext(False) as queued:
            if refresh or queued:
                try:
                    done = run.rebase(attempt, only_if_moved=attempt == 1)
                except _Transient as error:
                    done, kind, reason = None, _Push.ERROR, str(error)
                if done is not None:
                    return done
            if check_first and check is not None and attempt == 1 and run.checked_tree != run.tree(run.candidate):
                done = run.run_check()
                if done is not None:
                    return done
            done = run.markers()
            if done is not None:
                return done
            run.tally.attempts = attempt
            kind, detail = _push(clone, run.candidate)
        if kind in (_Push.PUSHED, _Push.UP_TO_DATE):  # the branch is at the candidate: so is our tracking ref
            run.track(run.candidate, "pushed")
            return run.landed(detail)
        if kind is _Push.REFUSED:
            return run.finish(PushStatus.REJECTED, run.head, f"remote refused the push: {detail}")
        reason = detail if kind is _Push.ERROR else f"the branch moved {run.tally.rebases + 1} times"
        if attempt == max_attempts:
            break
        # Wait before fetching, never between replaying and pushing: from fetch to push is the window
        # in which another landing makes this attempt fail. A first push without a fresh fetch usually
        # failed only because our base was stale, so it is not waited for; any other failure means
        # others are racing us.
        if kind is _Push.ERROR or attempt > 1 or refresh_first:
            sleep(backoff.delay(attempt - 1, rng))  # attempt 1 failed: the first retry
        refresh = kind is _Push.MOVED
    status = PushStatus.REMOTE_ERROR if kind is _Push.ERROR else PushStatus.RETRIES_EXHAUSTED
    return run.finish(status, run.head, f"not landed after {max_attempts} attempts: {reason}")
