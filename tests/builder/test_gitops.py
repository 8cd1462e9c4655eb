"""The git layer: remotes, clones, the check, commits with conflict markers, pushes that race."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from swarm_tasks.builder import (
    Credential,
    RemoteSpec,
    commit_all,
    find_conflict_markers,
    prepare_clone,
    push_with_rebase,
    run_check,
    validate_remote,
)
from swarm_tasks.builder.gitops import borrowed_objects
from swarm_tasks.errors import GitError, WorkspaceError
from swarm_tasks.host.sandbox import make_sandbox
from swarm_tasks.settings import SwarmSettings
from tests.agents import make_settings
from tests.builder import SHARED, assert_sane, clone_of, edit, git, make_remote, refuse, remote_tip


@pytest.fixture
def remote(tmp_path: Path) -> RemoteSpec:
    return make_remote(tmp_path, {"README.md": "hello\n", "shared.txt": SHARED})


# -- the remote -----------------------------------------------------------------------------------

def test_validate_remote_returns_the_tip(remote: RemoteSpec) -> None:
    assert validate_remote(remote) == remote_tip(remote)
    assert validate_remote(RemoteSpec(url=f"file://{remote.url}", branch="main")) == remote_tip(remote)


def test_validate_remote_explains_what_is_wrong(tmp_path: Path) -> None:
    spec = make_remote(tmp_path, {"a": "a\n"}, extra_branches=("release", "dev"))
    with pytest.raises(GitError, match=r"branch 'nope' does not exist.*branches: dev, main, release"):
        validate_remote(RemoteSpec(url=spec.url, branch="nope"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="is not a git repository"):
        validate_remote(RemoteSpec(url=str(tmp_path / "plain"), branch="main"))
    with pytest.raises(GitError, match="does not exist"):
        validate_remote(RemoteSpec(url=str(tmp_path / "missing.git"), branch="main"))
    with pytest.raises(GitError, match=r"cannot reach remote http://127\.0\.0\.1:1/x\.git"):
        validate_remote(RemoteSpec(url="http://127.0.0.1:1/x.git", branch="main", timeout_s=10))
    with pytest.raises(GitError, match="invalid branch name"):
        RemoteSpec(url=spec.url, branch="--upload-pack=evil")


def test_a_silent_remote_cannot_hang_us() -> None:
    with socket.socket() as server:  # accepts connections (backlog) and never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        with pytest.raises(GitError, match="did not answer within 1 s"):
            validate_remote(RemoteSpec(url=f"http://127.0.0.1:{port}/r.git", branch="main", timeout_s=1))


def test_credentials_never_appear_in_errors(tmp_path: Path) -> None:
    spec = RemoteSpec(url="http://user:s3cret@127.0.0.1:1/repo.git", branch="main", timeout_s=10)
    assert "s3cret" not in repr(spec) and "s3cret" not in spec.git_url
    with pytest.raises(GitError) as raised:
        validate_remote(spec)
    with pytest.raises(GitError) as cloning:
        prepare_clone(spec, tmp_path / "c", author_name="a", author_email="a@x")
    for error in (raised.value, cloning.value):
        assert "s3cret" not in str(error) and "s3cret" not in repr(error.args)
        assert "user:***@" in str(error)


@pytest.fixture
def auth_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server that demands basic auth, records what it got, and then says 404."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            header = self.headers.get("Authorization")
            if header is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
            else:
                seen.append(base64.b64decode(header.split()[1]).decode())
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["url", "credential"])
def test_credentials_reach_git_through_the_helper_only(auth_server: tuple[int, list[str]], where: str) -> None:
    port, seen = auth_server
    if where == "url":
        spec = RemoteSpec(url=f"http://bot:s3cr%40t@127.0.0.1:{port}/r.git", branch="main", timeout_s=10)
    else:
        spec = RemoteSpec(url=f"http://127.0.0.1:{port}/r.git", branch="main", timeout_s=10,
                          credential=Credential("bot", "s3cr@t"))
    with pytest.raises(GitError) as raised:
        validate_remote(spec)
    assert seen and seen[-1] == "bot:s3cr@t"
    assert "s3cr" not in str(raised.value)


def test_credentials_from_the_settings_reach_git_through_the_helper(auth_server: tuple[int, list[str]],
                                                                    tmp_path: Path) -> None:
    port, seen = auth_server
    settings = SwarmSettings(git_username="bot", git_password=SecretStr("t0ken@x"), state_dir=tmp_path)
    url = f"http://127.0.0.1:{port}/r.git"
    spec = RemoteSpec(url=url, branch="main", timeout_s=10, credential=Credential.from_settings(settings, url))
    assert "t0ken" not in repr(spec) and "t0ken" not in spec.git_url
    with pytest.raises(GitError) as raised:
        validate_remote(spec)
    assert seen and seen[-1] == "bot:t0ken@x"
    assert "t0ken" not in str(raised.value)
    # An error quoting the secret (as git's stderr may) is redacted, raw and percent-encoded.
    assert spec.redact("fatal: auth t0ken@x / t0ken%40x refused") == "fatal: auth *** / *** refused"
    # The user name defaults to the URL's; the URL's own password, other kinds of remote and no
    # password set all mean no credential from the settings.
    anonymous = SwarmSettings(git_password=SecretStr("t0ken@x"), state_dir=tmp_path)
    assert Credential.from_settings(anonymous, f"https://ci@127.0.0.1:{port}/r.git") == Credential("ci", "t0ken@x")
    assert Credential.from_settings(settings, f"http://u:pw@127.0.0.1:{port}/r.git") is None
    for other in ("git@example.com:r.git", "ssh://git@example.com/r.git", str(tmp_path), f"file://{tmp_path}"):
        assert Credential.from_settings(settings, other) is None
    assert Credential.from_settings(SwarmSettings(git_username="bot", state_dir=tmp_path), url) is None


# -- the clone -------------------------------------------------------------------------------------

def test_prepare_clone_fresh_then_reused(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w1")
    assert clone.head() == remote_tip(remote)
    assert git(clone.path, "config", "--local", "user.email") == "w1@example.invalid"
    edit(clone, "README.md", "local only\n", "unpushed")
    (clone.path / "junk.txt").write_text("untracked")
    (clone.path / "shared.txt").write_text("dirty")
    other = clone_of(remote, tmp_path, "w2")
    upstream = edit(other, "README.md", "upstream\n", "upstream")
    assert push_with_rebase(other, resolve=refuse, max_attempts=1).landed
    again = clone_of(remote, tmp_path, "w1")
    assert again.head() == upstream
    assert (again.path / "README.md").read_text() == "upstream\n"
    assert not (again.path / "junk.txt").exists()
    assert_sane(again)


def _object_count(clone_path: Path) -> int:
    stats = dict(line.split(": ") for line in git(clone_path, "count-objects", "-v").splitlines())
    return int(stats["count"]) + int(stats["in-pack"])


def test_a_local_remote_is_cloned_borrowing_its_objects(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w1")
    assert clone.borrowed_remote() == Path(remote.url).resolve()
    assert _object_count(clone.path) == 0  # nothing copied: every object is read from the remote
    other = clone_of(remote, tmp_path, "w2")
    upstream = edit(other, "README.md", "upstream\n", "upstream")
    assert push_with_rebase(other, resolve=refuse, max_attempts=1).landed
    tip = clone.fetch_tip()
    assert tip.sha == upstream == clone.upstream_sha() == git(clone.path, "rev-parse", clone.upstream_ref)
    assert tip.tree == git(clone.path, "rev-parse", f"{upstream}^{{tree}}")
    assert _object_count(clone.path) == 0  # the tip was read, nothing transferred
    assert "upstream" in git(clone.path, "log", "--format=%s", "-1", clone.upstream_ref)


def test_a_clone_with_its_own_objects_fetches(remote: RemoteSpec, tmp_path: Path) -> None:
    git(tmp_path, "clone", "--quiet", "--", remote.url, str(tmp_path / "own"))
    clone = prepare_clone(remote, tmp_path / "own", author_name="o", author_email="o@example.invalid")
    assert clone.borrowed_remote() is None
    other = clone_of(remote, tmp_path, "w2")
    upstream = edit(other, "README.md", "upstream\n", "upstream")
    assert push_with_rebase(other, resolve=refuse, max_attempts=1).landed
    before = _object_count(clone.path)
    assert clone.fetch_tip().sha == upstream == clone.upstream_sha()
    assert _object_count(clone.path) > before


def test_the_tip_of_a_vanished_branch_is_an_error_from_git(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w1")
    git(Path(remote.url), "branch", "-m", "main", "renamed")
    with pytest.raises(GitError, match="couldn't find remote ref"):
        clone.fetch_tip()


def test_upstream_sha_reads_packed_refs_too(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w1")
    loose = clone.git_dir() / clone.upstream_ref
    assert not loose.exists()  # a fresh clone packs its refs
    assert clone.upstream_sha() == remote_tip(remote)
    other = clone_of(remote, tmp_path, "w2")
    upstream = edit(other, "README.md", "upstream\n", "upstream")
    assert push_with_rebase(other, resolve=refuse, max_attempts=1).landed
    clone.fetch_tip()
    assert loose.read_text().strip() == upstream == clone.upstream_sha()
    git(clone.path, "pack-refs", "--all")
    assert not loose.exists() and clone.upstream_sha() == upstream


def test_prepare_clone_refuses_foreign_directories(remote: RemoteSpec, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(WorkspaceError, match="not an empty directory"):
        clone_of(remote, tmp_path, "full")
    other = make_remote(tmp_path / "elsewhere", {"a": "a\n"})
    clone_of(other, tmp_path, "theirs")
    with pytest.raises(WorkspaceError, match="is a clone of"):
        clone_of(remote, tmp_path, "theirs")


# -- the check ---------------------------------------------------------------------------------------

def test_run_check_reports_pass_fail_and_truncates(tmp_path: Path) -> None:
    ok = run_check("echo fine", tmp_path, 30)
    assert ok.passed and ok.exit_code == 0 and "fine" in ok.output and not ok.timed_out
    bad = run_check("echo broken >&2; exit 3", tmp_path, 30)
    assert not bad.passed and bad.exit_code == 3 and "broken" in bad.output
    long = run_check("seq 1 100000", tmp_path, 30, max_output=1000)
    assert len(long.output) < 1200 and long.output.rstrip().endswith("100000")


def _running(marker: str) -> list[int]:
    """Live processes (zombies aside) whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def _none_left(marker: str) -> bool:
    deadline = time.monotonic() + 10
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(marker)


