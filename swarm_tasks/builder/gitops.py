"""The git layer of the build swarm: the shared remote, each worker's clone, and committing into it.

Every git process runs through :func:`run_git`, which goes through the project's one git wrapper
(:func:`swarm_tasks.host.git.git`: no hook, fsmonitor, driver or other program the clone's config names
ever runs): no prompts (no terminal, no editor, no askpass that could block), a hard timeout that kills
the whole process group, English messages we can parse, and output with credentials redacted before it
reaches an exception or a log. Credentials never reach
git's command line or a clone's config: a password in the URL is split off and handed to git by a
credential helper that reads it from the child's environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from coordination.connection import redact_url
from swarm_tasks.errors import GitError, WorkspaceError
from swarm_tasks.host.git import git, worktree_markers
from swarm_tasks.host.processes import ProcessResult
from swarm_tasks.host.workspace import git_alternates
from swarm_tasks.settings import SwarmSettings

LOCAL_TIMEOUT_S = 300.0
# Secrets shorter than this are not searched for literally: replacing every "ab" would wreck messages.
_MIN_LITERAL_SECRET = 4
_MAX_LISTED = 20
_HELPER = ('!f() { if test "$1" = get; then printf "username=%s\\npassword=%s\\n" '
           '"$_SWARM_GIT_USERNAME" "$_SWARM_GIT_PASSWORD"; fi; }; f')
# Settings that make every git call deterministic and unattended, whatever the user's global config.
_BASE_CONFIG = ("merge.conflictStyle=merge", "rebase.autoStash=false", "advice.detachedHead=false",
                "http.lowSpeedLimit=1",
                # No automatic maintenance inside the push loop, where every millisecond widens the
                # race window; prepare_clone runs it between tasks instead.
                "maintenance.auto=false")
# Files a check or a tool leaves behind that are never anyone's change (interpreter and tool caches).
JUNK_GLOBS = ("**/__pycache__/**", "**/*.py[co]", "**/.pytest_cache/**", "**/.ruff_cache/**", "**/.mypy_cache/**",
              "**/.hypothesis/**")


@dataclass(frozen=True, slots=True)
class Credential:
    """A user name and password (or token) for an HTTP(S) remote: split from the URL, or given by
    ``SWARM_GIT_USERNAME`` / ``SWARM_GIT_PASSWORD`` (see :meth:`from_settings`)."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def from_settings(cls, settings: SwarmSettings, url: str) -> Credential | None:
        """The settings' credential for an HTTP(S) ``url`` that carries no password; None otherwise
        (no password set, another kind of remote, or the URL has its own). The user name defaults
        to the URL's."""
        if settings.git_password is None or "://" not in url:
            return None
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or parts.password is not None:
            return None
        return cls(settings.git_username or unquote(parts.username or ""), settings.git_password.get_secret_value())


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """The shared remote and the one branch every worker pushes to.

    ``url`` is a local path (a bare repository works), a ``file://`` URL or any git URL; an HTTP(S)
    URL may carry ``user:password@``, which is treated as if given as ``credential``.
    ``timeout_s`` bounds each network operation (ls-remote, clone, fetch, push).
    """

    url: str
    branch: str
    credential: Credential | None = field(default=None, repr=False)
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.url or self.url.startswith("-"):
            raise GitError(f"invalid remote URL {self.display_url!r}")
        bad = set(" ~^:?*[\\") | {"..", "@{", "//"}
        if (not self.branch or self.branch.startswith(("-", "/")) or self.branch.endswith((".", "/", ".lock"))
                or any(part in self.branch for part in bad) or any(ord(c) < 32 for c in self.branch)):
            raise GitError(f"invalid branch name {self.branch!r}")
        if self.credential is not None and urlsplit(self.url).password is not None:
            raise GitError("give the password in the URL or as credential, not both")

    def __repr__(self) -> str:
        return f"RemoteSpec(url={self.display_url!r}, branch={self.branch!r})"

    @property
    def is_local(self) -> bool:
        """True for a path on this machine (plain or ``file://``); scp-like ``host:path`` is remote."""
        if "://" in self.url:
            return self.url.startswith("file://")
        colon, slash = self.url.find(":"), self.url.find("/")
        return colon == -1 or (slash != -1 and slash < colon)

    @property
    def local_path(self) -> Path | None:
        if not self.is_local:
            return None
        raw = unquote(urlsplit(self.url).path) if self.url.startswith("file://") else self.url
        return Path(raw).expanduser().absolute()

    @property
    def git_url(self) -> str:
        """The URL git is given and a clone records: no password in it."""
        local = self.local_path
        if local is not None:
            return str(local)
        parts = urlsplit(self.url)
        if self.effective_credential is None or "@" not in parts.netloc:
            return self.url
        # No user name either: with one in the URL, curl sends it with an empty password and never
        # asks our helper.
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @property
    def effective_credential(self) -> Credential | None:
        if self.credential is not None:
            return self.credential
        if "://" not in self.url:
            return None
        parts = urlsplit(self.url)
        if parts.password is None:
            return None
        return Credential(unquote(parts.username or ""), unquote(parts.password))

    def redact(self, text: str) -> str:
        """``text`` with URL passwords and this remote's secret replaced by ``***``."""
        text = redact_url(text)
        cred = self.effective_credential
        if cred is not None and len(cred.password) >= _MIN_LITERAL_SECRET:
            for secret in {cred.password, quote(cred.password, safe="")}:
                text = text.replace(secret, "***")
        return text


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def run_git(args: Sequence[str], *, cwd: Path | None, spec: RemoteSpec | None = None,
            timeout_s: float = LOCAL_TIMEOUT_S, check: bool = True, stdin: bytes | None = None,
            extra_env: dict[str, str] | None = None) -> ProcessResult:
    """Run ``git <args>`` unattended. With ``check``, a failure raises :class:`GitError` whose message
    is redacted; without it the (unredacted) result is returned: redact with ``spec.redact`` first."""
    config = list(_BASE_CONFIG)
    env: dict[str, str] = {}
    if spec is not None:
        config.append(f"http.lowSpeedTime={max(1, int(spec.timeout_s))}")
        cred = spec.effective_credential
        if cred is not None:
            # The wrapper's empty credential.helper cleared any other, so ours is the only one asked.
            config.append(f"credential.helper={_HELPER}")
            env.update(_SWARM_GIT_USERNAME=cred.username, _SWARM_GIT_PASSWORD=cred.password)
    if extra_env:
        env.update(extra_env)
    result = git(args, cwd=cwd, timeout_s=timeout_s, config=config, env=env, stdin=stdin)
    if check and not result.ok:
        raise GitError(describe_failure(args, result, spec, timeout_s))
    return result


