"""The git layer of the build swarm: the shared remote, workers' clones, the quick check, landing
commits on one branch with rebases, and the deterministic codemod mode."""

from swarm_tasks.builder.check import CheckResult, CheckStatus, run_check
from swarm_tasks.builder.codemod import (
    Applied,
    Codemod,
    apply_codemod,
    codemod_resolver,
    land_codemod,
    render_command,
    sequential_reference,
    split_by_file,
    working_tree_id,
)
from swarm_tasks.builder.gitops import (
    Clone,
    Credential,
    RemoteSpec,
    commit_all,
    find_conflict_markers,
    prepare_clone,
    remote_branches,
    run_git,
    validate_remote,
)
from swarm_tasks.builder.rebase import PUSH_BACKOFF, PushOutcome, PushStatus, Recheck, push_with_rebase
from swarm_tasks.builder.replay import RebaseConflict

__all__ = [
    "PUSH_BACKOFF",
    "Applied",
    "CheckResult",
    "CheckStatus",
    "Clone",
    "Codemod",
    "Credential",
    "ProcessResult",
    "PushOutcome",
    "PushStatus",
    "RebaseConflict",
    "Recheck",
    "RemoteSpec",
    "apply_codemod",
    "codemod_resolver",
    "commit_all",
    "find_conflict_markers",
    "land_codemod",
    "prepare_clone",
    "push_with_rebase",
    "remote_branches",
    "render_command",
    "run_check",
    "run_git",
    "run_process",
    "sequential_reference",
    "split_by_file",
    "validate_remote",
    "working_tree_id",
]
