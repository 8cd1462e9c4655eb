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

from swarm_tasks.build import (
    Backoff,
    Clone,
    Credential,
    PushStatus,
    RebaseConflict,
    RemoteSpec,
    commit_all,
    find_conflict_markers,
    prepare_clone,
    push_with_rebase,
    run_check,
    validate_remote,
)
from swarm_tasks.errors import GitError, WorkspaceError
from tests.build import git, make_remote, remote_file, remote_tip

FAST = Backoff(base_s=0.001, cap_s=0.02)
SHARED = "".join(f"line {i}\n" for i in range(1, 11))


@pytest.fixture
def remote(tmp_path: Path) -> RemoteSpec:
    return make_remote(tmp_path, {"README.md": "hello\n", "shared.txt": SHARED})


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


def test_hanging_check_is_killed_with_its_children(tmp_path: Path) -> None:
    result = run_check("sleep 60 & echo $! > child.pid; wait", tmp_path, 0.5)
    assert result.timed_out and not result.passed and result.exit_code is None
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and time.monotonic() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    alive = psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    assert not alive, "the check's background child survived the timeout"


# -- committing ---------------------------------------------------------------------------------------

def test_find_conflict_markers(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n<<<<<<< HEAD\ny\n=======\nz\n>>>>>>> abc (msg)\n")
    (tmp_path / "b.md").write_text("a ======= b\n======== \n<<<<<<<<x\n")
    (tmp_path / "c.bin").write_bytes(b"\0<<<<<<< HEAD\n")
    (tmp_path / "crlf.txt").write_bytes(b"ok\r\n=======\r\n")
    found = find_conflict_markers(tmp_path, ["a.py", "b.md", "c.bin", "crlf.txt", "gone.txt"])
    assert found == [("a.py", 2), ("a.py", 4), ("a.py", 6), ("crlf.txt", 2)]


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


# -- pushing ---------------------------------------------------------------------------------------

def test_racing_on_different_files_rebases_and_both_land(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "from a\n", "a")
    edit(b, "b.txt", "from b\n", "b")
    first = push_with_rebase(a, resolve=refuse, max_attempts=3, backoff=FAST)
    second = push_with_rebase(b, resolve=refuse, check=lambda: run_check("test -f a.txt", b.path, 30),
                              max_attempts=3, backoff=FAST)
    assert first.status is PushStatus.LANDED and first.first_try and first.rebases == 0
    assert second.status is PushStatus.LANDED and not second.first_try
    assert (second.attempts, second.rebases, second.conflicts_resolved) == (2, 1, 0)
    assert second.check is not None and second.check.passed
    assert remote_tip(remote) == second.sha == b.head()
    assert remote_file(remote, "a.txt") == "from a" and remote_file(remote, "b.txt") == "from b"
    assert_sane(b)


def racing_on_shared_line(remote: RemoteSpec, tmp_path: Path) -> tuple[Clone, Clone, str]:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "shared.txt", SHARED.replace("line 5", "line 5 by a"), "a edits line 5")
    mine = edit(b, "shared.txt", SHARED.replace("line 5", "line 5 by b"), "b edits line 5")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    return a, b, mine