def describe_failure(args: Sequence[str], result: ProcessResult, spec: RemoteSpec | None,
                     timeout_s: float) -> str:
    """A one-paragraph, redacted account of a failed git call."""
    shown = " ".join(a for a in args[:3] if not a.startswith("-"))
    if result.timed_out:
        text = f"git {shown} did not finish within {timeout_s:g} s and was killed"
    else:
        tail = "\n".join(_decode(result.stderr or result.stdout).strip().splitlines()[-6:])
        text = f"git {shown} failed (exit {result.exit_code}): {tail}"
    return spec.redact(text) if spec is not None else redact_url(text)


def split_z(data: bytes) -> list[str]:
    """The entries of NUL-separated git output (``-z``): paths, decoded as the file system does."""
    return [os.fsdecode(item) for item in data.split(b"\0") if item]


# -- the remote ---------------------------------------------------------------------------------------

def remote_branches(spec: RemoteSpec) -> dict[str, str]:
    """Branch name -> tip sha on the remote, or :class:`GitError` saying why it cannot be read."""
    local = spec.local_path
    if local is not None:
        if not local.exists():
            raise GitError(f"remote {spec.display_url} does not exist")
        if not local.is_dir():
            raise GitError(f"remote {spec.display_url} is not a git repository (not a directory)")
    result = run_git(["ls-remote", "--heads", "--", spec.git_url], cwd=None, spec=spec,
                     timeout_s=spec.timeout_s, check=False)
    if result.timed_out:
        raise GitError(f"remote {spec.display_url} did not answer within {spec.timeout_s:g} s")
    if not result.ok:
        stderr = spec.redact(_decode(result.stderr)).strip()
        if local is not None and ("not a git repository" in stderr or "does not appear to be a git" in stderr):
            raise GitError(f"remote {spec.display_url} is not a git repository")
        detail = "\n".join(stderr.splitlines()[-4:])
        raise GitError(f"cannot reach remote {spec.display_url}: {detail}")
    heads: dict[str, str] = {}
    for line in _decode(result.stdout).splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha
    return heads