@pytest.mark.parametrize("mode", ["auto", "subprocess"])
def test_hanging_check_is_killed_with_its_children(tmp_path: Path, mode: str) -> None:
    result = run_check("sleep 6061 & wait", tmp_path, 0.5, settings=make_settings(sandbox=mode))
    assert result.timed_out and not result.passed and result.exit_code is None
    assert _none_left("sleep 6061"), "the check's background child survived the timeout"


@pytest.mark.parametrize("mode", ["auto", "subprocess"])
def test_a_check_leaves_no_process_behind_even_one_that_called_setsid(tmp_path: Path, mode: str) -> None:
    """Issue 15, case 2: this check used to leave a root process running after the build."""
    result = run_check('(setsid sh -c "sleep 779" &); true', tmp_path, 30, settings=make_settings(sandbox=mode))
    assert result.passed and result.duration_s < 20
    assert _none_left("sleep 779")


# -- committing ---------------------------------------------------------------------------------------

def test_find_conflict_markers(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n<<<<<<< HEAD\ny\n=======\nz\n>>>>>>> abc (msg)\n")
    (tmp_path / "b.md").write_text("a ======= b\n======== \n<<<<<<<<x\n")
    (tmp_path / "c.bin").write_bytes(b"\0<<<<<<< HEAD\n")
    (tmp_path / "crlf.txt").write_bytes(b"ok\r\n<<<<<<< HEAD\r\n=======\r\n>>>>>>> x\r\n")
    (tmp_path / "title.rst").write_text("Title\n=======\n")  # an underline, not a marker: no other marker
    found = find_conflict_markers(tmp_path, ["a.py", "b.md", "c.bin", "crlf.txt", "title.rst", "gone.txt"])
    assert found == [("a.py", 2), ("a.py", 4), ("a.py", 6), ("crlf.txt", 2), ("crlf.txt", 3), ("crlf.txt", 4)]


def test_commit_all_refuses_conflict_markers(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    assert commit_all(clone, "nothing") is None
    (clone.path / "shared.txt").write_text("a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> x\n")
    with pytest.raises(GitError, match=r"shared\.txt:2, shared\.txt:4, shared\.txt:6"):
        commit_all(clone, "bad")
    assert clone.head() == remote_tip(remote)
    assert git(clone.path, "diff", "--cached", "--name-only") == ""  # left unstaged
    (clone.path / "shared.txt").write_text("resolved\n")
    (clone.path / "new.txt").write_text("new\n")
    sha = commit_all(clone, "only the new file", paths=["new.txt"])
    assert sha is not None and git(clone.path, "show", "--name-only", "--format=", sha) == "new.txt"


def test_commit_all_leaves_caches_a_check_wrote_out(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    for junk in ("__pycache__/m.cpython-311.pyc", "pkg/__pycache__/x.pyc", ".pytest_cache/v/lastfailed", "a.pyc"):
        (clone.path / junk).parent.mkdir(parents=True, exist_ok=True)
        (clone.path / junk).write_text("cache\n")
    (clone.path / "pkg" / "x.py").write_text("x = 1\n")
    sha = commit_all(clone, "the change")
    assert sha is not None and git(clone.path, "show", "--name-only", "--format=", sha) == "pkg/x.py"


@pytest.mark.parametrize("mode", ["auto", "subprocess"])
def test_a_check_in_a_scratch_worktree_reads_its_clones_git_directory(tmp_path: Path, mode: str) -> None:
    """The gate's check on the branch tip runs in a worktree beside the clone: the sandbox lets it read the
    clone's git directory (and the objects it borrows), never write them."""
    spec = make_remote(tmp_path / "r", {"a.txt": "from the tip\n"})
    clone = clone_of(spec, tmp_path, "w")
    tree = tmp_path / "scratch"
    clone.git("worktree", "add", "--detach", "--quiet", str(tree), clone.head())
    command = "git log --format=%s -1 && cat a.txt && touch \"$(git rev-parse --git-common-dir)/planted\""
    result = run_check(command, tree, 30, settings=make_settings(sandbox=mode),
                       reads=[clone.git_dir(), *borrowed_objects(spec)])
    assert "seed" in result.output and "from the tip" in result.output, result.output
    if mode == "auto" or os.geteuid() == 0:  # the fallback of a normal user has no isolation (the table)
        assert not (clone.git_dir() / "planted").exists()
    if make_sandbox(make_settings(sandbox=mode)).mode == "bwrap":  # without them it sees no repository at all
        blind = run_check("git log -1", tree, 30, settings=make_settings(sandbox=mode))
        assert not blind.passed


def test_the_build_pushes_by_url_whatever_the_clones_remote_says(tmp_path: Path) -> None:
    spec = make_remote(tmp_path / "r", {"a.txt": "a\n"})
    decoy = make_remote(tmp_path / "decoy", {"a.txt": "a\n"})
    clone = clone_of(spec, tmp_path, "w")
    git(clone.path, "config", "remote.origin.url", decoy.url)  # what a writable .git would allow
    sha = edit(clone, "a.txt", "b\n", "change")
    outcome = push_with_rebase(clone, resolve=refuse)
    assert outcome.landed and remote_tip(spec) == sha and remote_tip(decoy) != sha
    assert clone.out("rev-parse", clone.upstream_ref) == sha  # the tracking ref follows, as `git push origin` does
    git(clone.path, "config", f"url.{decoy.url}.insteadOf", spec.url)
    with pytest.raises(GitError, match="url"):
        clone.fetch()
