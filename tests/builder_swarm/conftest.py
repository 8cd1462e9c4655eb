"""Fixtures of the build swarm tests: the runtime's settings and in-process runtime."""

from tests.runtime.conftest import local, swarm_settings  # noqa: F401 - pytest fixtures
