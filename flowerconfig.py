"""Flower's configuration file for swarm-tasks: ``celery -A swarm_tasks flower`` run from this directory
loads it (elsewhere: ``--conf=/path/to/flowerconfig.py``). Settings come from SWARM_* variables; the
logic and its reasons are in swarm_tasks/worker/flower_config.py."""

from tornado.options import options

from swarm_tasks.worker.flower_config import configure_or_exit

# Flower sets every option whose name is a global of this file.
globals().update(configure_or_exit(options.as_dict()))
