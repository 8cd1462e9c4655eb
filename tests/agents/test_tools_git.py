"""Git tools on real repositories made in tmp_path: status, diff, commit, conflict markers, hardening."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from swarm_tasks.agents.tools.base import ToolContext, ToolResult, run_tool
from swarm_tasks.agents.tools.git import (
    GitCommitTool,
    GitDiffTool,
    GitStatusTool,
    find_conflict_markers,
    marker_lines,
)
from tests.agents import make_ctx

CONFLICT = "a\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> feature\nz\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Repo Owner")
    git(root, "config", "user.email", "owner@example.invalid")
    (root / "app.py").write_text("print('v1')\n")
    (root / "README.rst").write_text("Usage\n=======\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def ctx(repo: Path) -> ToolContext:
    return make_ctx(repo, agent_id="worker 3/7")


def call(tool: object, ctx: ToolContext, **args: object) -> ToolResult:
    return run_tool(tool, args, ctx)  # type: ignore[arg-type]


def test_flags() -> None:
    assert (GitStatusTool.idempotent, GitDiffTool.idempotent, GitCommitTool.idempotent) == (True, True, False)


def test_status(ctx: ToolContext, repo: Path) -> None:
    clean = call(GitStatusTool(), ctx)
    assert clean.content == "## main\n(working tree clean)" and clean.data == {"clean": True}
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "new.txt").write_text("n\n")
    dirty = call(GitStatusTool(), ctx)
    assert dirty.content.splitlines() == ["## main", " M app.py", "?? new.txt"]


def test_diff_unstaged_staged_and_path(ctx: ToolContext, repo: Path) -> None:
    assert call(GitDiffTool(), ctx).content == "no unstaged changes"
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "README.rst").write_text("Use\n===\n")
    diff = call(GitDiffTool(), ctx)
    assert "-print('v1')\n+print('v2')" in diff.content and "README.rst" in diff.content
    only = call(GitDiffTool(), ctx, path="app.py")
    assert "app.py" in only.content and "README.rst" not in only.content
    assert call(GitDiffTool(), ctx, staged=True).content == "no staged changes"
    git(repo, "add", "app.py")
    assert "+print('v2')" in call(GitDiffTool(), ctx, staged=True).content
    assert call(GitDiffTool(), ctx, path="../elsewhere").is_error


def test_diff_is_truncated(repo: Path) -> None:
    ctx = make_ctx(repo, make_ctx(repo).settings.model_copy(update={"file_max_read_bytes": 500}))
    (repo / "app.py").write_text("".join(f"print({i})\n" for i in range(400)))
    diff = call(GitDiffTool(), ctx)
    assert len(diff.content) < 700 and "more bytes not shown; pass path" in diff.content


def test_commit_all_with_agent_identity(ctx: ToolContext, repo: Path) -> None:
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "added.txt").write_text("new\n")
    (repo / "README.rst").unlink()
    result = call(GitCommitTool(), ctx, message="Update app\n\nDetails here.")
    assert not result.is_error, result.content
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert result.content == f"committed {sha[:10]} on main: Update app (3 file(s))"
    identity = git(repo, "log", "-1", "--format=%an <%ae>|%cn|%s")
    assert identity == "worker 3/7 <worker-3-7@swarm-tasks.invalid>|worker 3/7|Update app\n"
    assert git(repo, "status", "--porcelain") == ""
    assert "nothing to commit" in call(GitCommitTool(), ctx, message="again").content


def test_commit_only_given_paths(ctx: ToolContext, repo: Path) -> None:
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "other.txt").write_text("later\n")
    result = call(GitCommitTool(), ctx, message="just app", paths=["app.py"])
    assert not result.is_error and result.data["files"] == ["app.py"]  # type: ignore[index]
    assert git(repo, "status", "--porcelain") == "?? other.txt\n"
    assert call(GitCommitTool(), ctx, message="x", paths=["../outside"]).is_error


def test_commit_refuses_conflict_markers(ctx: ToolContext, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text(CONFLICT)
    (repo / "fine.txt").write_text("ok\n")
    result = call(GitCommitTool(), ctx, message="oops")
    assert result.is_error
    assert "conflict markers in 1 staged file(s)" in result.content
    assert "app.py:2\n  app.py:4\n  app.py:6" in result.content and "fine.txt" not in result.content
    assert git(repo, "rev-parse", "HEAD") == head  # nothing committed
    (repo / "app.py").write_text("a\nours\nz\n")
    assert not call(GitCommitTool(), ctx, message="resolved").is_error


def test_rst_underline_alone_is_not_a_marker(ctx: ToolContext, repo: Path) -> None:
    (repo / "README.rst").write_text("Install\n=======\n\nUsage\n=======\n")
    assert not call(GitCommitTool(), ctx, message="docs").is_error


def test_find_conflict_markers_worktree_and_staged(repo: Path) -> None:
    (repo / "app.py").write_text(CONFLICT)
    (repo / "crlf.txt").write_bytes(b"x\r\n<<<<<<< ours\r\n=======\r\n>>>>>>> theirs\r\n")
    (repo / "bin.dat").write_bytes(b"\x00<<<<<<< HEAD\n")
    (repo / "diff3.txt").write_text("<<<<<<< a\n1\n||||||| base\n0\n=======\n2\n>>>>>>> b\n")
    paths = ["app.py", "crlf.txt", "bin.dat", "diff3.txt", "README.rst", "gone.txt"]
    expected = [("app.py", 2), ("app.py", 4), ("app.py", 6), ("crlf.txt", 2), ("crlf.txt", 3), ("crlf.txt", 4),
                ("diff3.txt", 1), ("diff3.txt", 3), ("diff3.txt", 5), ("diff3.txt", 7)]
    assert find_conflict_markers(repo, paths) == expected
    assert find_conflict_markers(repo, paths, staged=True) == []  # the index still has the clean versions
    git(repo, "add", "app.py")
    assert find_conflict_markers(repo, paths, staged=True) == expected[:3]
    assert marker_lines(b"<<<<<<<< not\n======== no\n=======\n") == []


def test_hooks_and_fsmonitor_never_run(ctx: ToolContext, repo: Path, tmp_path: Path) -> None:
    """An agent's shell can write .git/hooks and .git/config; git run by the worker must not obey."""
    proof = tmp_path / "pwned"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {proof}\n")
    hook.chmod(0o755)
    git(repo, "config", "core.hooksPath", str(repo / ".git" / "hooks"))
    git(repo, "config", "core.fsmonitor", f"touch {proof}-fsmonitor; true")
    (repo / "app.py").write_text("print('v3')\n")
    call(GitStatusTool(), ctx)
    assert not call(GitCommitTool(), ctx, message="with hooks around").is_error
    assert not proof.exists() and not Path(f"{proof}-fsmonitor").exists()


def test_repository_filters_are_refused(ctx: ToolContext, repo: Path, tmp_path: Path) -> None:
    git(repo, "config", "filter.evil.clean", f"touch {tmp_path / 'pwned'}; cat")
    (repo / ".gitattributes").write_text("*.py filter=evil\n")
    for tool in (GitStatusTool(), GitDiffTool(), GitCommitTool()):
        result = call(tool, ctx, **({"message": "m"} if tool.name == "git_commit" else {}))
        assert result.is_error and "filter.evil.clean" in result.content
    assert not (tmp_path / "pwned").exists()


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = call(GitStatusTool(), make_ctx(plain))
    assert result.is_error and "not a git repository" in result.content
