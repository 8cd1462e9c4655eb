"""A rebase a model resolves itself: started, shown, continued and abandoned over several turns.

When a model worker's push loses the race and its commits conflict with the new tip, the clone is
left in a plain ``git rebase`` stopped at the conflicting commit, with git's markers in the files.
The model reads them, edits the files, and continues; a file that still holds markers is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarm_tasks.builder.gitops import Clone, find_conflict_markers, format_markers, split_z
from swarm_tasks.errors import GitError

MAX_VIEW_CHARS = 12_000
CONTEXT_LINES = 3
_OPEN, _CLOSE = b"<<<<<<<", b">>>>>>>"


@dataclass(slots=True)
class RebaseStep:
    """Where a rebase stands: stopped on ``conflicted`` files of ``commit``, or ``done``."""

    done: bool
    conflicted: list[str] = field(default_factory=list)
    commit: str = ""
    subject: str = ""


def unmerged(clone: Clone) -> list[str]:
    return split_z(clone.git("diff", "--name-only", "-z", "--diff-filter=U").stdout)


def rebasing(clone: Clone) -> bool:
    return clone.operation_in_progress() == "rebase"


def _stopped(clone: Clone) -> RebaseStep:
    if not rebasing(clone):
        return RebaseStep(done=True)
    commit = clone.git("rev-parse", "--verify", "--quiet", "REBASE_HEAD", check=False).stdout.decode().strip()
    subject = clone.out("log", "-1", "--format=%s", commit) if commit else ""
    return RebaseStep(done=False, conflicted=unmerged(clone), commit=commit, subject=subject)


def _failure(clone: Clone, what: str, stderr: bytes) -> GitError:
    tail = " / ".join(stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
    return GitError(clone.spec.redact(f"{what} failed: {tail}"))


def begin_rebase(clone: Clone) -> RebaseStep:
    """Fetch the tip and rebase the local commits onto it, stopping at the first conflict."""
    clone.fetch()
    done = clone.git("rebase", "--empty=drop", "--no-autosquash", clone.upstream_ref, check=False)
    step = _stopped(clone)
    if not done.ok and not step.conflicted:
        if not step.done:
            clone.git("rebase", "--abort", check=False)
        raise _failure(clone, "rebase", done.stderr)
    return step


def continue_rebase(clone: Clone) -> RebaseStep:
    """Record the resolution of the current commit and go on; refuses files that still hold markers."""
    if not rebasing(clone):
        return RebaseStep(done=True)
    pending = unmerged(clone)
    markers = find_conflict_markers(clone.path, pending)
    if markers:
        raise GitError(f"conflict markers remain: {format_markers(markers)}; remove them (keep what both sides "
                       "meant), then continue")
    clone.git("add", "--all")
    for _ in range(1000):  # one round per replayed commit that became empty; bounded all the same
        done = clone.git("rebase", "--continue", check=False)
        step = _stopped(clone)
        if done.ok or step.done or step.conflicted:
            return step
        if clone.git("diff", "--cached", "--quiet", "HEAD", check=False).exit_code != 0:
            raise _failure(clone, "rebase --continue", done.stderr)
        clone.git("rebase", "--skip", check=False)  # the resolution made this commit empty: nothing left of it
        step = _stopped(clone)
        if step.done or step.conflicted:
            return step
    raise GitError("rebase did not finish")


def abort_rebase(clone: Clone) -> None:
    if rebasing(clone):
        clone.git("rebase", "--abort")


def conflict_view(clone: Clone, files: list[str]) -> str:
    """The conflicted regions of ``files`` with line numbers and a little context."""
    parts: list[str] = []
    used = 0
    for rel in files:
        path = clone.path / rel
        if not path.is_file():
            parts.append(f"== {rel}: deleted on one side (keep it deleted, or write it back)")
            continue
        lines = path.read_bytes().split(b"\n")
        marked = [i for i, line in enumerate(lines) if line.startswith((_OPEN, _CLOSE))]
        shown: set[int] = set()
        for start, end in zip(marked[::2], marked[1::2], strict=False):
            shown.update(range(max(0, start - CONTEXT_LINES), min(len(lines), end + CONTEXT_LINES + 1)))
        text = [f"== {rel} ({len(marked) // 2} conflicted region(s))"]
        last = -2
        for i in sorted(shown):
            if i != last + 1:
                text.append("   ...")
            text.append(f"{i + 1:6d}\t{lines[i].decode('utf-8', 'replace')}")
            last = i
        block = "\n".join(text)
        if used + len(block) > MAX_VIEW_CHARS:
            parts.append(f"== {rel}: not shown (answer too long); read it with read_file")
            continue
        parts.append(block)
        used += len(block)
    return "\n".join(parts)
