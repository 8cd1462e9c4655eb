"""Git tools (status, diff, commit) and the conflict-marker check the build swarm runs before pushing.

These run git in the worker, outside the sandbox, on a repository an agent wrote. So every call goes
through the project's git wrapper (:func:`swarm_tasks.host.git.git`: no hook, fsmonitor, driver,
signing program or transport the repository names ever runs), without network; and a repository whose
own config defines clean/smudge filters or moves the work tree elsewhere is refused outright.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.agents.tools.files import confined, workspace_of
from swarm_tasks.errors import GitError, ToolError
from swarm_tasks.host.git import git, marker_lines, text_marker_lines, worktree_markers
from swarm_tasks.host.workspace import Workspace

GIT_TIMEOUT_S = 120.0
MARKER_MAX_FILE_BYTES = 20 * 1024**2
DEFAULT_EMAIL_DOMAIN = "swarm-tasks.invalid"  # reserved TLD: clearly not a real mailbox
_NO_NETWORK = tuple(f"protocol.{name}.allow=never" for name in ("file", "git", "http", "https", "ssh"))
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0"}
_DANGEROUS_KEY = re.compile(r"^(filter\..+\.(clean|smudge|process)|core\.worktree)$")


def find_conflict_markers(repo_path: Path, paths: Iterable[str], *, staged: bool = False) -> list[tuple[str, int]]:
    """``(path, line)`` of every conflict marker in ``paths`` (relative to the repository root).

    Reads the work tree, or with ``staged`` the content in the index (what a commit would record).
    Missing, binary, symlinked and oversized files are skipped; paths outside the repository are refused.
    """
    hits: list[tuple[str, int]] = []
    wanted = sorted(set(paths))
    if staged:
        for path, sha in _index_blobs(repo_path, wanted).items():
            if int(run_git(repo_path, ["cat-file", "-s", sha]).strip()) <= MARKER_MAX_FILE_BYTES:
                blob = git(["cat-file", "blob", sha], cwd=repo_path, timeout_s=GIT_TIMEOUT_S, config=_NO_NETWORK)
                hits += [(path, no) for no in text_marker_lines(blob.stdout)]
        return hits
    return worktree_markers(repo_path, wanted, max_bytes=MARKER_MAX_FILE_BYTES)


def _index_blobs(root: Path, paths: list[str]) -> dict[str, str]:
    """Staged regular files among ``paths``: path -> blob sha. Unmerged paths are an error."""
    if not paths:
        return {}
    out = run_git(root, ["ls-files", "-s", "-z", "--", *(f":(literal){p}" for p in paths)])
    blobs: dict[str, str] = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, sha, stage = meta.split()
        if stage != "0":
            raise ToolError(f"{path} has an unresolved merge conflict (stage {stage} in the index); resolve "
                            "it, then stage the result")
        if mode in ("100644", "100755"):
            blobs[path] = sha
    return blobs


def run_git(root: Path, args: list[str], *, env: dict[str, str] | None = None) -> str:
    """Run git in ``root`` through the wrapper, without network; ToolError with git's message on failure."""
    try:
        done = git(args, cwd=root, timeout_s=GIT_TIMEOUT_S, config=_NO_NETWORK, env=_GIT_ENV | (env or {}))
    except GitError as exc:
        raise ToolError(str(exc)) from None
    out, err = (text.decode("utf-8", "replace") for text in (done.stdout, done.stderr))
    if done.timed_out:
        raise ToolError(f"git {args[0]} did not finish within {GIT_TIMEOUT_S:g} s and was killed")
    if done.exit_code != 0:
        raise ToolError(f"git {args[0]} failed: {(err or out).strip() or f'exit status {done.exit_code}'}")
    return out


def open_repo(ctx: ToolContext) -> tuple[Workspace, Path]:
    """The workspace and its repository root (the workspace root itself), checked for dangerous config."""
    ws = workspace_of(ctx)
    if not (ws.root / ".git").exists():
        raise ToolError("the workspace is not a git repository (no .git at its root)")
    listing = run_git(ws.root, ["config", "--list", "--show-scope", "--includes", "-z"])
    tokens = listing.split("\0")  # scope NUL key LF value NUL ...
    for scope, entry in zip(tokens[::2], tokens[1::2], strict=False):
        key = entry.split("\n", 1)[0].lower()
        if scope in ("local", "worktree") and _DANGEROUS_KEY.match(key):
            raise ToolError(f"the repository's own config sets {key}, which would run a program or touch files "
                            "outside the sandbox when git runs here; remove it (git config --unset) first")
    return ws, ws.root


