"""The sandbox table, row by row, in every mode available here (bwrap rows skip if it is unusable).

Rows a mode cannot block (subprocess: reading/writing outside, network) are asserted as what they
are, together with the honest description that says so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from swarm_tasks.agents.tools.base import run_tool
from swarm_tasks.agents.tools.shell import ShellTool
from swarm_tasks.builder.gitops import borrowed_objects
from swarm_tasks.errors import SandboxError
from swarm_tasks.host import sandbox as sandbox_module
from swarm_tasks.host.processes import nproc_limit
from swarm_tasks.host.sandbox import SANDBOX_TABLE, Sandbox, make_sandbox, sandbox_problem
from swarm_tasks.host.uids import sandbox_uid
from swarm_tasks.host.workspace import git_alternates
from swarm_tasks.worker.runtime import _make_sandbox
from tests.agents import make_ctx, make_settings
from tests.builder import clone_of, make_remote, remote_tip

SETTINGS = make_settings()
AS_ROOT = os.geteuid() == 0
SPAWN = """\
import os, subprocess
print("uid", os.getuid(), flush=True)
kids = []
try:
    for _ in range(300):
        kids.append(subprocess.Popen(["sleep", "30"]))
except OSError as exc:
    print("refused errno", exc.errno)
print("spawned", len(kids))
"""


@pytest.fixture(params=["bwrap", "subprocess"])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    box = Sandbox(request.param, SETTINGS)
    if request.param == "bwrap" and (problem := sandbox_problem(box)) is not None:
        pytest.skip(f"bubblewrap is unusable here: {problem}")
    return box


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("TOPSECRET\n")
    return root


def uid_processes(uid: int) -> list[int]:
    """Processes of ``uid``, zombies included: until reaped they still count against RLIMIT_NPROC."""
    return [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]


def printed_uid(output: str) -> int:
    return next(int(line) for line in output.splitlines() if line.strip().isdigit())


def assert_all_gone(uid: int) -> None:
    """Nothing of the command's sandbox uid survives it (only meaningful for root workers)."""
    if not AS_ROOT:
        return
    deadline = time.monotonic() + 10
    while uid_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uid_processes(uid) == []


def spawn_check(sandbox: Sandbox, ws: Path) -> int:
    """Spawn up to 300 sleeps; the process limit must stop it well before. Returns the uid used."""
    (ws / "spawn.py").write_text(SPAWN)
    result = sandbox.run(f"{sandbox.python} spawn.py", workspace=ws, timeout_s=20)
    lines = dict(line.split(" ", 1) for line in result.output.splitlines() if " " in line)
    spawned = int(lines["spawned"])
    assert 5 < spawned < SETTINGS.shell_max_processes, result.output
    assert lines["refused"] == "errno 11"
    uid = int(lines["uid"])
    assert uid != 0
    assert_all_gone(uid)
    return uid


def test_read_outside_the_workspace(sandbox: Sandbox, ws: Path) -> None:
    secret = ws.parent / "outside" / "secret.txt"
    result = sandbox.run(f"cat {secret}; cat /etc/shadow; ls -A /root", workspace=ws)
    if sandbox.mode == "bwrap":
        assert "TOPSECRET" not in result.output and "root:" not in result.output
        # /root holds at most the way to the worker's own tools (a pyenv Python), mounted read-only
        tools = {t.relative_to("/root").parts[0] for t in sandbox.tools if t.is_relative_to("/root")}
        listed = set(result.output.splitlines()[2:])
        assert listed <= tools or "No such file or directory" in result.output.splitlines()[-1]
        assert result.output.count("No such file or directory") >= 2
    else:  # not blocked, and said so; a root worker's command is another uid: the worker's own files stay its own
        assert "TOPSECRET" in result.output
        assert "NO filesystem isolation" in sandbox.describe()
        if AS_ROOT:
            assert "root:" not in result.output and result.output.count("Permission denied") == 2


