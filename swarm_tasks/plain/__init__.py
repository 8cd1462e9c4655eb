"""Plain agent runs (run kind ``agents``): the caller gives the specs and root agents
(:func:`swarm_tasks.launch.start_agents`); the run ends by how its agents ended (:mod:`.ending`).

The smallest workflow, and the pattern for adding one: everything it adds to the swarm is declared in
its :mod:`.plugin` module, and no file outside this package names it.
"""
