"""Git on repositories that agents or reviewed projects wrote: one wrapper, the same settings on every call.

A repository can name programs for git to run: hooks, ``core.fsmonitor``, ``core.sshCommand``,
``diff.external``, textconv, filter and merge drivers, ``remote.*.uploadpack``, credential helpers,
signing programs, transports. Git runs them as whoever runs git, here the worker, outside the
sandbox, with the worker's privileges. So every call made through :func:`git`:

- reads no system or global configuration, and gets its environment from an allowlist (never the
  Redis URL, a provider key or the signing key; the worker's PATH, HOME for ssh, proxies);
- overrides every setting that names a program (hooks point at /dev/null, fsmonitor is off, our own
  ssh command, no credential helper but the caller's, no signing, only the file, git, http(s) and ssh
  transports, no submodule recursion);
- neutralises the filter drivers the repository's own configuration defines (empty commands, not
  required), and refuses to run at all when that configuration names a program that cannot be
  switched off from the command line (``diff.external``, a diff or merge driver, ``core.worktree``,
  an upload/receive pack, ``core.gitProxy``, ``core.alternateRefsCommand``), or that would send a push or
  fetch elsewhere (``url.*.insteadOf``, a push URL): :class:`GitError` says which. (The build fetches and
  pushes by URL, never by the clone's remote name, so a changed ``remote.origin.url`` moves nothing.)

The sandbox keeps a clone's ``.git`` read-only to every command it runs, so in bubblewrap, and for a
root worker in the fallback, nothing can be planted there in the first place; this is the second wall.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from swarm_tasks.errors import GitError
from swarm_tasks.host.processes import ProcessResult, run_process
from swarm_tasks.host.workspace import Workspace

DEFAULT_TIMEOUT_S = 300.0
SAFE_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "core.sshCommand=ssh -o BatchMode=yes",
    "core.pager=cat", "credential.helper=", "commit.gpgSign=false", "tag.gpgSign=false", "push.gpgSign=false",
    "log.showSignature=false", "merge.verifySignatures=false", "gpg.program=false", "gpg.ssh.program=false",
    "gpg.x509.program=false", "protocol.allow=never", "protocol.file.allow=always", "protocol.git.allow=always",
    "protocol.http.allow=always", "protocol.https.allow=always", "protocol.ssh.allow=always",
    "protocol.ext.allow=never", "submodule.recurse=false", "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no", "diff.ignoreSubmodules=all", "status.submoduleSummary=false",
    # a root worker lends a workspace's files to its sandbox uid (see host.processes.lend): still ours to read
    "safe.directory=*",
)
# The environment of every git process: these from the worker's (for git's own needs), nothing else.
_PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
               "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_SSL_NO_VERIFY")
BASE_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true", "SSH_ASKPASS": "true", "GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true",
            "GIT_MERGE_AUTOEDIT": "no", "GIT_PAGER": "cat", "GIT_ATTR_NOSYSTEM": "1", "LC_ALL": "C",
            "LANGUAGE": "C"}
_FILTER = re.compile(r"^filter\.(.+)\.(clean|smudge|process|required)$")
_REFUSED = re.compile(r"^(diff\.external|diff\..+\.(command|textconv)|merge\..+\.driver|core\.worktree"
                      r"|core\.gitproxy|core\.alternaterefscommand|remote\..+\.(uploadpack|receivepack|vcs|pushurl)"
                      r"|url\..+\.(insteadof|pushinsteadof))$")
_CACHE: dict[tuple[str, int, int, int], tuple[str, ...]] = {}
_CACHE_LOCK = threading.Lock()


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a git process: a few of the worker's variables, then ours."""
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env | BASE_ENV | dict(extra or {})


def _config_key(cwd: Path) -> tuple[str, int, int, int] | None:
    """What the repository's own config looked like (a clone's ``.git/config``), for the cache."""
    try:
        st = (cwd / ".git" / "config").stat()
    except OSError:
        return None
    return str(cwd), st.st_ino, st.st_mtime_ns, st.st_size


def repository_overrides(cwd: Path, timeout_s: float = 60.0, *, refuse: bool = True) -> tuple[str, ...]:
    """``-c`` settings that switch off what the repository in ``cwd`` configures to run; with ``refuse``,
    :class:`GitError` if it configures a program that cannot be switched off. Empty outside a repository."""
    key = _config_key(cwd)
    if key is not None and not refuse:
        key = (*key[:3], -key[3] - 1)  # its own cache entry: the refusal was not checked
    with _CACHE_LOCK:
        if key is not None and key in _CACHE:
            return _CACHE[key]
    argv = ["git", *_flags(SAFE_CONFIG), "config", "--list", "--includes", "-z"]
    listing = run_process(argv, cwd, timeout_s, env=git_env())
    overrides: list[str] = []
    includes = False
    for entry in listing.stdout.decode("utf-8", "replace").split("\0") if listing.ok else ():
        name = entry.split("\n", 1)[0].lower()
        includes = includes or name.startswith(("include.", "includeif."))
        if refuse and _REFUSED.match(name):
            raise GitError(f"refusing to run git in {cwd}: its own config sets {name}, a program git would run "
                           "outside the sandbox (planted in the clone); remove it or start from a fresh clone")
        if (found := _FILTER.match(name)) is not None:
            value = "false" if found.group(2) == "required" else ""
            overrides.append(f"filter.{found.group(1)}.{found.group(2)}={value}")
    result = tuple(dict.fromkeys(overrides))
    if key is not None and not includes:  # an included file may change without the config changing
        with _CACHE_LOCK:
            _CACHE[key] = result
    return result