def test_write_outside_the_workspace(sandbox: Sandbox, ws: Path) -> None:
    planted = ws.parent / "outside" / "planted.txt"
    system = Path(f"/usr/planted-{uuid.uuid4().hex}")
    host_tmp = Path(f"/tmp/planted-{uuid.uuid4().hex}")
    command = f"echo pwned > {planted}; echo inside > mine.txt"
    if sandbox.mode == "bwrap":  # never try system directories where nothing would stop it
        command += f"; echo pwned > {host_tmp}; touch {system}"
    try:
        result = sandbox.run(command, workspace=ws)
    finally:
        system.unlink(missing_ok=True)
        host_tmp.unlink(missing_ok=True)
    assert (ws / "mine.txt").read_text() == "inside\n"
    if sandbox.mode == "bwrap":
        assert not planted.exists() and not system.exists() and not host_tmp.exists()
        assert "Read-only file system" in result.output
    elif AS_ROOT:  # another uid without capabilities: nothing the worker owns is writable
        assert not planted.exists() and "Permission denied" in result.output
    else:
        assert planted.read_text() == "pwned\n"
        assert "NO filesystem isolation" in sandbox.describe()


def test_no_pth_planted_in_the_workers_virtualenv(sandbox: Sandbox, ws: Path) -> None:
    """Case 5 of issue 15: a command that writes a .pth into the worker's site-packages would run as the
    worker the next time it starts Python."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)))
    pth = site / f"zz-planted-{uuid.uuid4().hex}.pth"
    try:
        result = sandbox.run(f"echo 'import os' > {pth}; grep -c CapEff /proc/self/status; "
                             "grep CapEff /proc/self/status", workspace=ws)
        if sandbox.mode == "subprocess" and not AS_ROOT:
            assert pth.exists()  # the same user, no isolation: the table says NOT blocked
            return
        assert not pth.exists(), result.output
        assert "Read-only file system" in result.output or "Permission denied" in result.output
        assert result.output.split()[-1] == "0000000000000000"  # no capability at all
    finally:
        pth.unlink(missing_ok=True)


def test_symlink_and_dotdot_escapes(sandbox: Sandbox, ws: Path) -> None:
    (ws / "link").symlink_to(ws.parent / "outside" / "secret.txt")
    (ws / "linkdir").symlink_to(ws.parent / "outside")
    result = sandbox.run("cat link; cat linkdir/secret.txt; cat ../outside/secret.txt", workspace=ws)
    if sandbox.mode == "bwrap":
        assert "TOPSECRET" not in result.output
    else:
        assert result.output.count("TOPSECRET") == 3
        assert "NO filesystem isolation" in sandbox.describe()


def test_a_clone_borrowing_a_local_remotes_objects_works_inside(sandbox: Sandbox, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r", {"a.txt": "from the remote\n"})
    clone = clone_of(remote, tmp_path, "ws")
    (objects,) = borrowed_objects(remote)
    assert git_alternates(clone.git_dir()) == [objects]
    result = sandbox.run(f"git cat-file -p HEAD:a.txt; git log --format=%H -1; touch {objects}/planted; "
                         f"cat {remote.url}/config", workspace=clone.path, read_only=[objects])
    assert "from the remote" in result.output and remote_tip(remote) in result.output
    if sandbox.mode == "bwrap":  # the objects are readable, not writable, and nothing else of the remote is there
        assert "Read-only file system" in result.output and not (objects / "planted").exists()
        assert "[core]" not in result.output and "No such file or directory" in result.output


def test_the_shell_tool_mounts_what_its_context_vouches_for(sandbox: Sandbox, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r", {"a.txt": "from the remote\n"})
    clone = clone_of(remote, tmp_path, "ws")
    ctx = make_ctx(clone.path, sandbox=sandbox)
    vouched = dataclasses.replace(ctx, read_only=tuple(borrowed_objects(remote)))
    assert "from the remote" in run_tool(ShellTool(), {"command": "git cat-file -p HEAD:a.txt"}, vouched).content
    if sandbox.mode == "bwrap":  # without it, the clone inside the sandbox cannot find its objects
        assert run_tool(ShellTool(), {"command": "git cat-file -p HEAD:a.txt"}, ctx).is_error


def test_an_alternates_file_written_in_the_workspace_opens_nothing(sandbox: Sandbox, ws: Path) -> None:
    # The agent controls its workspace, .git included: only what the caller vouches for is mounted.
    outside = ws.parent / "outside"
    (ws / ".git" / "objects" / "info").mkdir(parents=True)
    (ws / ".git" / "objects" / "info" / "alternates").write_text(f"{outside}\n")
    result = sandbox.run(f"cat {outside}/secret.txt", workspace=ws)
    if sandbox.mode == "bwrap":
        assert "TOPSECRET" not in result.output and "No such file or directory" in result.output


def test_proc_snooping(sandbox: Sandbox, ws: Path) -> None:
    if sandbox.mode == "subprocess" and not AS_ROOT:
        pytest.skip("as a normal user, subprocess mode does not hide other processes (see SANDBOX_TABLE)")
    victim = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", "FAKE_PROC_SECRET": "procsecret-4242"})
    try:
        result = sandbox.run(f"cat /proc/{victim.pid}/environ; echo; cat /proc/{os.getpid()}/environ; echo;"
                             f"kill -0 {os.getpid()}; ls /proc | grep -c '^[0-9]'", workspace=ws)
    finally:
        victim.kill()
        victim.wait()
    assert "procsecret-4242" not in result.output
    if sandbox.mode == "bwrap":
        assert int(result.output.split()[-1]) < 10  # only the sandbox's own processes
        assert "No such process" in result.output
    else:
        assert "Permission denied" in result.output and "Operation not permitted" in result.output


def test_no_privilege_gain(sandbox: Sandbox, ws: Path) -> None:
    code = "import os; os.setuid(0)"
    result = sandbox.run(f"grep NoNewPrivs /proc/self/status; {sandbox.python} -c '{code}'", workspace=ws)
    assert result.output.split()[:2] == ["NoNewPrivs:", "1"]
    assert "PermissionError" in result.output and result.exit_code == 1


def test_outbound_network(sandbox: Sandbox, ws: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
        command = f"{sandbox.python} -c {shlex.quote(code)}"
        result = sandbox.run(command, workspace=ws)
        if sandbox.mode == "bwrap":
            assert "connected" not in result.output and result.exit_code != 0
            assert "connected" in sandbox.run(command, workspace=ws, network=True).output
        else:
            assert "connected" in result.output
            assert "NO network isolation" in sandbox.describe()
    # a Unix socket outside the workspace (Redis's): not there at all inside bubblewrap
    with socket.socket(socket.AF_UNIX) as server:
        path = ws.parent / "outside" / "redis.sock"
        server.bind(str(path))
        path.chmod(0o777)
        server.listen(8)
        code = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r}); print('connected')"
        result = sandbox.run(f"{sandbox.python} -c {shlex.quote(code)}", workspace=ws)
        if sandbox.mode == "bwrap":
            assert "connected" not in result.output and "FileNotFoundError" in result.output
        else:  # a socket anyone may use is open to the fallback (Redis's own are 700 or 770)
            assert "connected" in result.output


def test_fork_bomb_is_bounded(sandbox: Sandbox, ws: Path) -> None:
    spawn_check(sandbox, ws)  # the cap must hold (a bounded loop of 300 spawns) before a real bomb is tried
    # the trailing sleep keeps the command alive, so the bomb rages until the timeout
    result = sandbox.run("id -u; :(){ :|:& };:; sleep 30", workspace=ws, timeout_s=2)
    assert result.timed_out and result.exit_code is None and result.limit_hit == "timeout"
    assert result.duration_s < 60
    assert_all_gone(printed_uid(result.output))
    assert subprocess.run(["true"], check=False).returncode == 0  # and the machine still forks


def test_disk_fill(sandbox: Sandbox, ws: Path) -> None:
    result = sandbox.run("head -c 50000000 /dev/zero > big.bin", workspace=ws)
    assert result.exit_code == 153 and result.limit_hit == "file_size"
    assert (ws / "big.bin").stat().st_size == SETTINGS.shell_max_file_bytes
    in_tmp = sandbox.run('head -c 50000000 /dev/zero > "$TMPDIR/big.bin"', workspace=ws)
    assert in_tmp.exit_code == 153 and in_tmp.limit_hit == "file_size"


def test_memory_hog(sandbox: Sandbox, ws: Path) -> None:
    result = sandbox.run(f"{sandbox.python} -c 'b = bytearray(4 * 1024**3)'", workspace=ws)
    assert result.exit_code == 1 and "MemoryError" in result.output and result.limit_hit == "memory"


def test_secrets_in_the_environment(sandbox: Sandbox, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAKE_API_KEY", "SWARM_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"):
        monkeypatch.setenv(name, "sk-fake-secret-123")
    result = sandbox.run("env", workspace=ws, env={"EXPLICIT": "given"})
    assert "sk-fake-secret-123" not in result.output
    env = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert env["HOME"] == str(ws) and env["EXPLICIT"] == "given"
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "TERM", "XDG_CACHE_HOME", "EXPLICIT", "PWD", "SHLVL", "_",
               "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"}
    assert set(env) <= allowed


def test_endless_output(sandbox: Sandbox, ws: Path) -> None:
    result = sandbox.run("yes", workspace=ws)
    assert result.exit_code is None and not result.timed_out and result.limit_hit == "output"
    assert result.truncated and "bytes of output cut: kept the first 4096 and the last 4096" in result.output
    assert len(result.output) < SETTINGS.shell_max_output_bytes + 300
    assert result.duration_s < 60


def test_timeout_kills_the_whole_tree(sandbox: Sandbox, ws: Path) -> None:
    result = sandbox.run("id -u; sleep 30 & (setsid sleep 31 &); sleep 32", workspace=ws, timeout_s=1)
    assert result.timed_out and result.exit_code is None and result.duration_s < 20
    assert_all_gone(printed_uid(result.output))


def test_background_children_end_with_the_command(sandbox: Sandbox, ws: Path) -> None:
    marker = f"33.{uuid.uuid4().int % 10**6:06d}"
    result = sandbox.run(f"id -u; (setsid sleep {marker} &); (setsid sh -c 'sleep {marker}' &); sleep 34 & "
                         "echo started", workspace=ws)
    assert result.exit_code == 0 and not result.timed_out and result.duration_s < 15
    assert result.output.split()[1] == "started"
    assert_all_gone(printed_uid(result.output))
    deadline = time.monotonic() + 10  # as any user: the launcher is the subreaper of what the command left
    while running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(f"sleep {marker}") == []


def running(needle: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and needle in " ".join(p.info["cmdline"] or ())]


def test_exit_codes_output_and_cwd(sandbox: Sandbox, ws: Path) -> None:
    (ws / "sub").mkdir()
    assert sandbox.run("exit 3", workspace=ws).exit_code == 3
    assert sandbox.run("kill -9 $$", workspace=ws).exit_code == 137
    both = sandbox.run("echo out; echo err >&2; pwd; echo x > f; ls -l f", workspace=ws, cwd=ws / "sub")
    assert both.output.splitlines()[:3] == ["out", "err", str(ws / "sub")] and not both.truncated
    assert (ws / "sub" / "f").read_text() == "x\n"
    with pytest.raises(SandboxError, match="outside the workspace"):
        sandbox.run("true", workspace=ws, cwd=ws.parent)


def test_describe_is_honest(sandbox: Sandbox) -> None:
    text = sandbox.describe()
    if sandbox.mode == "bwrap":
        assert "bubblewrap" in text and "no network" in text and "own PID namespace" in text
    else:
        assert text.startswith("WARNING") and "NO filesystem isolation" in text and "NO network isolation" in text
    assert "64 processes" in text and "2 MiB per file" in text


def test_sandbox_table_rows() -> None:
    threats = " | ".join(row.threat for row in SANDBOX_TABLE)
    for topic in ("outside the workspace", "symlink", "/proc", "network", "fork bomb", "disk", "memory",
                  "environment", "endless output", "forever", "privileges"):
        assert topic in threats
    assert all(row.threat and row.bwrap and row.subprocess for row in SANDBOX_TABLE)
    unblocked = [row.threat for row in SANDBOX_TABLE if row.subprocess.startswith("NOT blocked")]
    assert len(unblocked) == 4  # read, write, escapes, network: what the subprocess tests show


def test_make_sandbox_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_sandbox(make_settings(sandbox="subprocess")).mode == "subprocess"
    real_problem = sandbox_problem(Sandbox("bwrap", SETTINGS))
    assert make_sandbox(make_settings(sandbox="auto")).mode == ("bwrap" if real_problem is None else "subprocess")
    monkeypatch.setattr("swarm_tasks.host.sandbox.sandbox_problem",
                        lambda box: "no user namespaces" if box.mode == "bwrap" else None)
    with pytest.raises(SandboxError, match=r"bubblewrap does not work here: no user namespaces.*apt-get install "
                                           r"bubblewrap.*SWARM_SANDBOX=subprocess"):
        make_sandbox(make_settings(sandbox="bwrap"))
    fallback = make_sandbox(make_settings(sandbox="auto"))
    assert fallback.mode == "subprocess" and "bubblewrap unusable here: no user namespaces" in fallback.describe()


def test_the_worker_says_which_sandbox_it_runs_with(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sandbox_module, "_ANNOUNCED", set())
    caplog.set_level(logging.INFO, logger="swarm_tasks.host.sandbox")

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "swarm_tasks.host.sandbox"]

    # the way a worker process builds its sandbox (WorkerRuntime's sandbox_factory)
    assert _make_sandbox(make_settings(sandbox="subprocess")).mode == "subprocess"
    [warning] = said()
    assert warning.levelno == logging.WARNING
    text = warning.getMessage()
    assert "restricted subprocess" in text and "NO filesystem isolation" in text and "NO network isolation" in text
    if AS_ROOT:  # another uid without capabilities: the worker's own files are out of its reach
        assert "it cannot touch the worker's own files" in text and "reach the network" in text
    else:
        assert "can read and write any file this worker can and reach the network" in text
    make_sandbox(make_settings(sandbox="subprocess"))  # the shell tool may build one per call: said once
    assert len(said()) == 1
    # auto mode falling back because bubblewrap is unusable says so, and why
    monkeypatch.setattr("swarm_tasks.host.sandbox.sandbox_problem",
                        lambda box: "bubblewrap (bwrap) is not installed" if box.mode == "bwrap" else None)
    assert _make_sandbox(make_settings(sandbox="auto")).mode == "subprocess"
    fallback = said()[-1]
    assert len(said()) == 2 and fallback.levelno == logging.WARNING
    assert "NO filesystem isolation" in fallback.getMessage()
    assert "auto mode: bubblewrap unusable here: bubblewrap (bwrap) is not installed" in fallback.getMessage()
    # bubblewrap in use: INFO, saying what it isolates
    monkeypatch.setattr("swarm_tasks.host.sandbox.sandbox_problem", lambda box: None)
    assert _make_sandbox(make_settings(sandbox="auto")).mode == "bwrap"
    info = said()[-1]
    assert len(said()) == 3 and info.levelno == logging.INFO
    assert info.getMessage().startswith("shell sandbox: bubblewrap sandbox")
    assert "own PID namespace" in info.getMessage()


def test_a_broken_or_missing_bwrap_is_detected(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert sandbox_problem(Sandbox("bwrap", SETTINGS, bwrap_path=str(fake))) == \
        "bwrap: setting up uid map: Permission denied"
    missing = Sandbox("bwrap", SETTINGS, bwrap_path=str(tmp_path / "nope"))
    assert sandbox_problem(missing) == "bubblewrap (bwrap) is not installed"


def test_shell_tool(ws: Path) -> None:
    settings = make_settings(shell_timeout_s=1.0)
    ctx = make_ctx(ws, settings)  # no sandbox given: the tool makes one from the settings
    (ws / "sub").mkdir()
    ok = run_tool(ShellTool(), {"command": "pwd; echo hi", "cwd": "sub"}, ctx)
    assert not ok.is_error and ok.content.startswith("exit code 0 (") and f"{ws}/sub\nhi" in ok.content
    assert ok.data["exit_code"] == 0  # type: ignore[index]
    failed = run_tool(ShellTool(), {"command": "echo nope; exit 2"}, ctx)
    assert failed.is_error and failed.content.startswith("exit code 2") and "nope" in failed.content
    slow = run_tool(ShellTool(), {"command": "sleep 10", "timeout_s": 100}, ctx)
    assert slow.is_error and "timed out after 1 s" in slow.content and "(no output)" in slow.content
    big = run_tool(ShellTool(), {"command": "head -c 9000000 /dev/zero > f"}, make_ctx(ws))
    assert "limit: it hit the limit of 2 MiB per written file" in big.content
    assert "above the workspace root" in run_tool(ShellTool(), {"command": "ls", "cwd": ".."}, ctx).content
    assert ShellTool.idempotent is False


def test_uid_and_process_budget_helpers() -> None:
    uids = {sandbox_uid() for _ in range(20)}
    assert len(uids) > 1 and all(1000 < uid < 2**31 and uid != 65534 for uid in uids)
    # a worker sharing its uid with the command: what the uid already runs, plus the command's own budget
    assert nproc_limit(5) >= 5 + psutil.Process().num_threads()


def test_access_checks_see_what_the_command_may_do(sandbox: Sandbox, ws: Path) -> None:
    """A venv made by one command must look writable (access(2)) to the next: pip checks that way."""
    if not AS_ROOT:
        pytest.skip("only root workers switch uid")
    sandbox.run("mkdir -p venv/lib", workspace=ws)
    code = "import os; print(os.access('venv/lib', os.W_OK), os.access('.', os.W_OK))"  # '.' is root's
    assert sandbox.run(f"{sandbox.python} -c {shlex.quote(code)}", workspace=ws).output.strip() == "True True"


def test_concurrent_commands_in_one_workspace(sandbox: Sandbox, ws: Path) -> None:
    """The end of one command must not kill another still running in the same workspace."""
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(sandbox.run, "sleep 1.5; echo slow-done", workspace=ws)
        time.sleep(0.3)
        fast = pool.submit(sandbox.run, "echo fast-done", workspace=ws)
        assert fast.result().output == "fast-done\n"
        assert slow.result().output == "slow-done\n" and slow.result().exit_code == 0


def test_git_works_in_a_repository_the_worker_owns(sandbox: Sandbox, ws: Path) -> None:
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "a.txt").write_text("a\n")
    result = sandbox.run("git status --short && git add a.txt && git diff --cached --name-only", workspace=ws,
                         git_writable=True)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["?? a.txt", "a.txt"]


def test_the_clones_git_directory_is_read_only_by_default(sandbox: Sandbox, ws: Path) -> None:
    """Hooks and config planted in .git would run later, outside the sandbox, when the worker runs git."""
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    hook = ws / ".git" / "hooks" / "post-commit"
    result = sandbox.run(f"git status --short; echo evil > {hook}; git config core.fsmonitor 'touch /tmp/x'; "
                         "echo fine > a.txt", workspace=ws)
    assert "?? " not in result.output or sandbox.mode == "subprocess"  # git status itself works
    assert (ws / "a.txt").read_text() == "fine\n"
    if sandbox.mode == "subprocess" and not AS_ROOT:
        return  # the worker's own user and no isolation: the table says NOT blocked
    assert not hook.exists() and "fsmonitor" not in (ws / ".git" / "config").read_text()
