"""The worker layer: what runs agents' steps in Celery worker processes, and what operates them.

- :mod:`.runtime`: one process's runtime (Redis, model gateway, tools, the runner, the event loop), with the
  workflows it runs (:mod:`swarm_tasks.plugins`); :mod:`.control_loop`: wake-ups, sweeps and promotions
  beside the tasks.
- :mod:`.cluster`: local worker processes (the README's quickstart, tests, benchmarks); :mod:`.consumers` and
  :mod:`.fleet`: who consumes which queue, and the fleet as ``swarm workers`` shows it.
- :mod:`.celery_signing`, :mod:`.kombu_fixes`: signed task messages; a kombu workaround.
- :mod:`.flower_config`, :mod:`.flower_metrics`: Flower configured from settings, queue depths for autoscaling.

The Celery app itself is :mod:`swarm_tasks.celery`, where ``celery -A swarm_tasks`` looks for it. This layer
names no workflow (``tests/test_layers.py``).
"""
