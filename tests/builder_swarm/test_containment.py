"""Issue 15, cases 1, 2 and 5, through real Celery worker processes: nothing an agent wrote runs outside the
sandbox, and what runs inside learns no secret, writes nothing of the worker's and leaves no process.

One cluster per configuration (bubblewrap and the fallback, a root worker and a non-root one) runs two
builds at once on repositories whose ``probe.sh`` (standing for an agent-written test) records what it can
see and do, and starts a process that calls setsid:

- a model build whose scripted worker plants hooks (post-commit, pre-push, reference-transaction,
  post-checkout) and ``core.fsmonitor`` in its clone with the shell tool, runs ``run_check``, then
  ``commit_and_push`` (where the hooks would fire); the gate and the judge run the check too;
- a codemod build running ``probe.sh`` on each file.

What the sandbox let them see lands on the branch, in ``seen/`` and in the codemod's files, and the
test reads it there.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis
from pydantic import SecretStr

from coordination.embedded import EmbeddedRedis, find_redis_server
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.host.sandbox import Sandbox, sandbox_problem
from swarm_tasks.host.uids import make_traversable
from swarm_tasks.runs import RunRecord, RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker import celery_signing
from swarm_tasks.worker.cluster import REPO_ROOT, LocalCluster, settings_env
from tests.builder_swarm.helpers import git, make_remote, show, wait_run

pytestmark = pytest.mark.slow
QUEUES = ("plan", "work", "judge", "agents", "control")
HOSTILE = "scripted/py:tests.builder_swarm.hostile"
NOBODY = 4242  # the non-root worker's uid (no account needed)
HOOKS = ("post-commit", "pre-push", "reference-transaction", "post-checkout", "pre-commit")
PROVIDER_KEY = "sk-containment-" + secrets.token_hex(8)
SIGNING_KEY = "signing-containment-" + secrets.token_hex(8)
PROBE = r"""#!/bin/sh
# What an agent-written test run as the check (or a codemod's input) can see and do.
out="$1"
[ "$2" = once ] && [ -e "$out" ] && skip=1
mkdir -p "$(dirname "$out")"
(setsid sh -c "sleep {marker}" > /dev/null 2>&1 &)
[ -n "$skip" ] && exit 0
{{
echo "uid: $(id -u)"
echo "--- env"; env | sort; echo "--- end env"
echo "password file: $(cat {password_file} 2>&1 | head -c 300)"
if echo x > {outside}/wrote-outside 2>/dev/null; then echo "outside: written"; else echo "outside: blocked"; fi
if echo x > {remote}/planted 2>/dev/null; then echo "remote: written"; else echo "remote: blocked"; fi
python3 - <<'PY'
import socket
for label, family, address in (("tcp", socket.AF_INET, ("127.0.0.1", {port})), ("unix", socket.AF_UNIX, "{sock}")):
    try:
        s = socket.socket(family)
        s.settimeout(3)
        s.connect(address)
        s.sendall(b"PING\r\n")
        print(f"redis-{{label}}:", s.recv(200).decode().strip())
    except OSError as exc:
        print(f"redis-{{label}}: unreachable ({{type(exc).__name__}})")
PY
}} >> "$out" 2>&1
exit 0
"""
PLANT = ("mkdir -p seen; {{ for h in " + " ".join(HOOKS) + "; do printf '#!/bin/sh\\ntouch {proof}/hook-%s\\n' $h "
         "> .git/hooks/$h && chmod +x .git/hooks/$h && echo planted $h; done; "
         "printf '#!/bin/sh\\ntouch {proof}/fsmonitor\\n' > .git/fsmonitor.sh && chmod +x .git/fsmonitor.sh "
         "&& git config core.fsmonitor \"$PWD/.git/fsmonitor.sh\" && echo planted fsmonitor; "
         "git config core.hooksPath \"$PWD/.git/hooks\" && echo planted hooksPath; }} > seen/shell.txt 2>&1; true")


@dataclass(frozen=True)
class Config:
    mode: str  # the setting: bwrap (nothing else will do) or subprocess (the fallback)
    root: bool  # the worker runs as root, else as NOBODY

    @property
    def isolated(self) -> bool:
        return self.mode != "subprocess"

    def __str__(self) -> str:
        return f"{'bwrap' if self.isolated else 'fallback'}-{'root' if self.root else 'nonroot'}"


CONFIGS = [Config("bwrap", True), Config("subprocess", True), Config("subprocess", False), Config("bwrap", False)]


@dataclass
class Outcome:
    config: Config
    model: RunRecord
    codemod: RunRecord
    model_remote: Path
    codemod_remote: Path
    proof: Path
    marker: str
    secrets: tuple[str, ...]


def submit(launcher: list[str], settings: SwarmSettings, remote: Path, *args: str) -> str:
    """``swarm build REMOTE ... --detach --json`` as the workers' user; the run id."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", **settings_env(settings)}
    done = subprocess.run([*launcher, sys.executable, "-m", "swarm_tasks.cli", "build", str(remote), *args,
                           "--builders", "1", "--max-cycles", "1", "--workers", "0", "--detach", "--json"],
                          env=env, cwd="/", capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(json.loads(done.stdout)["run"])


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory any uid may pass through (pytest's own temporary root is private to its user, and each
    pytest session on the machine makes it so again)."""
    root = Path(tempfile.mkdtemp(prefix="swarm-contain-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def unix_redis(scratch: Path) -> Iterator[Path]:
    """A real Redis listening on a Unix socket (mode 770, as packaged servers do) and on no port."""
    home = scratch / "unix-redis"
    home.mkdir(mode=0o755)
    sock = home / "redis.sock"
    (home / "redis.conf").write_text(f"port 0\nunixsocket {sock}\nunixsocketperm 770\ndir {home}\nsave \"\"\n"
                                     f"requirepass {secrets.token_hex(12)}\n")
    proc = subprocess.Popen([find_redis_server(), str(home / "redis.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), "the Unix-socket Redis did not start"
    yield sock
    proc.terminate()
    proc.wait(timeout=10)


def _give(path: Path, uid: int) -> None:
    for here, dirs, files in os.walk(path):
        for name in (here, *(os.path.join(here, n) for n in (*dirs, *files))):
            os.chown(name, uid, uid, follow_symlinks=False)


def _run(config: Config, base: Path, embedded: EmbeddedRedis, sock: Path) -> Outcome:
    if not config.root and (os.geteuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("a non-root worker needs root and setpriv here")
    if config.isolated and (problem := sandbox_problem(Sandbox("bwrap", SwarmSettings()))) is not None:
        pytest.skip(f"bubblewrap is unusable here: {problem}")
    if config.isolated and not config.root:
        tried = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "bwrap",
                                "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "true"],
                               capture_output=True, text=True, check=False)
        if tried.returncode != 0:
            pytest.skip(f"bubblewrap is unusable for a normal user here: {tried.stderr.strip()}")
    proof = base / "proof"  # where a planted hook or fsmonitor would leave its mark: writable by the worker
    proof.mkdir(parents=True)
    outside = base / "outside"  # a directory of root's the probe tries to write
    outside.mkdir()
    marker = f"779.{secrets.randbelow(10**6):06d}"
    state = base / "state"
    state.mkdir()
    remotes = base / "remotes"
    common = {"seed.txt": "seed\n"}
    model_remote = make_remote(remotes / "model", {**common, "TODO.md": "", "probe.sh": ""})
    codemod_remote = make_remote(remotes / "codemod", {**common, "targets/a.txt": "a\n", "targets/b.txt": "b\n",
                                                       "probe.sh": ""})
    for bare in (model_remote, codemod_remote):  # the probe and the task, naming this run's paths
        seed = bare.parent / "seed"
        probe = PROBE.format(marker=marker, password_file=embedded.config_path, outside=outside, remote=bare,
                             port=embedded.port, sock=sock)
        (seed / "probe.sh").write_text(probe)
        (seed / "TODO.md").write_text(f"SHELL: {PLANT.format(proof=proof)}\n")
        git(seed, "add", "--all")
        git(seed, "commit", "--quiet", "-m", "the probe")
        git(seed, "push", "--quiet", str(bare), "main:main")
    launcher: list[str] = []
    if not config.root:  # the worker's user must reach its interpreter, code and files
        for path in (Path(sys.base_prefix) / "bin", Path(sys.prefix) / "bin", Path(__file__), state):
            make_traversable(path)
        for path in (state, remotes, proof):
            _give(path, NOBODY)
        launcher = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--"]
    settings = SwarmSettings(redis_url=SecretStr(embedded.url), state_dir=state, model_guard="local-only",
                             sandbox=config.mode, agent_turn_lease_s=60.0, agent_step_grace_s=60.0,
                             sweep_interval_s=0.2, task_signing_key=SecretStr(SIGNING_KEY))
    client = redis.Redis.from_url(embedded.url)
    try:
        swarm = SwarmClient.create(settings, client)
        with LocalCluster(settings, workers=1, queues=QUEUES, concurrency=4, name_prefix=f"contain-{config}",
                          log_dir=base / "logs", launcher=launcher, provider_env={"OPENAI_API_KEY": PROVIDER_KEY}):
            # submitted by the workers' own user, as `swarm build` on that machine would be
            model = submit(launcher, settings, model_remote, "--goal", "probe the sandbox", "--check",
                           "sh probe.sh seen/check.txt once", "--planner-model", f"{HOSTILE}:planner",
                           "--worker-model", f"{HOSTILE}:worker")
            codemod = submit(launcher, settings, codemod_remote, "--goal", "probe every file", "--codemod",
                             "sh probe.sh", "--files", "targets/*.txt")
            done_model = wait_run(swarm, model, 240)
            done_codemod = wait_run(swarm, codemod, 240)
    finally:
        client.close()
        celery_signing.uninstall()
        if not config.root:  # the test reads the remotes as root (git refuses a repository of another user)
            _give(remotes, 0)
    return Outcome(config, done_model, done_codemod, model_remote, codemod_remote, proof, marker,
                   (embedded.password, PROVIDER_KEY, SIGNING_KEY))


@pytest.fixture(scope="module", params=CONFIGS, ids=str)
def outcome(request: pytest.FixtureRequest, scratch: Path, embedded_redis: EmbeddedRedis, unix_redis: Path) -> Outcome:
    base = scratch / str(request.param)
    base.mkdir(mode=0o755)
    return _run(request.param, base, embedded_redis, unix_redis)


def _probes(out: Outcome) -> dict[str, str]:
    """What each probe recorded: the run_check's (landed by the worker) and the codemod's, per file."""
    return {"run_check": show(out.model_remote, "seen/check.txt"),
            **{f"codemod {name}": show(out.codemod_remote, f"targets/{name}") for name in ("a.txt", "b.txt")}}


def _alive(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status", "uids"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and f"sleep {marker}" in " ".join(proc.info["cmdline"] or ()):
            found.append(f"pid {proc.pid} uid {proc.info['uids'].real}")
    return found


def test_planted_hooks_and_fsmonitor_never_run(outcome: Outcome) -> None:
    out = outcome
    assert out.model.status is RunStatus.COMPLETED, out.model.reason
    shell = show(out.model_remote, "seen/shell.txt")
    if out.config.isolated or out.config.root:  # the sandbox keeps .git read-only: nothing is planted
        assert "planted" not in shell and ("Read-only file system" in shell or "Permission denied" in shell), shell
    else:  # a non-root worker's fallback has no isolation (the table says so): git is the wall
        assert all(f"planted {h}" in shell for h in (*HOOKS, "fsmonitor", "hooksPath")), shell
    assert sorted(os.listdir(out.proof)) == [], "a planted hook or fsmonitor ran outside the sandbox"
    assert "probe the sandbox" in git(out.model_remote, "log", "--format=%s", "main") or \
        "what the sandbox let me see" in git(out.model_remote, "log", "--format=%s", "main")


def test_check_codemod_and_run_check_stay_inside(outcome: Outcome) -> None:
    out = outcome
    assert out.codemod.status is RunStatus.COMPLETED, out.codemod.reason
    for where, seen in _probes(out).items():
        assert "uid: " in seen and "--- env" in seen, f"{where} did not run the probe: {seen}"
        for secret in out.secrets:
            assert secret not in seen, f"{where} saw a secret"
        env = seen.split("--- env", 1)[1].split("--- end env", 1)[0]
        assert "REDIS" not in env and "SWARM_" not in env and "OPENAI" not in env, f"{where}: {env}"
        assert "requirepass" not in seen, f"{where} read the Redis password file"
        assert "outside: blocked" in seen and not (out.proof.parent / "outside" / "wrote-outside").exists(), where
        uid = int(seen.split("uid: ", 1)[1].split()[0])
        assert uid != 0 and (uid == NOBODY) == (not out.config.root), f"{where} ran as uid {uid}"
        if out.config.isolated:
            assert "redis-tcp: unreachable" in seen and "redis-unix: unreachable" in seen, f"{where}: {seen}"
        else:  # no network isolation: Redis answers, but only to ask for the password the command lacks
            assert "redis-tcp: -NOAUTH" in seen, f"{where}: {seen}"
            assert "redis-unix: unreachable (PermissionError)" in seen, f"{where}: {seen}"
    # on the host (inside bubblewrap a write may land in the sandbox's own private /tmp, discarded with it):
    # the remote the worker pushes to is written only by the fallback of a non-root worker, its own files
    planted = [r for r in (out.model_remote, out.codemod_remote) if (r / "planted").exists()]
    assert planted == ([] if out.config.root or out.config.isolated else [out.model_remote, out.codemod_remote])
    deadline = time.monotonic() + 10
    while _alive(out.marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(out.marker) == [], "a process the check or the codemod started outlived it"
