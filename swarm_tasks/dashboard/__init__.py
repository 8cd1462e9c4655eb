"""The live view of the swarm (``swarm dashboard``): the agent tree as a force-directed graph fed by
the run's event stream, an agent's transcript and findings on click, the task board and counters."""

from swarm_tasks.dashboard.server import create_app, main, serve

__all__ = ["create_app", "main", "serve"]
