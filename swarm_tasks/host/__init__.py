"""The host layer: everything that touches the machine on behalf of an agent or a repository.

Rules: processes started for something an agent or a reviewed/built repository wrote (shell commands,
checks, codemods, analyzers that execute code, git on agent-written clones) start here and nowhere
else; this package imports no workflow (``review``, ``build``), no agent runtime and no Celery.

- :mod:`~swarm_tasks.host.sandbox`: the one sandbox policy (bubblewrap, or the restricted subprocess).
- :mod:`~swarm_tasks.host.commands`: the build's check and codemod, through that sandbox.
- :mod:`~swarm_tasks.host.launcher`: the first process inside the sandbox (limits, uid, no_new_privs,
  the sweep of everything the command left).
- :mod:`~swarm_tasks.host.processes`: process plumbing (bubblewrap arguments, output, running a trusted
  child, stopping a process group).
- :mod:`~swarm_tasks.host.uids`: the uid a root worker's commands run as, and lending it the workspace.
- :mod:`~swarm_tasks.host.git`: the one git wrapper for repositories agents or reviewed projects wrote.
- :mod:`~swarm_tasks.host.gitread`: read-only git queries on a repository under review.
- :mod:`~swarm_tasks.host.policy`: what the door stops and every launch path (the README's tables).
- :mod:`~swarm_tasks.host.workspace`: path confinement inside one root directory.
"""
