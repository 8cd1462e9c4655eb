"""Replaying local commits onto a new tip of the shared branch (the rebase inside a push retry).

Two ways, same result. The fast one, for the common case of a single local commit that merges
cleanly: ``git merge-tree --write-tree`` computes the merged tree without touching the work tree and
``commit-tree`` makes the commit (two git processes; the branch and files are moved by the caller,
after the push). Under contention the time from fetching the tip to pushing is the race window, so
it must be short. Otherwise commit by commit with ``cherry-pick --no-commit`` on a detached HEAD,
handing conflicts to the resolver; the branch ref moves (compare-and-swap) only once everything
replayed. Either way an abort or a crash at any point leaves the branch where it was: nothing local
is lost.

With ``overlaps_conflict`` files changed both upstream and by the commit go to the resolver even
when git merges them cleanly: codemod mode needs that, because two identical edits (the same command
run on the same file) merge silently into one.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from swarm_tasks.builder.gitops import Clone, find_conflict_markers, format_markers, split_z
from swarm_tasks.errors import GitError
from swarm_tasks.host.git import loose_object, write_loose_object


@dataclass(frozen=True, slots=True)
class RebaseConflict:
    """A commit that did not replay cleanly onto the new tip; the resolver's view of it.

    ``files`` hold git's conflict markers on disk. ``overlapping_files`` (only with
    ``overlaps_conflict``) merged cleanly but were changed both upstream and by this commit. Edit the
    files under ``path`` (HEAD is the new tip plus the commits already replayed) and return True.
    """

    clone: Clone
    files: list[str]
    overlapping_files: list[str]
    commit: str
    subject: str
    onto: str
    attempt: int

    @property
    def path(self) -> Path:
        return self.clone.path

    @property
    def all_files(self) -> list[str]:
        return [*self.files, *self.overlapping_files]

    def upstream_version(self, file: str) -> bytes | None:
        """The file as of HEAD (upstream side), None if it does not exist there."""
        return self._show(f"HEAD:{file}")

    def base_version(self, file: str) -> bytes | None:
        """The file before the commit being replayed, None if it did not exist then."""
        return self._show(f"{self.commit}^:{file}")

    def replayed_version(self, file: str) -> bytes | None:
        """The file as the commit being replayed left it, None if that commit deleted it."""
        return self._show(f"{self.commit}:{file}")

    def _show(self, spec: str) -> bytes | None:
        result = self.clone.git("cat-file", "blob", spec, check=False)
        return result.stdout if result.ok else None


Resolver = Callable[[RebaseConflict], bool]


class ReplayState(enum.Enum):
    DONE = "done"
    EMPTY = "empty"  # every local change was already upstream; the branch now is the tip
    ABORTED = "aborted"
    MARKERS = "markers"


@dataclass(slots=True)
class ReplayResult:
    """``head``: the replayed tip (DONE), the new upstream tip (EMPTY), the untouched branch otherwise.
    ``branch_moved`` is False when only the commit was made (fast path): the caller moves the branch
    once it needs the files, ideally after the push, outside the race window."""

    state: ReplayState
    head: str
    branch_moved: bool = True
    reason: str = ""
    upstream_files: set[str] | None = None  # files upstream changed, when they had to be computed
    conflicted: set[str] = field(default_factory=set)
    resolved: int = 0


def restore(clone: Clone, orig: str) -> None:
    """Back to the branch at ``orig`` with a clean tree and no operation in progress."""
    clone.git("reset", "--quiet", "--hard")
    clone.git("cherry-pick", "--quit", check=False)
    clone.git("checkout", "--quiet", "--force", "-B", clone.branch, orig)


class Replayer:
    """Replays one push's local commits onto successive tips, caching what stays the same between
    attempts (how many commits there are, the commit's author and message)."""

    def __init__(self, clone: Clone, resolve: Resolver, *, overlaps_conflict: bool) -> None:
        self.clone = clone
        self.resolve = resolve
        self.overlaps_conflict = overlaps_conflict
        self._single: bool | None = None
        self._meta: _Meta | None = None

    @property
    def undecided(self) -> bool:
        """Whether the local commits were not yet counted (the first replay counts them)."""
        return self._single is None

    def upstream_files(self, head: str, onto: str) -> set[str]:
        """Files changed upstream since ``head`` forked from it."""
        diff = self.clone.git("diff", "--name-only", "-z", "--no-renames", f"{head}...{onto}", check=False)
        if not diff.ok:
            raise GitError(f"local branch {self.clone.branch} shares no history with the remote's")
        return set(split_z(diff.stdout))

    def replay(self, head: str, onto: str, onto_tree: str, *, ours: set[str], attempt: int,
               want_upstream: bool = False, base: str | None = None) -> ReplayResult:
        """Replay the local commits ``onto..head`` (``head`` is the branch, clean) onto ``onto``.
        ``base``: the remote-tracking ref's commit before this fetch, an ancestor of ``onto``."""
        upstream = self.upstream_files(head, onto) if (want_upstream or self.overlaps_conflict) else None
        commits: list[str] | None = None
        if self._single is None and base is not None:
            self._single = self._one_on(head, base) or None
        if self._single is None:
            commits = self._commits(head, onto)
            self._single = len(commits) == 1
            if not commits:
                return self._empty(onto, upstream)
        if self._single and not (self.overlaps_conflict and ours & (upstream or set())):
            tree = self.clone.git("merge-tree", "--write-tree", "--no-messages", onto, head, check=False)
            if tree.exit_code == 0:
                merged = tree.stdout.decode().split()[0]
                if merged == onto_tree:
                    return self._empty(onto, upstream)
                return ReplayResult(ReplayState.DONE, self._commit(head, merged, onto), branch_moved=False,
                                    upstream_files=upstream)
        result = ReplayResult(ReplayState.DONE, head,
                              upstream_files=upstream if upstream is not None else self.upstream_files(head, onto))
        commits = commits if commits is not None else self._commits(head, onto)
        if not commits:
            return self._empty(onto, result.upstream_files)
        _pick_all(self.clone, head, onto, commits, self.resolve, self.overlaps_conflict, attempt, result)
        return result

    def _commits(self, head: str, onto: str) -> list[str]:
        rows = [line.split() for line in self.clone.out("rev-list", "--parents", f"{onto}..{head}").splitlines()]
        return [row[0] for row in reversed(rows) if len(row) == 2]  # merges are dropped, as rebase does

    def _empty(self, onto: str, upstream: set[str] | None) -> ReplayResult:
        # Our commits are in ``onto``: nothing is lost. Untracked files in the way give way to upstream's.
        if not self.clone.git("reset", "--quiet", "--keep", onto, check=False).ok:
            self.clone.git("reset", "--quiet", "--hard", onto)
        return ReplayResult(ReplayState.EMPTY, onto, upstream_files=upstream)

    def _one_on(self, head: str, base: str) -> bool:
        """Whether ``head`` is a single commit on ``base`` (so ``onto..head`` is at most ``head``), read
        from the object itself when the commit is still loose: no rev-list or cat-file in the race."""
        found = loose_object(self.clone.git_dir(), head)
        if found is None or found[0] != "commit":
            return False
        meta = _Meta.parse(found[1])
        if meta.parents != [base]:
            return False
        self._meta = meta
        return True

    def _commit(self, head: str, tree: str, onto: str) -> str:
        """A commit of ``tree`` on ``onto`` with the author and message of ``head``, committed by whoever
        committed ``head`` (this clone's identity), now. Written straight into the clone's object store
        (the bytes ``commit-tree`` would write) unless ``head`` is not a plain SHA-1 commit."""
        if self._meta is None:
            self._meta = _Meta.parse(self.clone.git("cat-file", "commit", head).stdout)
        meta = self._meta
        if meta.author and meta.committer and len(head) == 40:
            when = time.localtime()
            offset = when.tm_gmtoff // 60
            zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
            content = (b"tree %s\nparent %s\nauthor %s\ncommitter %s %d %s\n\n"
                       % (tree.encode(), onto.encode(), meta.author, meta.committer, int(time.time()),
                          zone.encode()) + meta.message)
            return write_loose_object(self.clone.git_dir(), "commit", content)
        return self.clone.out_with("commit-tree", tree, "-p", onto, "-F", "-", stdin=meta.message,
                                   extra_env=meta.author_env())


@dataclass(frozen=True, slots=True)
class _Meta:
    """What a replayed commit keeps of the one it replays: message, author, committer's identity."""

    message: bytes
    parents: list[str]
    author: bytes  # the whole header value: name, email, date
    committer: bytes  # name and email only: a replay is committed now

    @classmethod
    def parse(cls, body: bytes) -> _Meta:
        headers, _, message = body.partition(b"\n\n")
        author = committer = b""
        parents: list[str] = []
        for line in headers.split(b"\n"):
            if line.startswith(b"parent "):
                parents.append(line[7:].decode("ascii", "replace"))
            elif line.startswith(b"author "):
                author = line[7:]
            elif line.startswith(b"committer "):
                committer = line[10:].rpartition(b"> ")[0] + b">"
        return cls(message, parents, author, committer if committer != b">" else b"")

    def author_env(self) -> dict[str, str]:
        who, _, when = self.author.decode("utf-8", "replace").rpartition("> ")
        name, _, email = who.partition(" <")
        return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": when} if who else {}


def _pick_all(clone: Clone, orig: str, onto: str, commits: list[str], resolve: Resolver,
              overlaps_conflict: bool, attempt: int, result: ReplayResult) -> None:
    clone.git("checkout", "--quiet", "--detach", onto)
    try:
        for commit in commits:
            _pick(clone, commit, onto, resolve, overlaps_conflict, attempt, result)
            if result.state is not ReplayState.DONE:
                restore(clone, orig)
                result.head = orig
                return
        new = clone.head()
        # Compare-and-swap: the branch moves from exactly ``orig`` to the replayed history.
        clone.git("update-ref", "-m", f"swarm: replay onto {onto[:12]}", f"refs/heads/{clone.branch}", new, orig)
        clone.git("symbolic-ref", "HEAD", f"refs/heads/{clone.branch}")
        clone.git("cherry-pick", "--quit", check=False)  # drops MERGE_MSG left by a resolved pick
    except BaseException:
        restore(clone, orig)
        raise
    result.head = new
    if new == onto:
        result.state = ReplayState.EMPTY


def _pick(clone: Clone, commit: str, onto: str, resolve: Resolver, overlaps_conflict: bool, attempt: int,
          result: ReplayResult) -> None:
    """Apply one commit on HEAD and commit it (dropped if it became empty)."""
    picked = clone.git("cherry-pick", "--no-commit", commit, check=False)
    conflicted: list[str] = []
    if not picked.ok:
        conflicted = split_z(clone.git("diff", "--name-only", "-z", "--diff-filter=U").stdout)
        if not conflicted:
            tail = picked.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise GitError(clone.spec.redact(f"replaying {commit[:12]} failed: {' / '.join(tail)}"))
    overlapping: list[str] = []
    if overlaps_conflict:
        touched = split_z(clone.git("diff-tree", "-r", "--no-commit-id", "--name-only", "-z", "--no-renames",
                                    f"{commit}^", commit).stdout)
        overlapping = sorted((set(touched) & (result.upstream_files or set())) - set(conflicted))
    if conflicted or overlapping:
        result.conflicted |= set(conflicted)
        subject = clone.out("log", "-1", "--format=%s", commit)
        conflict = RebaseConflict(clone, conflicted, overlapping, commit, subject, onto, attempt)
        if not resolve(conflict):
            result.state = ReplayState.ABORTED
            result.reason = (f"conflict in {', '.join(conflicted or overlapping)} replaying {commit[:12]} "
                             f"({subject}) was not resolved")
            return
        # The resolved files and edits to tracked ones; not stray new files (caches, scratch output).
        clone.git("--literal-pathspecs", "add", "--all", "--", *conflict.all_files)
        clone.git("add", "--update")
        markers = find_conflict_markers(clone.path, conflict.all_files)
        if markers:
            result.state = ReplayState.MARKERS
            result.reason = f"resolution left conflict markers: {format_markers(markers)}"
            return
        result.resolved += 1
    if clone.git("diff", "--cached", "--quiet", "HEAD", check=False).exit_code == 0:
        return  # already upstream: nothing of this commit is left to replay
    clone.git("commit", "--quiet", "--no-verify", "--allow-empty-message", "--reuse-message", commit)
