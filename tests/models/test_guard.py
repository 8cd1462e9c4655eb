"""The model guard: with model_guard="local-only" nothing may leave this machine, checked before any I/O."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swarm_tasks.errors import ModelError, RealProviderBlocked
from swarm_tasks.models.gateway import ModelGateway, is_loopback_url
from swarm_tasks.models.script import Script, Step
from swarm_tasks.models.types import ChatMessage
from tests.models.conftest import Run

Make = Callable[..., ModelGateway]
MSGS: list[ChatMessage] = [{"role": "user", "content": "hello"}]


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every connect and name lookup made during the test (on top of the session's network guard)."""
    seen: list[object] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def record_connect(self: socket.socket, address: object) -> None:
        seen.append(address)
        return connect(self, address)  # type: ignore[arg-type]

    def record_connect_ex(self: socket.socket, address: object) -> int:
        seen.append(address)
        return connect_ex(self, address)  # type: ignore[arg-type]

    def record_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        seen.append(("getaddrinfo", host))
        return getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", record_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", record_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", record_getaddrinfo)
    yield seen


@pytest.mark.parametrize(("model", "api_base"), [
    ("openai/gpt-4o", None),
    ("anthropic/claude-opus-4-5", None),
    ("gpt-4o", None),
    ("openai/gpt-4o", "https://api.openai.com/v1"),
    ("openai/mock-model", "http://10.1.2.3:8000/v1"),
    ("openai/mock-model", "http://localhost.example.com/v1"),
    ("vertex_ai/gemini-2.5-pro", "http://127.0.0.1:9/v1"),  # authenticates over the network regardless
])
def test_real_providers_are_refused_before_any_io(make_gateway: Make, run: Run, attempts: list[object],
                                                  model: str, api_base: str | None) -> None:
    gateway = make_gateway(api_base=api_base, api_key="sk-not-real")
    with pytest.raises(RealProviderBlocked, match="local-only"):
        run(gateway.complete(model, MSGS))
    assert attempts == []


def test_a_real_fallback_is_refused_too(make_gateway: Make, tmp_path: Path, run: Run,
                                        attempts: list[object]) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "down.json").write_text(Script(name="down", steps=[Step(error="server_error")]).encode())
    gateway = make_gateway(model_retries=0)
    with pytest.raises(RealProviderBlocked, match="anthropic/claude-opus-4-5"):
        run(gateway.complete("scripted/down", MSGS, fallbacks=["anthropic/claude-opus-4-5"]))
    assert attempts == []


def test_loopback_api_base_is_allowed(make_gateway: Make, run: Run, attempts: list[object]) -> None:
    with socket.socket() as probe:  # a port with nothing listening: the call fails, but is not refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = make_gateway(api_base=f"http://127.0.0.1:{port}/v1", api_key="k", model_retries=0)
    with pytest.raises(ModelError) as info:
        run(gateway.complete("openai/mock-model", MSGS, timeout_s=5))
    assert not isinstance(info.value, RealProviderBlocked)
    assert attempts, "the call should have tried the loopback port"
    for address in attempts:
        host = address[1] if isinstance(address, tuple) and address[0] == "getaddrinfo" else address[0]  # type: ignore[index]
        assert host in ("127.0.0.1", "localhost"), address


def test_scripted_models_pass_and_guard_off_does_not_check(make_gateway: Make, run: Run) -> None:
    assert run(make_gateway().complete("scripted/echo-finish", MSGS)).content == "echo: hello"
    make_gateway(model_guard="off").check_guard("anthropic/claude-opus-4-5")  # no error, no I/O


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8901/v1", True), ("http://localhost/v1", True), ("http://[::1]:80/v1", True),
    ("http://127.8.9.10/v1", True), ("https://api.openai.com/v1", False), ("http://0.0.0.0:1/v1", False),
    ("http://192.168.1.2/v1", False), ("not a url", False), ("", False), (None, False),
])
def test_is_loopback_url(url: str | None, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_session_network_guard_still_blocks_sockets() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="only loopback"):
        sock.connect(("203.0.113.9", 443))
