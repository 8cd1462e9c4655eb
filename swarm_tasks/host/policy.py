"""What the one door stops, in two tables the README shows as they are here (tests/test_readme.py):

- :data:`SANDBOX_TABLE`: each threat, and what each sandbox mode does about it (tests/host/test_sandbox.py
  proves every row in both modes, as root and, where it differs, as a normal user);
- :data:`LAUNCH_TABLE`: every way a process starts on behalf of an agent or a reviewed or built
  repository, how it is confined, and the test that shows it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SandboxRow:
    """One threat and what each mode does about it (the README shows these)."""

    threat: str
    bwrap: str
    subprocess: str


@dataclass(frozen=True, slots=True)
class LaunchRow:
    """One way a process starts for an agent or a repository: how it runs, and the test that shows it."""

    path: str
    how: str
    test: str  # tests/<file>.py::<test name>


SANDBOX_TABLE: tuple[SandboxRow, ...] = (
    SandboxRow("read a file outside the workspace (/etc/shadow, /root, a sibling directory)",
               "blocked: not mounted (only /usr, the system libraries, a few /etc files and the worker's tools are)",
               "NOT blocked: no filesystem isolation; a root worker's command runs as another uid with no "
               "capabilities, so files only the worker may read (/etc/shadow, the embedded Redis password) stay "
               "closed"),
    SandboxRow("write outside the workspace",
               "blocked: / and the system are read-only; /tmp is private and discarded",
               "NOT blocked: no filesystem isolation; a root worker's command runs as another uid with no "
               "capabilities: nothing the worker owns is writable (its virtualenv, state directory, the remote), "
               "world-writable places such as /tmp are"),
    SandboxRow("escape through a symlink or '..' out of the workspace",
               "blocked: the target is not mounted",
               "NOT blocked in the shell (the file tools refuse such paths in every mode)"),
    SandboxRow("write the clone's .git (hooks and config that git would run later, outside the sandbox)",
               "blocked: .git is mounted read-only",
               "blocked when the worker is root (.git stays the worker's); as a normal user NOT blocked, and "
               "git ignores what is planted there anyway (see the launch table)"),
    SandboxRow("plant a .pth or a script in the worker's virtualenv (it would run as the worker)",
               "blocked: the worker's tools are mounted read-only",
               "blocked when the worker is root (another uid, no capabilities); as a normal user NOT blocked"),
    SandboxRow("see or signal other processes (their environment via /proc, kill the worker)",
               "blocked: own PID namespace, other processes are invisible",
               "blocked when the worker is root (the command runs as another uid), though other processes "
               "are listed with their command lines; as a normal user NOT blocked"),
    SandboxRow("outbound network (even to 127.0.0.1), Redis over TCP or its Unix socket",
               "blocked: own network namespace (unless network=True); no socket outside the workspace is mounted",
               "NOT blocked: no network isolation (Redis still asks for its password, which a root worker's "
               "command can neither find in its environment nor read)"),
    SandboxRow("fork bomb",
               "bounded by RLIMIT_NPROC (sandbox uid or own user namespace); killed at the timeout",
               "bounded by RLIMIT_NPROC (sandbox uid when root; as a normal user: the user's tasks plus "
               "the limit); killed at the timeout"),
    SandboxRow("fill the disk with one huge file",
               "stopped by RLIMIT_FSIZE; /tmp is a size-capped tmpfs",
               "stopped by RLIMIT_FSIZE (many smaller files are not limited: no quota)"),
    SandboxRow("allocate huge memory",
               "stopped by RLIMIT_AS", "stopped by RLIMIT_AS"),
    SandboxRow("read the worker's secrets from the environment (Redis URL, provider keys, signing key)",
               "blocked: environment built from an allowlist", "blocked: environment built from an allowlist"),
    SandboxRow("endless output",
               "kept to the first and last bytes; killed when it streams far past the limit",
               "kept to the first and last bytes; killed when it streams far past the limit"),
    SandboxRow("run forever, or leave a process behind (also one that calls setsid)",
               "killed at the timeout or the command's end with its whole PID namespace",
               "killed at the timeout or the command's end: the launcher is the child subreaper of everything "
               "the command starts, setsid or not; for a root worker every process of the sandbox uid too"),
    SandboxRow("gain privileges (setuid binaries, setuid(0))",
               "blocked: no_new_privs; a root worker's command runs as its workspace's unused uid with no "
               "capabilities", "blocked: the same"),
)

LAUNCH_TABLE: tuple[LaunchRow, ...] = (
    LaunchRow("the agents' shell tool",
              "the sandbox (above), in the agent's workspace, its .git read-only",
              "tests/host/test_sandbox.py::test_the_clones_git_directory_is_read_only_by_default"),
    LaunchRow("the build's check: `--check`, `check_changed`, the gate before each landing, the judge's run "
              "on the tip",
              "the sandbox, in the clone (or a scratch worktree, which may read its clone's git directory), "
              ".git read-only, the worker's virtualenv first on PATH; the whole process tree killed at its end",
              "tests/builder_swarm/test_containment.py::test_check_codemod_and_run_check_stay_inside"),
    LaunchRow("the agents' `run_check` tool",
              "the same as the check",
              "tests/builder_swarm/test_containment.py::test_check_codemod_and_run_check_stay_inside"),
    LaunchRow("the build's codemod (`--codemod`, run per file)",
              "the same as the check",
              "tests/builder_swarm/test_containment.py::test_check_codemod_and_run_check_stay_inside"),
    LaunchRow("git on a clone an agent wrote (clone, fetch, rebase, push; git_status/diff/commit; "
              "`review --since`)",
              "outside the sandbox, through one wrapper: no system or global config, environment from an "
              "allowlist, hooks at /dev/null, fsmonitor off, its own ssh command, no credential helper but "
              "the build's, no signing, only the file, git, http(s) and ssh transports, no submodules; the "
              "clone's filter drivers emptied; a config naming any other program (diff.external, a diff or "
              "merge driver, an upload-pack, core.worktree) refused",
              "tests/builder_swarm/test_containment.py::test_planted_hooks_and_fsmonitor_never_run"),
    LaunchRow("the review's analyzers (ruff, ESLint)",
              "outside the sandbox: they parse the code and never execute it; ruff runs --isolated (no "
              "configuration of the repository), ESLint with the swarm's own config only (--no-config-lookup, "
              "--no-inline-config: no config file or plugin of the repository is loaded) and an environment "
              "from an allowlist",
              "tests/host/test_launch_paths.py::test_analyzers_never_load_the_repositorys_config"),
)

__all__ = ["LAUNCH_TABLE", "SANDBOX_TABLE", "LaunchRow", "SandboxRow"]