def borrowed_objects(spec: RemoteSpec) -> list[Path]:
    """The object directory that clones of a local remote borrow (see :func:`prepare_clone`): what a
    sandboxed command in such a clone must be able to read. Empty for a remote elsewhere."""
    local = spec.local_path
    if local is None:
        return []
    found = next((d / "objects" for d in _git_dirs(local) if (d / "objects").is_dir()), None)
    return [found.resolve()] if found is not None else []


def _git_dirs(local: Path) -> tuple[Path, Path]:
    """Where a local repository's git directory can be: inside it (a working copy) or itself (bare)."""
    return local / ".git", local


def validate_remote(spec: RemoteSpec) -> str:
    """The sha at the tip of ``spec.branch``; :class:`GitError` if the remote cannot be used."""
    heads = remote_branches(spec)
    if spec.branch in heads:
        return heads[spec.branch]
    if not heads:
        raise GitError(f"branch {spec.branch!r} does not exist on remote {spec.display_url}: "
                       "the repository has no branches (push an initial commit first)")
    names = sorted(heads)
    listed = ", ".join(names[:_MAX_LISTED]) + (f" and {len(names) - _MAX_LISTED} more"
                                               if len(names) > _MAX_LISTED else "")
    raise GitError(f"branch {spec.branch!r} does not exist on remote {spec.display_url}; "
                   f"branches: {listed}")


# -- the clone ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Tip:
    """The shared branch's tip: its commit and that commit's tree."""

    sha: str
    tree: str
    tracked: bool = True  # the remote-tracking ref was moved to it


