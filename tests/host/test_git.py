"""The one git wrapper: nothing a repository's .git names ever runs, and git's environment is an allowlist."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from swarm_tasks.errors import GitError
from swarm_tasks.host.git import git, git_env, loose_object, write_loose_object
from tests.builder import git as raw_git


def raw_git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


HOOKS = ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction", "post-checkout",
         "post-merge", "pre-rebase", "post-rewrite", "pre-auto-gc")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    raw_git(tmp_path, "init", "--quiet", "-b", "main", str(root))
    (root / "a.txt").write_text("a\n")
    raw_git(root, "add", "a.txt")
    raw_git(root, "commit", "--quiet", "-m", "one")
    raw_git(tmp_path, "clone", "--quiet", "--bare", str(root), str(tmp_path / "remote.git"))
    raw_git(root, "remote", "add", "origin", str(tmp_path / "remote.git"))
    return root


def plant(repo: Path, proof: Path) -> None:
    """What an agent with a writable .git would leave: hooks, fsmonitor, a filter driver."""
    for name in HOOKS:
        hook = repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {proof}/{name}\n")
        hook.chmod(0o755)
    fsmonitor = repo / ".git" / "fsmonitor.sh"
    fsmonitor.write_text(f"#!/bin/sh\ntouch {proof}/fsmonitor\n")
    fsmonitor.chmod(0o755)
    raw_git(repo, "config", "core.fsmonitor", str(fsmonitor))
    raw_git(repo, "config", "core.hooksPath", str(repo / ".git" / "hooks"))
    raw_git(repo, "config", "filter.evil.clean", f"touch {proof}/filter-clean; cat")
    raw_git(repo, "config", "filter.evil.smudge", f"touch {proof}/filter-smudge; cat")
    raw_git(repo, "config", "filter.evil.required", "true")
    raw_git(repo, "config", "credential.helper", f"!touch {proof}/credential; true")
    raw_git(repo, "config", "gpg.program", f"{proof}/gpg")
    raw_git(repo, "config", "commit.gpgSign", "true")
    (repo / ".gitattributes").write_text("* filter=evil\n")


def ok(args: list[str], repo: Path) -> str:
    done = git(args, cwd=repo, config=("user.name=t", "user.email=t@example.invalid"))
    assert done.ok, done.stderr.decode()
    return done.stdout.decode()


def test_planted_hooks_fsmonitor_and_filters_never_run(repo: Path, tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    proof.mkdir()
    plant(repo, proof)
    (repo / "a.txt").write_text("b\n")
    ok(["status", "--porcelain"], repo)
    ok(["add", "--all"], repo)
    ok(["commit", "--quiet", "-m", "two"], repo)
    ok(["checkout", "--quiet", "-b", "other"], repo)
    ok(["checkout", "--quiet", "main"], repo)
    ok(["push", "--quiet", "origin", "main"], repo)
    ok(["fetch", "--quiet", "origin"], repo)
    ok(["rebase", "--quiet", "origin/main"], repo)
    ok(["gc", "--auto", "--quiet"], repo)
    assert sorted(os.listdir(proof)) == []
    assert raw_git(tmp_path / "remote.git", "show", "main:a.txt") == "b"


@pytest.mark.parametrize(("key", "value"), [
    ("diff.external", "touch /tmp/x"), ("diff.evil.textconv", "touch /tmp/x"), ("merge.evil.driver", "touch /tmp/x"),
    ("remote.origin.uploadpack", "touch /tmp/x; git-upload-pack"), ("core.worktree", "/tmp"),
    ("core.gitProxy", "touch /tmp/x"), ("core.alternateRefsCommand", "touch /tmp/x"),
    ("remote.origin.pushurl", "/tmp/elsewhere.git"), ("url./tmp/elsewhere.git.insteadOf", "/tmp/remote.git")])
def test_a_config_naming_a_program_that_cannot_be_switched_off_is_refused(repo: Path, key: str, value: str) -> None:
    raw_git(repo, "config", key, value)
    with pytest.raises(GitError, match=re.escape(f"its own config sets {key.lower()}, a program git would run")):
        git(["status"], cwd=repo)
    # a command that only reads objects is not refused for it (a user's own checkout under review)
    assert git(["rev-parse", "HEAD"], cwd=repo, objects_only=True).ok


def test_an_included_config_is_seen_too(repo: Path, tmp_path: Path) -> None:
    (repo / "evil.cfg").write_text("[diff]\n\texternal = touch /tmp/x\n")
    raw_git(repo, "config", "include.path", str(repo / "evil.cfg"))
    with pytest.raises(GitError, match=re.escape("diff.external")):
        git(["diff"], cwd=repo)


def test_gits_environment_is_an_allowlist(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SWARM_REDIS_URL", "OPENAI_API_KEY", "SWARM_TASK_SIGNING_KEY", "GIT_DIR", "GIT_CONFIG_GLOBAL"):
        monkeypatch.setenv(name, f"leaked-{name}")
    env = git_env()
    assert not any(v.startswith("leaked-") for v in env.values())
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull
    # what a program git starts sees (an alias is the caller's own: the wrapper passes args as given)
    seen = git(["-c", "alias.showenv=!env", "showenv"], cwd=repo).stdout.decode()
    assert "leaked-" not in seen and "GIT_CONFIG_NOSYSTEM=1" in seen


def test_loose_objects_are_read_and_written_as_git_does(repo: Path) -> None:
    git_dir = repo / ".git"
    head = raw_git(repo, "rev-parse", "HEAD")
    found = loose_object(git_dir, head)
    assert found is not None and found == ("commit", raw_git_bytes(repo, "cat-file", "commit", head))
    content = (b"tree %s\nparent %s\nauthor A <a@x> 1700000000 +0100\ncommitter C <c@x> 1700000001 -0230\n\n"
               b"subject\n\nbody\n" % (raw_git(repo, "rev-parse", "HEAD^{tree}").encode(), head.encode()))
    written = write_loose_object(git_dir, "commit", content)
    assert written == subprocess.run(["git", "hash-object", "-t", "commit", "--stdin"], cwd=repo, input=content,
                                     capture_output=True, check=True).stdout.decode().strip()
    assert raw_git_bytes(repo, "cat-file", "commit", written) == content
    assert write_loose_object(git_dir, "commit", content) == written  # already there: left as it is
    raw_git(repo, "fsck", "--strict", "--no-dangling")
    assert loose_object(git_dir, written) == ("commit", content)
    (git_dir / "objects" / written[:2] / written[2:]).chmod(0o644)
    (git_dir / "objects" / written[:2] / written[2:]).write_bytes(b"not zlib")
    assert loose_object(git_dir, written) is None  # corrupt: read by git instead, which says so
    assert loose_object(git_dir, "0" * 40) is None and loose_object(git_dir, "HEAD") is None
    raw_git(repo, "gc", "--quiet", "--prune=now")
    assert loose_object(git_dir, head) is None  # packed: not read here