def _pathspec(ws: Workspace, path: str) -> str:
    with confined():
        ws.resolve(path)  # confinement check; git is given the path as written, links not followed
    rel = Path(path.strip() or ".")
    if rel.is_absolute():
        rel = Path(ws.relative(rel))
    return f":(literal){rel.as_posix()}"


def _cut(text: str, cap: int, hint: str) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= cap:
        return text
    return data[:cap].decode("utf-8", "ignore") + f"\n[... {len(data) - cap} more bytes not shown; {hint}]"


class GitStatusArgs(ToolArgs):
    pass


class GitStatusTool(Tool):
    name = "git_status"
    description = "Show the branch and which files are staged, changed or untracked (git status --short)."
    Args = GitStatusArgs

    def run(self, args: GitStatusArgs, ctx: ToolContext) -> ToolResult:
        _, root = open_repo(ctx)
        out = run_git(root, ["status", "--short", "--branch", "--ignore-submodules=all"]).rstrip("\n")
        clean = len(out.splitlines()) <= 1
        text = f"{out}\n(working tree clean)" if clean else out
        return ToolResult(_cut(text, ctx.settings.file_max_read_bytes, "commit or narrow the change"),
                          data={"clean": clean})


class GitDiffArgs(ToolArgs):
    staged: bool = Field(default=False, description="Show the staged changes (the index) instead of the "
                                                    "unstaged ones.")
    path: str | None = Field(default=None, description="Limit the diff to this file or directory.")


class GitDiffTool(Tool):
    name = "git_diff"
    description = ("Show changes as a unified diff: unstaged changes by default, staged ones with staged=true. "
                   "Untracked files are not included (see git_status).")
    Args = GitDiffArgs

    def run(self, args: GitDiffArgs, ctx: ToolContext) -> ToolResult:
        ws, root = open_repo(ctx)
        cmd = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", "--ignore-submodules=all"]
        if args.staged:
            cmd.append("--cached")
        if args.path:
            cmd += ["--", _pathspec(ws, args.path)]
        out = run_git(root, cmd)
        if not out.strip():
            return ToolResult(f"no {'staged' if args.staged else 'unstaged'} changes", data={"empty": True})
        return ToolResult(_cut(out, ctx.settings.file_max_read_bytes, "pass path to see one file's diff"),
                          data={"empty": False})


class GitCommitArgs(ToolArgs):
    message: str = Field(min_length=1, description="Commit message: a short summary line, then details.")
    paths: list[str] | None = Field(default=None, description="Files to stage and commit. Unset: every change "
                                                              "in the work tree, including new and deleted files.")


class GitCommitTool(Tool):
    name = "git_commit"
    description = ("Stage changes and commit them. Refuses if a staged file still contains merge conflict "
                   "markers (<<<<<<<, =======, >>>>>>>), listing where they are.")
    Args = GitCommitArgs
    idempotent = False

    def run(self, args: GitCommitArgs, ctx: ToolContext) -> ToolResult:
        ws, root = open_repo(ctx)
        specs = [_pathspec(ws, p) for p in args.paths] if args.paths else []
        run_git(root, ["add", "-A", "--", *specs] if specs else ["add", "-A"])
        staged = [p for p in run_git(root, ["diff", "--cached", "--name-only", "-z", "--no-renames"]).split("\0") if p]
        if not staged:
            raise ToolError("nothing to commit: no changes are staged")
        with confined():
            markers = find_conflict_markers(root, staged, staged=True)
        if markers:
            shown = "\n".join(f"  {path}:{line}" for path, line in markers[:50])
            more = f"\n  ... and {len(markers) - 50} more" if len(markers) > 50 else ""
            files = sorted({p for p, _ in markers})
            raise ToolError(f"refusing to commit: conflict markers in {len(files)} staged file(s):\n{shown}{more}\n"
                            "Resolve the conflicts (remove the marker lines), then commit again.")
        name = ctx.agent_id or "swarm-agent"
        email = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-') or 'agent'}@{DEFAULT_EMAIL_DOMAIN}"
        identity = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        run_git(root, ["commit", "--no-verify", "--quiet", "-m", args.message], env=identity)
        sha = run_git(root, ["rev-parse", "HEAD"]).strip()
        branch = run_git(root, ["rev-parse", "--abbrev-ref", "HEAD"]).strip()
        summary = args.message.strip().splitlines()[0]
        return ToolResult(f"committed {sha[:10]} on {branch}: {summary} ({len(staged)} file(s))",
                          data={"sha": sha, "branch": branch, "files": staged})


GIT_TOOLS: tuple[Tool, ...] = (GitStatusTool(), GitDiffTool(), GitCommitTool())
__all__ = ["GIT_TOOLS", "GitCommitTool", "GitDiffTool", "GitStatusTool", "find_conflict_markers",
           "marker_lines", "run_git"]