def test_conflict_on_the_same_lines_goes_to_the_resolver(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    seen: list[RebaseConflict] = []

    def resolve(conflict: RebaseConflict) -> bool:
        seen.append(conflict)
        text = (conflict.path / "shared.txt").read_text()
        assert "<<<<<<< " in text and "line 5 by a" in text and "line 5 by b" in text
        (conflict.path / "shared.txt").write_text(SHARED.replace("line 5", "line 5 by a and b"))
        return True

    outcome = push_with_rebase(b, resolve=resolve, max_attempts=3, backoff=FAST)
    assert outcome.landed and outcome.conflicts_resolved == 1
    assert [c.files for c in seen] == [["shared.txt"]] and seen[0].commit == mine
    assert seen[0].subject == "b edits line 5" and seen[0].replayed_version("shared.txt") is not None
    assert outcome.conflicted_files == ["shared.txt"] and outcome.hot_spots == ["shared.txt"]
    assert "line 5 by a and b" in remote_file(remote, "shared.txt")
    assert git(Path(remote.url), "log", "--format=%s", "main").splitlines()[:2] == ["b edits line 5",
                                                                                  "a edits line 5"]


def test_declined_conflict_leaves_remote_and_local_commit_intact(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=lambda c: False, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_UNRESOLVED and not outcome.landed
    assert "shared.txt" in outcome.reason and outcome.conflicted_files == ["shared.txt"]
    assert remote_tip(remote) == tip and b.head() == mine
    assert_sane(b)


def test_resolver_that_leaves_markers_or_raises_changes_nothing(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=lambda c: True, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_MARKERS and "shared.txt:" in outcome.reason

    def explode(conflict: RebaseConflict) -> bool:
        raise RuntimeError("agent crashed")

    with pytest.raises(RuntimeError, match="agent crashed"):
        push_with_rebase(b, resolve=explode, max_attempts=3, backoff=FAST)
    assert remote_tip(remote) == tip and b.head() == mine
    assert_sane(b)


def test_markers_committed_behind_our_back_are_not_pushed(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    (clone.path / "x.txt").write_text("<<<<<<< HEAD\n")
    git(clone.path, "add", "x.txt")
    git(clone.path, "commit", "-q", "-m", "sneaky")
    outcome = push_with_rebase(clone, resolve=refuse, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_MARKERS and "x.txt:1" in outcome.reason
    assert remote_tip(remote) != clone.head()


def test_failing_check_after_rebase_does_not_land(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    edit(b, "b.txt", "b\n", "b")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=refuse, check=lambda: run_check("sleep 30", b.path, 0.3),
                               max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CHECK_FAILED and "timed out" in outcome.reason
    assert outcome.check is not None and outcome.check.timed_out
    assert remote_tip(remote) == tip
    assert git(b.path, "log", "--format=%s", "-2").splitlines() == ["b", "a"]  # replayed, kept
    assert_sane(b)


def test_refusals_and_exhausted_retries(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    edit(b, "b.txt", "b\n", "b")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    exhausted = push_with_rebase(b, resolve=refuse, max_attempts=1)
    assert exhausted.status is PushStatus.RETRIES_EXHAUSTED and exhausted.attempts == 1
    hook = Path(remote.url) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    b = clone_of(remote, tmp_path, "b")  # at the tip again: the hook is the only obstacle
    edit(b, "b.txt", "b\n", "b")
    refused = push_with_rebase(b, resolve=refuse, max_attempts=5, backoff=FAST)
    assert refused.status is PushStatus.REJECTED and refused.attempts == 1
    (b.path / "README.md").write_text("dirty\n")
    with pytest.raises(GitError, match="uncommitted changes"):
        push_with_rebase(b, resolve=refuse, max_attempts=1)


def test_unreachable_remote_is_retried_then_reported(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    edit(clone, "a.txt", "a\n", "a")
    os.rename(remote.url, remote.url + ".gone")
    outcome = push_with_rebase(clone, resolve=refuse, max_attempts=2, sleep=lambda s: None)
    assert outcome.status is PushStatus.REMOTE_ERROR and outcome.attempts == 2 and not outcome.landed


def test_many_pushers_at_once_lose_nothing(tmp_path: Path) -> None:
    workers, commits = 8, 3
    sections = "".join(f"[w{i}]\nnothing yet\n\n\n" for i in range(workers))
    spec = make_remote(tmp_path, {"shared.txt": sections})
    clones = [clone_of(spec, tmp_path, f"w{i}") for i in range(workers)]
    outcomes: list[list[object]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def union(worker: int) -> object:
        def resolve(conflict: RebaseConflict) -> bool:
            # Upstream's file with this worker's own section taken from the commit being replayed.
            mine = (conflict.replayed_version("shared.txt") or b"").decode().split("\n\n\n")
            text = (conflict.upstream_version("shared.txt") or b"").decode().split("\n\n\n")
            text[worker] = mine[worker]
            (conflict.path / "shared.txt").write_text("\n\n\n".join(text))
            return True
        return resolve

    def work(worker: int) -> None:
        try:
            clone = clones[worker]
            barrier.wait()
            for n in range(commits):
                (clone.path / f"own-{worker}-{n}.txt").write_text(f"{worker}/{n}\n")
                text = (clone.path / "shared.txt").read_text()
                marker = f"[w{worker}]\n"
                start = text.index(marker) + len(marker)
                end = text.index("\n", start)
                (clone.path / "shared.txt").write_text(f"{text[:start]}commit {n}{text[end:]}")
                commit_all(clone, f"w{worker} c{n}")
                outcome = push_with_rebase(clone, resolve=union(worker), max_attempts=60,
                                           backoff=Backoff(base_s=0.005, cap_s=0.1))
                outcomes[worker].append(outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not errors, errors
    assert all(o.landed for per in outcomes for o in per), [o.reason for per in outcomes for o in per]
    checkout = clone_of(spec, tmp_path, "final")
    subjects = set(git(checkout.path, "log", "--format=%s").splitlines())
    assert {f"w{w} c{n}" for w in range(workers) for n in range(commits)} <= subjects
    for w in range(workers):
        for n in range(commits):
            assert (checkout.path / f"own-{w}-{n}.txt").read_text() == f"{w}/{n}\n"
    shared = (checkout.path / "shared.txt").read_text()
    assert all(f"[w{w}]\ncommit {commits - 1}\n" in shared for w in range(workers)), shared
    tracked = git(checkout.path, "ls-files").splitlines()
    assert find_conflict_markers(checkout.path, tracked) == []