@dataclass(frozen=True, slots=True)
class Clone:
    """A worker's own clone of the remote, checked out on ``spec.branch``."""

    path: Path
    spec: RemoteSpec
    local_timeout_s: float = LOCAL_TIMEOUT_S

    @property
    def branch(self) -> str:
        return self.spec.branch

    @property
    def upstream_ref(self) -> str:
        """The remote-tracking ref of the shared branch, as of the last fetch."""
        return f"refs/remotes/origin/{self.spec.branch}"

    def git(self, *args: str, network: bool = False, check: bool = True,
            stdin: bytes | None = None, extra_env: dict[str, str] | None = None) -> ProcessResult:
        timeout = self.spec.timeout_s if network else self.local_timeout_s
        return run_git(args, cwd=self.path, spec=self.spec, timeout_s=timeout, check=check, stdin=stdin,
                       extra_env=extra_env)

    def out(self, *args: str) -> str:
        """Stripped stdout of a git command that must succeed."""
        return _decode(self.git(*args).stdout).strip()

    def out_with(self, *args: str, stdin: bytes, extra_env: dict[str, str] | None = None) -> str:
        return _decode(self.git(*args, stdin=stdin, extra_env=extra_env).stdout).strip()

    def head(self) -> str:
        return self.out("rev-parse", "HEAD")

    def git_dir(self) -> Path:
        return self.path / ".git"

    def fetch(self) -> str:
        """Fetch the shared branch; return its tip."""
        return self.fetch_tip().sha

    def fetch_tip(self, *, track: bool = True) -> Tip:
        """Bring the remote-tracking ref up to the shared branch's tip on the remote; return the tip.

        A clone that borrows a local remote's objects (see :func:`prepare_clone`) has every object of
        the remote already: it reads the tip from the remote's refs and moves the tracking ref (two
        short git calls, nothing transferred, no files written but the ref). Any other clone fetches.
        ``track=False``: a borrowing clone only reads the tip and leaves the tracking ref where it was
        (the caller moves it later, out of a push's race window, see :meth:`track`). A failure raises
        :class:`GitError` (redacted).
        """
        shared = self.borrowed_remote()
        if shared is not None:
            read = run_git(["--git-dir", str(shared), "rev-parse", f"refs/heads/{self.branch}^{{commit}}",
                            f"refs/heads/{self.branch}^{{tree}}"], cwd=self.path, spec=self.spec,
                           timeout_s=self.spec.timeout_s, check=False)
            words = _decode(read.stdout).split()
            if read.ok and len(words) == 2:
                if track:
                    self.track(words[0])
                return Tip(words[0], words[1], tracked=track)
            # fetch instead: it reports what is wrong with the remote in git's own words
        self.git("fetch", "--quiet", "--no-tags", self.spec.git_url,
                 f"+refs/heads/{self.branch}:{self.upstream_ref}", network=True)
        sha, tree = self.out("rev-parse", self.upstream_ref, f"{self.upstream_ref}^{{tree}}").split()
        return Tip(sha, tree)

    def track(self, sha: str, why: str = "tip read from the shared remote") -> None:
        """Move the remote-tracking ref to ``sha`` (a commit the remote's branch was seen at)."""
        self.git("update-ref", "-m", f"swarm: {why}", self.upstream_ref, sha)

    def upstream_sha(self) -> str:
        """The remote-tracking ref's commit, as of the last fetch (read from its file when it is loose)."""
        try:
            text = (self.git_dir() / self.upstream_ref).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text):
            return text
        return self.out("rev-parse", self.upstream_ref)  # packed, or not there: git says which

    def borrowed_remote(self) -> Path | None:
        """The local remote's git directory when this clone borrows its objects (``objects/info/alternates``)."""
        local = self.spec.local_path
        if local is None:
            return None
        candidates = {d.resolve() for d in _git_dirs(local)}
        return next((alt.parent for alt in git_alternates(self.git_dir()) if alt.parent.resolve() in candidates), None)

    def dirty_files(self) -> list[str]:
        """Tracked files with uncommitted changes (staged or not)."""
        return split_z(self.git("status", "--porcelain", "-z", "--untracked-files=no").stdout)

    def operation_in_progress(self) -> str | None:
        """The name of an interrupted rebase, merge or cherry-pick left in the clone, if any."""
        names = {"rebase-merge": "rebase", "rebase-apply": "rebase", "MERGE_HEAD": "merge",
                 "CHERRY_PICK_HEAD": "cherry-pick", "REVERT_HEAD": "revert", "sequencer": "cherry-pick"}
        return next((op for name, op in names.items() if (self.git_dir() / name).exists()), None)

    def clear_operations(self) -> None:
        """Abandon any interrupted rebase/merge/cherry-pick and discard tracked changes (HEAD stays)."""
        self.git("reset", "--quiet", "--hard")
        git_dir = self.git_dir()
        if (git_dir / "rebase-merge").exists() or (git_dir / "rebase-apply").exists():
            self.git("rebase", "--quit", check=False)
        self.git("cherry-pick", "--quit", check=False)


