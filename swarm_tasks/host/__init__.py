"""The host layer: everything that touches the machine on behalf of an agent or a repository.

Rules: processes started for something an agent or a reviewed/built repository wrote (shell commands,
checks, codemods, analyzers that execute code, git on agent-written clones) start here and nowhere
else; this package imports no workflow (``review``, ``build``), no agent runtime and no Celery.

- :mod:`~swarm_tasks.host.sandbox`: the one sandbox policy (bubblewrap, or the restricted subprocess).
- :mod:`~swarm_tasks.host.launcher`: the first process inside the sandbox (limits, uid, no_new_privs).
- :mod:`~swarm_tasks.host.processes`: process plumbing (bubblewrap arguments, uids, output, killing).
- :mod:`~swarm_tasks.host.workspace`: path confinement inside one root directory.
"""
