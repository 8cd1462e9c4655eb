"""Secrets are redacted from text bound for logs, events, transcripts and reports."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from swarm_tasks import security
from swarm_tasks.security import Redactor, install_log_redaction, redact, secrets_of
from swarm_tasks.settings import SwarmSettings

PEM = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun
VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK
-----END RSA PRIVATE KEY-----"""


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("redis at rediss://alice:s3cret@db.example:6380/0 is down", "s3cret", "rediss://alice:***@db.example:6380/0"),
    ("key sk-proj-4fQz9XkLm2Np8Rt6Vw1Yb3Cd5Ef7Gh9J in use", "4fQz9XkLm2Np8Rt6Vw1Yb3Cd5Ef7Gh9J", "sk-***"),
    ("anthropic sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345-xyz", "AbCdEfGhIjKlMnOpQrStUvWxYz", "sk-***"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "IOSFODNN7EXAMPLE", "AKIA***"),
    ("gh ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "16C7e42F292c6912E7710c838347Ae178B4a", "ghp_***"),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "1234567890123-AbCdEfGhIjKl", "xoxb-***"),
    ("slack xoxp-123456789012-abcdef", "123456789012-abcdef", "xoxp-***"),
    ("Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9xyz.abcdEFGH1234", "eyJhbGciOi", "Authorization: Bearer ***"),
    ("curl -H 'Authorization: Bearer abc123def456ghi789'", "abc123def456ghi789", "Bearer ***"),
    ("config api_key=abcd1234efgh5678 loaded", "abcd1234efgh5678", "api_key=***"),
    ('{"password": "hunter2-but-longer", "user": "bob"}', "hunter2-but-longer", '"password": "***"'),
    ("OPENAI_API_KEY='zz-custom-provider-key-123'", "zz-custom-provider-key-123", "OPENAI_API_KEY='***'"),
    ("connect(token: tok_live_9a8b7c6d5e, retry=3)", "tok_live_9a8b7c6d5e", "token: ***, retry=3"),
    ("db_password=pa55word&next=1", "pa55word", "db_password=***&next=1"),
    (f"key file:\n{PEM}\nend", "MIIEowIBAAKCAQEAu1SU1",
     "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----\nend"),
    ("cut off: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0", "MIIEvQIBADANBgkqhkiG9w0", "cut off: -----BEGIN"),
])
def test_each_secret_shape_is_redacted(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out
    assert kept in out
    assert redact(out) == out  # idempotent


@pytest.mark.parametrize("text", [
    "prompt_tokens: 1200, completion_tokens=300, tokens: 1500",
    "max_tokens=4096 token_count=3",
    "the task sk-ip was skipped; AKIA is a prefix",
    "http://example.com/path?page=2",
    "rediss://db.example:6380/0 has no password",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    settings = SwarmSettings(redis_url="rediss://alice:p%40ss-w0rd@db:6380/0", api_key="plainvalue-no-shape",
                             task_signing_key="signing-key-0123456789", flower_basic_auth="admin:fl0wer-pass")
    secrets = secrets_of(settings)
    assert {"plainvalue-no-shape", "signing-key-0123456789", "fl0wer-pass", "p@ss-w0rd", "p%40ss-w0rd"} <= set(secrets)
    scrub = Redactor.from_settings(settings)
    text = ("model said plainvalue-no-shape; key signing-key-0123456789 and fl0wer-pass; "
            "password p@ss-w0rd, encoded p%40ss-w0rd")
    out = scrub(text)
    for secret in ("plainvalue-no-shape", "signing-key-0123456789", "fl0wer-pass", "p@ss-w0rd", "p%40ss-w0rd"):
        assert secret not in out
    assert out.count("***") == 5


def test_short_configured_values_do_not_mask_ordinary_words() -> None:
    assert Redactor(["a", "ok"])("a task is ok") == "a task is ok"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)
    security._installed = None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_log_records_are_redacted_once_installed(restore_logging: None) -> None:
    settings = SwarmSettings(redis_url="rediss://alice:Zq8-redis-pw@db:6380/0", api_key="custom-key-material-1")
    log = logging.getLogger("swarm_tasks.test_redaction")
    handler = _Collect()
    log.addHandler(handler)
    log.propagate = False
    try:
        install_log_redaction(settings)
        assert install_log_redaction(settings) is security._installed  # a second call re-keys, not re-wraps
        log.warning("cannot reach %s", "rediss://alice:Zq8-redis-pw@db:6380/0")
        log.warning("calling with %(key)s", {"key": "custom-key-material-1"})
        try:
            raise RuntimeError("auth failed for Bearer abcdefgh12345678 / custom-key-material-1")
        except RuntimeError:
            log.exception("model call failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = "\n".join(handler.lines)
    assert "Zq8-redis-pw" not in text and "custom-key-material-1" not in text and "abcdefgh12345678" not in text
    assert "rediss://alice:***@db:6380/0" in handler.lines[0]
    assert "calling with ***" in handler.lines[1]
    assert "RuntimeError: auth failed for Bearer ***" in handler.lines[2]


def test_filter_on_a_handler_redacts_too() -> None:
    handler = _Collect()
    handler.addFilter(security.RedactingFilter(Redactor(["per-handler-secret"])))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s and password=%s", ("per-handler-secret", "p"),
                               None)
    handler.handle(record)
    assert handler.lines == ["value *** and password=***"]


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ('secret_value = "hunter2-very-secret"', "hunter2-very-secret", 'secret_value = "***"'),  # bandit's B105
    ("DB_PASSWORD_PROD = 'two words here'", "two words", "DB_PASSWORD_PROD = '***'"),
    ('connect(auth_token="abc def ghi")', "abc def ghi", 'auth_token="***"'),
    ("const apiKeyValue = `tmpl-9f8e7d6c`;", "tmpl-9f8e7d6c", "apiKeyValue = `***`"),
    ("Possible hardcoded password: 'hunter2-very-secret' (hardcoded_password_string)", "hunter2", "password: '***'"),
])
def test_quoted_values_of_secret_names_are_masked_whole(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out and kept in out
    assert redact(out) == out


def test_a_secret_flagged_anywhere_in_a_tree_is_masked_everywhere_in_it() -> None:
    finding = {"title": "Possible hardcoded password: 'hunter2-very-secret'",
               "evidence": 'DEFAULTS = {"db": "hunter2-very-secret"}',  # no secret-shaped name on this line
               "notes": ["the value hunter2-very-secret is also in the docs"],
               "arguments": {"api_token": "plain-looking-value"}, "other": "plain-looking-value again",
               "author": "Jane Doe", "tokens": 1500, "tokenizer_name": "bert"}
    out = Redactor(["configured-one"]).tree({**finding, "extra": "configured-one"})
    text = json.dumps(out)
    assert "hunter2" not in text and "plain-looking-value" not in text and "configured-one" not in text
    assert out["author"] == "Jane Doe" and out["tokens"] == 1500 and out["tokenizer_name"] == "bert"
    assert out["evidence"] == 'DEFAULTS = {"db": "***"}'
    assert Redactor().tree(out) == out


def test_a_plain_word_bound_to_a_secret_name_is_masked_only_where_it_is_bound() -> None:
    out = Redactor().tree({"code": 'token_type = "bearer"', "prose": "send a bearer token; password reset"})
    assert out == {"code": 'token_type = "***"', "prose": "send a bearer token; password reset"}