def prepare_clone(spec: RemoteSpec, dest: Path, *, author_name: str, author_email: str,
                  union: Sequence[str] = ()) -> Clone:
    """A clone of ``spec`` in ``dest`` checked out at the branch tip, with a local commit identity.

    A fresh clone if ``dest`` is missing or empty; if ``dest`` already is a clone of this remote it is
    fetched and hard-reset to the tip (interrupted operations abandoned, local commits and untracked
    files dropped; ignored files kept). Anything else in ``dest`` is refused with :class:`WorkspaceError`.
    A clone of a remote on this machine borrows its objects (``git clone --shared``) instead of copying
    them: git's caveat applies, so a remote whose branch is rewritten and then pruned while a build
    runs leaves its clones without objects. Files matching the ``union`` globs merge with git's union
    driver in this clone (``info/attributes``: the swarm's, not the repository's ``.gitattributes``).
    """
    dest = dest.absolute()
    clone = Clone(dest, spec)
    if (dest / ".git").is_dir():
        origin = run_git(["config", "--get", "remote.origin.url"], cwd=dest, spec=spec, check=False)
        recorded = _decode(origin.stdout).strip()
        if recorded != spec.git_url:
            raise WorkspaceError(f"{dest} is a clone of {spec.redact(recorded) or 'nothing'}, "
                                 f"not of {spec.display_url}")
        clone.clear_operations()
        tip = clone.fetch()
        clone.git("checkout", "--quiet", "--force", "-B", spec.branch, tip)
        clone.git("clean", "--quiet", "-ffd")
        clone.git("maintenance", "run", "--auto", "--quiet")
    else:
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise WorkspaceError(f"{dest} exists and is not an empty directory or a clone of the remote")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A local remote's objects are borrowed, not copied (--shared): a fetch then has nothing to
        # transfer, which keeps the push race short (see Clone.fetch_tip). What a clone borrows stays
        # reachable on the remote because the swarm only ever moves the branch forward.
        shared = ["--shared"] if spec.local_path is not None else []
        result = run_git(["clone", "--quiet", "--no-tags", "--single-branch", *shared, "--branch", spec.branch,
                          "--", spec.git_url, str(dest)], cwd=dest.parent, spec=spec,
                         timeout_s=spec.timeout_s, check=False)
        if not result.ok:
            validate_remote(spec)  # raises the precise reason when it is the remote or the branch
            raise GitError(describe_failure(["clone"], result, spec, spec.timeout_s))
    for key, value in (("user.name", author_name), ("user.email", author_email),
                       ("commit.gpgsign", "false"), ("merge.conflictStyle", "merge"), ("core.editor", "true")):
        clone.git("config", key, value)  # local, so git run by hand (or by an agent) here never prompts
    attributes = clone.git_dir() / "info" / "attributes"
    attributes.parent.mkdir(parents=True, exist_ok=True)
    attributes.write_text("".join(f"{glob} merge=union\n" for glob in union))
    return clone


# -- committing ---------------------------------------------------------------------------------------

def find_conflict_markers(root: Path, paths: Sequence[str]) -> list[tuple[str, int]]:
    """``(path, line number)`` of every conflict-marker line (see :func:`marker_lines`) in the text files
    ``paths`` under ``root``. Missing files, symlinks and binary files are skipped; any size is read (a
    marker left in a large file must not land)."""
    return worktree_markers(root, paths)


def format_markers(markers: Sequence[tuple[str, int]]) -> str:
    listed = ", ".join(f"{path}:{line}" for path, line in markers[:_MAX_LISTED])
    more = f" and {len(markers) - _MAX_LISTED} more" if len(markers) > _MAX_LISTED else ""
    return listed + more


def _pathspec_stdin(paths: Sequence[str]) -> bytes:
    return b"".join(os.fsencode(p) + b"\0" for p in paths)


def commit_all(clone: Clone, message: str, *, paths: Sequence[str] | None = None) -> str | None:
    """Commit every change in the clone (or only ``paths``); return the new sha, None if nothing changed.
    Caches a check or tool left (``__pycache__``, ``.pytest_cache`` ...) are not changes.

    Refuses with :class:`GitError` naming ``file:line`` if a file to be committed holds conflict
    markers; the changes are then left unstaged in the working tree.
    """
    if paths is None:
        clone.git("add", "--all", "--", ".", *(f":(exclude,glob){g}" for g in JUNK_GLOBS))
    else:
        clone.git("reset", "--quiet")  # only what was asked for goes into this commit
        if not paths:
            return None
        clone.git("--literal-pathspecs", "add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul",
                  stdin=_pathspec_stdin(paths))
    status = split_z(clone.git("diff", "--cached", "--name-status", "-z", "--no-renames").stdout)
    if not status:
        return None
    changed = [status[i + 1] for i in range(0, len(status) - 1, 2) if status[i] != "D"]
    markers = find_conflict_markers(clone.path, changed)
    if markers:
        clone.git("reset", "--quiet")
        raise GitError(f"refusing to commit conflict markers: {format_markers(markers)}")
    clone.git("commit", "--quiet", "--no-verify", "--allow-empty-message", "--file=-", stdin=message.encode())
    return clone.head()
