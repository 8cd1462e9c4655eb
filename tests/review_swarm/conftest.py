"""The in-process runtime fixtures of tests/runtime, shared with the review swarm tests."""

from tests.runtime.conftest import local, make_spec, swarm_settings  # noqa: F401 - pytest fixtures
