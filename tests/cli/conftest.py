from tests.runtime.conftest import local, swarm_settings  # noqa: F401 - pytest fixtures
