"""Helpers shared by the build tests: throwaway bare remotes seeded with files, clones, raw git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from coordination.backoff import Backoff
from swarm_tasks.builder import Clone, RebaseConflict, RemoteSpec, commit_all, prepare_clone

IDENTITY = ("-c", "user.name=Seed", "-c", "user.email=seed@example.invalid", "-c", "commit.gpgsign=false")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Raw git in ``cwd`` (independent of the code under test); stripped stdout."""
    result = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def make_remote(root: Path, files: dict[str, str], *, branch: str = "main",
                extra_branches: tuple[str, ...] = ()) -> RemoteSpec:
    """A bare repository ``root/remote.git`` whose ``branch`` holds ``files`` in one commit."""
    bare = root / "remote.git"
    seed = root / "seed"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--bare", "-b", branch, str(bare))
    git(root, "init", "--quiet", "-b", branch, str(seed))
    for rel, text in files.items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(text)
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(bare), f"{branch}:{branch}", *(f"{branch}:{b}" for b in extra_branches))
    return RemoteSpec(url=str(bare), branch=branch, timeout_s=30.0)


def remote_tip(spec: RemoteSpec) -> str:
    return git(Path(spec.url), "rev-parse", f"refs/heads/{spec.branch}")


def remote_file(spec: RemoteSpec, rel: str) -> str:
    return git(Path(spec.url), "show", f"{spec.branch}:{rel}")


FAST = Backoff(base_s=0.001, cap_s=0.02)
SHARED = "".join(f"line {i}\n" for i in range(1, 11))


def clone_of(spec: RemoteSpec, root: Path, name: str) -> Clone:
    return prepare_clone(spec, root / name, author_name=name, author_email=f"{name}@example.invalid")


def edit(clone: Clone, rel: str, text: str, message: str) -> str:
    (clone.path / rel).write_text(text)
    sha = commit_all(clone, message)
    assert sha is not None
    return sha


def refuse(conflict: RebaseConflict) -> bool:
    raise AssertionError(f"no conflict expected, got {conflict.files}")


def assert_sane(clone: Clone) -> None:
    assert clone.operation_in_progress() is None
    assert clone.dirty_files() == []
    assert git(clone.path, "symbolic-ref", "HEAD") == f"refs/heads/{clone.branch}"
