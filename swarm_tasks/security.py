"""What reaches logs, events and reports: redaction. (TLS and signed messages for Celery are
:func:`swarm_tasks.celery.celery_wire_options`.)

* :func:`redact`: secrets out of text bound for logs, events, transcripts and reports: URL
  passwords, common API-key shapes, ``password=...`` style assignments, PEM private keys, and the
  configured secret values themselves. :func:`install_log_redaction` applies it to every log record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, JsonValue

from coordination.connection import redact_url
from coordination.settings import CoordinationSettings

# -- redaction -------------------------------------------------------------------------------------

MASK = "***"
_MIN_SECRET_CHARS = 4  # shorter configured "secrets" would mask ordinary words all over the text

_KEYWORDS = r"(?:api[_-]?key|apikey|password|passwd|pwd|secret|secret[_-]?key|access[_-]?key|token|auth|" \
            r"credentials?|private[_-]?key|signing[_-]?key)"
# Names that hold a secret wherever the word sits in them (bandit's own heuristic for hard-coded
# passwords: `secret_value`, `db_password_prod`); narrower than _KEYWORDS, whose "auth" would take `author`.
_SENSITIVE_WORDS = r"(?:passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|apikey|private[_-]?key|" \
                     r"access[_-]?key|credential|signing[_-]?key)"
_MIN_QUOTED_CHARS = 4  # "***" itself is shorter: masking stays idempotent
# name = "value", name: 'value', "name": "value", name="value" where the name holds a secret word: the
# whole quoted value goes, spaces included. Group 3 is the value.
_QUOTED_SECRET = re.compile(
    rf"(?<![A-Za-z0-9_$])([A-Za-z0-9_$.-]*{_SENSITIVE_WORDS}[A-Za-z0-9_$]*[\"'`]?\s*(?::=|[:=])\s*[rRbBuU]?"
    r"([\"'`]))((?:(?!\2)[^\\\n]|\\.)+)\2", re.I)
_SENSITIVE_KEY = re.compile(rf"^[A-Za-z0-9_$.-]*{_SENSITIVE_WORDS}[A-Za-z0-9_$]*$", re.I)


def _mask_quoted(match: re.Match[str]) -> str:
    if len(match.group(3)) < _MIN_QUOTED_CHARS:
        return match.group(0)
    return f"{match.group(1)}{MASK}{match.group(2)}"


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S),
     rf"-----BEGIN \1PRIVATE KEY-----{MASK}-----END \1PRIVATE KEY-----"),
    (re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\1\2{MASK}"),
    (re.compile(r"\b(sk-)[A-Za-z0-9_-]{16,}"), rf"\1{MASK}"),  # OpenAI, Anthropic (sk-ant-...), DeepSeek...
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), rf"\1{MASK}"),  # AWS access key ids
    (re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"), rf"\1{MASK}"),  # GitHub
    (re.compile(r"\b(xox[abposr]-)[A-Za-z0-9-]{8,}"), rf"\1{MASK}"),  # Slack
    (re.compile(r"\b(hf_)[A-Za-z0-9]{20,}"), rf"\1{MASK}"),  # Hugging Face
    (re.compile(r"\b(AIza)[0-9A-Za-z_-]{30,}"), rf"\1{MASK}"),  # Google
    (re.compile(r"\b(eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), rf"\1{MASK}"),  # JWT
    (_QUOTED_SECRET, _mask_quoted),
    # name=value, name: value, "name": "value" where the name ends in a secret-ish word. Only the
    # value goes; `tokens: 120` or `token_count=3` do not match (the word must end the name).
    (re.compile(rf"(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_.-])*{_KEYWORDS}[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"'&,;<>()\[\]{}]+", re.I), rf"\1{MASK}"),
)


def quoted_secrets(text: str) -> set[str]:
    """The quoted values bound to secret-like names in ``text`` (what :data:`_QUOTED_SECRET` masks), so
    the same value can be masked where it stands alone: bandit names the password in a finding's title,
    the evidence quotes the line."""
    return {m.group(3) for m in _QUOTED_SECRET.finditer(text) if _worth_collecting(m.group(3))}


def _worth_collecting(value: str) -> bool:
    # A plain short word (`token_type = "bearer"`, `password = "password"`) is masked where it is bound,
    # but masking it everywhere else would take ordinary words out of titles and prose.
    return len(value) >= _MIN_SECRET_CHARS + 2 and (len(value) >= 12 or not value.isalpha()) and MASK not in value


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (literally and URL-encoded, longest first) replaced by ``***``;
    nothing else: no shapes, so quoted code and JSON stay intact."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, MASK)
    return text


# What every pattern above (and a URL's password) needs somewhere in the text, in one pass: most text
# (paths, ids, titles) has none of it and skips the dozen patterns.
_SUSPECT = re.compile(rf"PRIVATE KEY|bearer|basic|token|sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposr]-|hf_|"
                      rf"AIza|eyJ|@|{_SENSITIVE_WORDS}|{_KEYWORDS}", re.I)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets replaced by ``***``: each of ``secrets`` (literally and URL-encoded),
    URL passwords, API-key shapes, secret assignments and PEM private keys. Idempotent."""
    if not text:
        return text
    text = mask_secrets(text, secrets)
    if not _SUSPECT.search(text):
        return text
    text = redact_url(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secrets_of(settings: CoordinationSettings) -> tuple[str, ...]:
    """The secret values in ``settings`` (a SwarmSettings has more): API key, Redis password, signing
    key, Flower's and the dashboard's basic-auth credentials and their passwords, and the model
    providers' keys this process holds (OPENAI_API_KEY...)."""
    found: list[str] = []
    for name in ("api_key", "task_signing_key", "flower_basic_auth", "dashboard_basic_auth"):
        value = getattr(settings, name, None)
        if value is not None and value.get_secret_value():
            found.append(value.get_secret_value())
            if name.endswith("_basic_auth"):
                found.append(value.get_secret_value().partition(":")[2])
    provider_secrets = getattr(settings, "provider_secrets", None)
    if provider_secrets is not None:  # model provider keys this process holds (OPENAI_API_KEY...)
        found += list(provider_secrets())
    if settings.redis_url is not None:
        try:
            password = urlsplit(settings.redis_url.get_secret_value()).password
        except ValueError:
            password = None  # an unparseable URL: redact_url still masks what sits between ':' and '@'
        if password:
            found += [password, unquote(password)]
    return tuple(s for s in found if s)


class Redactor:
    """:func:`redact` bound to a set of configured secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(secrets)

    @classmethod
    def from_settings(cls, settings: CoordinationSettings) -> Redactor:
        return cls(secrets_of(settings))

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)

    def mask(self, text: str) -> str:
        """Only the configured secrets masked (see :func:`mask_secrets`)."""
        return mask_secrets(text, self.secrets)

    def tree(self, value: JsonValue) -> JsonValue:
        """``value`` (JSON) with every string redacted, in one pass over the whole tree: a secret value
        seen anywhere in it (a quoted value bound to a secret name, or a string under a secret-named
        key) is masked in every string of it, alone or inside other text. Keys are kept. ``value`` itself
        when no string changes (the common case: nothing is rebuilt)."""
        found: set[str] = set(self.secrets)
        strings: set[str] = set()
        _collect(value, found, seen=strings)
        bound = Redactor(found)
        changed = {text: masked for text in strings if (masked := bound(text)) != text}
        return _masked(value, changed) if changed else value

    def model(self, record: M) -> M:
        """A pydantic record with :meth:`tree` applied to everything it holds (validated again; the record
        itself when nothing in it changes)."""
        dumped = record.model_dump(mode="json")
        masked = self.tree(dumped)
        return record if masked is dumped else type(record).model_validate(masked)


M = TypeVar("M", bound=BaseModel)


@lru_cache(maxsize=4096)
def _sensitive_key(key: str) -> bool:  # a record's few field names, asked thousands of times per report
    return _SENSITIVE_KEY.match(key) is not None


# A report repeats its strings (paths, kinds, statuses: thousands of agent runs name a few hundred files), so
# each distinct string is looked at once: ``seen`` holds the strings of this tree, ``changed`` what masks them.
def _collect(value: JsonValue, found: set[str], key: str = "", *, seen: set[str]) -> None:
    if isinstance(value, str):
        if value not in seen:
            seen.add(value)
            found.update(quoted_secrets(value))
        if key and _sensitive_key(key) and _worth_collecting(value):
            found.add(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found, seen=seen)
    elif isinstance(value, dict):
        for name, item in value.items():
            _collect(item, found, str(name), seen=seen)


def _masked(value: JsonValue, changed: dict[str, str]) -> JsonValue:
    if isinstance(value, str):
        return changed.get(value, value)
    if isinstance(value, list):
        return [_masked(item, changed) for item in value]
    if isinstance(value, dict):
        return {name: _masked(item, changed) for name, item in value.items()}
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with a :class:`Redactor`; drops nothing."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it later, as it would have
            return True
        record.msg, record.args = self.redactor(message), ()
        if record.exc_info and not record.exc_text:
            # Formatters use a cached exc_text as is, so formatting the traceback here is enough.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


_installed: RedactingFilter | None = None


def install_log_redaction(settings: CoordinationSettings) -> RedactingFilter:
    """Redact every log record made in this process from now on, whatever logger or handler (also
    handlers Celery adds later): the filter runs in the log record factory. Calling it again only
    changes the secrets."""
    global _installed  # noqa: PLW0603 - one record factory per process, re-keyed by later calls
    redactor = Redactor.from_settings(settings)
    if _installed is not None:
        _installed.redactor = redactor
        return _installed
    active = _installed = RedactingFilter(redactor)
    make_record: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        active.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    return active


__all__ = ["RedactingFilter", "Redactor", "install_log_redaction", "quoted_secrets", "redact",
           "secrets_of"]