def _flags(settings: Sequence[str]) -> list[str]:
    return [arg for item in settings for arg in ("-c", item)]


def git(args: Sequence[str], *, cwd: Path | None, timeout_s: float = DEFAULT_TIMEOUT_S,
        config: Sequence[str] = (), env: Mapping[str, str] | None = None, stdin: bytes | None = None,
        objects_only: bool = False) -> ProcessResult:
    """Run ``git <args>`` in ``cwd`` with the safe settings, then the caller's ``config`` (``key=value``:
    more ``-c``), in the environment :func:`git_env` builds with ``env`` on top. Never raises for git's own
    failure (see the result); :class:`GitError` when the repository's config is refused. ``objects_only``:
    the command reads objects and refs only (never the work tree, a diff or a merge), so a diff or merge
    driver in the repository's config is no reason to refuse (a user's own checkout under review)."""
    overrides = repository_overrides(cwd, refuse=not objects_only) if cwd is not None else ()
    argv = ["git", *_flags(SAFE_CONFIG), *_flags(overrides), *_flags(config), *args]
    return run_process(argv, cwd, timeout_s, env=git_env(env), stdin=stdin)


def loose_object(git_dir: Path, sha: str, *, max_bytes: int = 1 << 20) -> tuple[str, bytes] | None:
    """``(type, content)`` of the object ``sha`` when it is loose in ``git_dir``'s own object store (as
    ``git cat-file <type> <sha>`` prints it); None when it is not there (packed, borrowed, absent), larger
    than ``max_bytes``, or does not hash to ``sha``. No git process: a commit just made is read this way
    on a push's hot path, where every process counts. SHA-1 repositories only."""
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        return None
    try:
        data = (git_dir / "objects" / sha[:2] / sha[2:]).read_bytes()
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, max_bytes + 64)
    except (OSError, zlib.error):
        return None
    if inflate.unconsumed_tail or hashlib.sha1(raw).hexdigest() != sha:  # noqa: S324 (git's object name)
        return None
    header, _, body = raw.partition(b"\0")
    kind, _, size = header.partition(b" ")
    if not size.isdigit() or int(size) != len(body):
        return None
    return kind.decode("ascii", "replace"), body


def write_loose_object(git_dir: Path, kind: str, content: bytes) -> str:
    """Store ``content`` as a loose object of ``kind`` in ``git_dir``'s object store, as ``git
    hash-object -w`` does (compressed, written aside and linked into place, read-only); return its name.
    No git process: a push's replayed commit is written this way inside the race window."""
    raw = b"%s %d\0" % (kind.encode("ascii"), len(content)) + content
    sha = hashlib.sha1(raw).hexdigest()  # noqa: S324 (git's object name)
    folder = git_dir / "objects" / sha[:2]
    target = folder / sha[2:]
    if target.exists():
        return sha
    folder.mkdir(exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix="tmp_obj_", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(zlib.compress(raw, 1))  # git's own default for loose objects (core.looseCompression)
        os.chmod(scratch, 0o444)
        with contextlib.suppress(FileExistsError):  # the same object, written meanwhile by someone else
            os.link(scratch, target)
    finally:
        os.unlink(scratch)
    return sha


_OPEN, _SEP, _BASE, _CLOSE = b"<<<<<<<", b"=======", b"|||||||", b">>>>>>>"


def marker_lines(data: bytes) -> list[int]:
    """Line numbers (1-based) of merge-conflict markers in a file's content: the one rule of the project
    (the build workflow and the agents' git_commit tool both use it, so it lives below both).

    A marker line starts with ``<<<<<<< ``, ``>>>>>>> `` or ``||||||| `` (diff3 style) or is exactly one of
    them (a CR before the newline is allowed). ``=======`` alone is also a Markdown/RST underline, so it
    counts only in a file that also has one of those markers.
    """
    found: list[int] = []
    separators: list[int] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        bare = line.rstrip(b"\r")
        if bare[:8] in (_OPEN + b" ", _CLOSE + b" ", _BASE + b" ") or bare in (_OPEN, _CLOSE, _BASE):
            found.append(number)
        elif bare == _SEP:
            separators.append(number)
    return sorted(found + separators) if found else []


def text_marker_lines(data: bytes) -> list[int]:
    """:func:`marker_lines` of a text file's content; none in a binary one (a NUL in its first 8 KiB)."""
    return [] if b"\x00" in data[:8192] else marker_lines(data)


def worktree_markers(root: Path, paths: Iterable[str], *, max_bytes: int | None = None) -> list[tuple[str, int]]:
    """``(path, line)`` of every conflict marker in the work-tree files ``paths`` (relative to ``root``).

    Links are skipped (committed as links: their target is not the content), so are missing and binary
    files and, with ``max_bytes``, larger ones; a path leading outside ``root`` raises WorkspaceError.
    """
    ws = Workspace(root)
    found: list[tuple[str, int]] = []
    for rel in paths:
        if (root / rel).is_symlink():
            continue
        target = ws.resolve(rel)
        try:
            st = target.stat()
            if not stat.S_ISREG(st.st_mode) or (max_bytes is not None and st.st_size > max_bytes):
                continue
            with ws.open(rel) as fh:
                data = fh.read()
        except FileNotFoundError:
            continue
        found += [(rel, number) for number in text_marker_lines(data)]
    return found


__all__ = ["BASE_ENV", "SAFE_CONFIG", "git", "git_env", "loose_object", "marker_lines", "repository_overrides",
           "text_marker_lines", "worktree_markers", "write_loose_object"]
