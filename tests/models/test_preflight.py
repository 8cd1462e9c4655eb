"""The preflight: a run whose models have no key, or cannot be priced under a cost cap, is refused first."""

from __future__ import annotations

import pytest

from coordination.registry import Kind, Registration
from swarm_tasks.errors import JobSpecError, ModelKeyMissing
from swarm_tasks.models.preflight import advertised_names, check_models, cost_capped
from swarm_tasks.settings import SwarmSettings

PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AZURE_API_KEY",
                 "AZURE_API_BASE", "TEAM_B_KEY")


@pytest.fixture(autouse=True)
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_missing_provider_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SwarmSettings()
    with pytest.raises(ModelKeyMissing, match=r"reviewer model 'openai/gpt-5\.2' needs OPENAI_API_KEY") as caught:
        check_models({"reviewer": "openai/gpt-5.2"}, settings)
    assert caught.value.variables == ["OPENAI_API_KEY"] and isinstance(caught.value, JobSpecError)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert check_models({"reviewer": "openai/gpt-5.2"}, settings).warnings == []


def test_the_readme_mixed_example_needs_both_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    models = {"scanner": "anthropic/claude-haiku-4-5", "subreviewer": "openai/gpt-5.2"}
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with pytest.raises(ModelKeyMissing, match=r"subreviewer model 'openai/gpt-5\.2' needs OPENAI_API_KEY"):
        check_models(models, SwarmSettings())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert check_models(models, SwarmSettings()).checked == models


def test_per_model_key_variables_and_the_shared_key(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"openai/gpt-5.2": {"api_key_env": "TEAM_B_KEY"}}
    with pytest.raises(ModelKeyMissing, match="needs TEAM_B_KEY"):
        check_models({"worker": "openai/gpt-5.2"}, SwarmSettings(model_options=options))
    monkeypatch.setenv("TEAM_B_KEY", "sk-team-b")
    check_models({"worker": "openai/gpt-5.2"}, SwarmSettings(model_options=options))
    check_models({"worker": "openai/gpt-5.2"}, SwarmSettings(api_key="sk-shared"))  # SWARM_API_KEY serves every model
    check_models({"worker": "scripted/echo-finish"}, SwarmSettings())  # the test double needs no key
    with pytest.raises(ModelKeyMissing, match=r"worker model 'anthropic/claude-haiku-4-5' needs ANTHROPIC"):
        check_models({"worker": "scripted/echo-finish"}, SwarmSettings(model_fallbacks=["anthropic/claude-haiku-4-5"]))


def test_either_of_two_keys_is_said_as_either(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelKeyMissing, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        check_models({"judge": "gemini/gemini-2.5-pro"}, SwarmSettings())
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    check_models({"judge": "gemini/gemini-2.5-pro"}, SwarmSettings())


def test_an_unpriced_model_warns_and_is_refused_under_a_cost_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SwarmSettings(api_key="k", api_base="http://127.0.0.1:9/v1")
    check = check_models({"worker": "openai/my-own-model"}, settings)
    assert check.unpriced == ["openai/my-own-model"] and "SWARM_MODEL_PRICES" in check.warnings[0]
    with pytest.raises(JobSpecError, match=r"no price is known for model 'openai/my-own-model'.*SWARM_MODEL_PRICES"):
        check_models({"worker": "openai/my-own-model"}, settings, cost_capped=True)
    priced = SwarmSettings(api_key="k", model_prices={"openai/my-own-model": {"input_usd_per_mtok": 1,
                                                                               "output_usd_per_mtok": 2}})
    assert check_models({"worker": "openai/my-own-model"}, priced, cost_capped=True).warnings == []


def test_a_cost_cap_is_one_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cost_capped(SwarmSettings(), {})
    assert cost_capped(SwarmSettings(), {"max_cost_usd": 3})
    monkeypatch.setenv("SWARM_RUN_MAX_COST_USD", "2")
    assert cost_capped(SwarmSettings(), None)


def test_a_remote_fleet_is_asked_which_variables_its_workers_have(monkeypatch: pytest.MonkeyPatch) -> None:
    def worker(queues: tuple[str, ...], names: str) -> Registration:
        return Registration(id="w", kind=Kind.WORKER, role="worker", node="n", capabilities=queues,
                            meta={"model_env": names})

    models = {"reviewer": "openai/gpt-5.2"}
    check_models(models, SwarmSettings(), fleet=[worker(("review",), "OPENAI_API_KEY")])
    with pytest.raises(ModelKeyMissing, match="no live worker on queue 'review' has it"):
        check_models(models, SwarmSettings(), fleet=[worker(("review",), "ANTHROPIC_API_KEY"),
                                                     worker(("scan",), "OPENAI_API_KEY")])
    with pytest.raises(ModelKeyMissing, match="not set here, and no live worker serves queue 'review'"):
        check_models(models, SwarmSettings(), fleet=[])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-here")
    check_models(models, SwarmSettings(), fleet=[])
    assert "OPENAI_API_KEY" in advertised_names(SwarmSettings())  # names only, never values
    assert "sk-here" not in advertised_names(SwarmSettings())


def test_workers_get_the_provider_variables_and_the_named_keys() -> None:
    settings = SwarmSettings(model_options={"openai/x": {"api_key_env": "TEAM_B_KEY"}})
    env = {"OPENAI_API_KEY": "a", "AWS_REGION_NAME": "eu-west-1", "TEAM_B_KEY": "b", "HTTPS_PROXY": "http://p",
           "HOME": "/root", "SWARM_API_KEY": "not-here", "UNRELATED_TOKEN": "no"}
    assert settings.provider_environment(env) == {"OPENAI_API_KEY": "a", "AWS_REGION_NAME": "eu-west-1",
                                                  "TEAM_B_KEY": "b", "HTTPS_PROXY": "http://p"}


def test_provider_keys_this_process_holds_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm_tasks.security import Redactor

    monkeypatch.setenv("OPENAI_API_KEY", "zz-provider-key-material-42")
    monkeypatch.setenv("TEAM_B_KEY", "custom-team-b-material-7")
    redactor = Redactor.from_settings(SwarmSettings(model_options={"openai/x": {"api_key_env": "TEAM_B_KEY"}}))
    text = "key zz-provider-key-material-42 and custom-team-b-material-7 in a log line"
    assert redactor(text) == redactor.mask(text) == "key *** and *** in a log line"
