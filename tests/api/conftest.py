from tests.runtime.conftest import swarm_settings  # noqa: F401 - pytest fixture
