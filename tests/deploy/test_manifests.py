"""The deployment files, checked by parsing (no Docker engine or cluster here): valid YAML, required
fields, and every command, queue, image file, secret and scale target they name exists in the project."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml
from celery.bin.worker import worker as celery_worker_command
from honcho.environ import parse_procfile

from swarm_tasks.cli import main as swarm_cli
from swarm_tasks.settings import QUEUES
from tests.deploy.conftest import DEPLOY, REPO_ROOT

K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
WORKLOADS = ("Deployment", "StatefulSet")
IMAGE = "swarm-tasks:latest"


# -- reading the files ----------------------------------------------------------------------------

def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not pending):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        pending = f"{pending} {line}".strip() if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def image_entrypoint() -> list[str]:
    (entrypoint,) = [json.loads(args) for kw, args in dockerfile_instructions() if kw == "ENTRYPOINT"]
    return entrypoint


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _path, doc in k8s_documents() if doc["kind"] == kind}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


def container_argv(container: dict[str, Any]) -> list[str]:
    """What the container runs: its command (else the image's ENTRYPOINT) followed by its args."""
    command = container.get("command")
    if command is None:
        return image_entrypoint() + list(container.get("args") or [])
    return list(command) + list(container.get("args") or [])


def service_argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint", image_entrypoint())
    command = service.get("command") or []
    return list(entrypoint) + (shlex.split(command) if isinstance(command, str) else list(command))


# -- what a command may say -----------------------------------------------------------------------

def _option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _flower_option_names() -> set[str]:
    from flower.options import default_options

    names = default_options.as_dict()
    return {f"--{name}" for name in names} | {f"--{name.replace('_', '-')}" for name in names}


def worker_queues(argv: list[str]) -> list[str]:
    """The -Q queues of a ``celery -A swarm_tasks worker`` argv."""
    for flag in ("-Q", "--queues"):
        if flag in argv:
            return argv[argv.index(flag) + 1].split(",")
    return []


def check_command(argv: list[str], where: str) -> str:
    """Assert ``argv`` is a real swarm-tasks command; return what it runs (worker, flower, swarm ...)."""
    words = [w for w in argv if w not in ("/usr/bin/tini", "tini", "--")]
    assert words, f"{where}: empty command"
    if words[0] == "celery":
        assert words[1:3] == ["-A", "swarm_tasks"], f"{where}: celery must load the app with -A swarm_tasks"
        sub, rest = words[3], words[4:]
        if sub == "worker":
            known = _option_names(celery_worker_command)
            for word in rest:
                if word.startswith("-"):
                    assert word.split("=", 1)[0] in known, f"{where}: celery worker has no option {word}"
            queues = worker_queues(words)
            assert queues, f"{where}: a worker must say which queues it consumes (-Q)"
            assert set(queues) <= set(QUEUES), f"{where}: unknown queues {set(queues) - set(QUEUES)}"
            assert "-n" in words and "%h" in words[words.index("-n") + 1], \
                f"{where}: a worker needs a node name unique per host (-n name@%h)"
        elif sub == "flower":
            known = _flower_option_names()
            for word in rest:
                assert word.split("=", 1)[0] in known, f"{where}: flower has no option {word}"
        else:
            assert sub == "inspect", f"{where}: unexpected celery command {sub}"
        return sub
    assert words[0] == "swarm", f"{where}: runs {words[0]}, neither celery nor swarm"
    sub = words[1]
    assert sub in swarm_cli.commands, f"{where}: `swarm {sub}` is not a command of the CLI"
    known = _option_names(swarm_cli.commands[sub])
    for word in words[2:]:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, f"{where}: `swarm {sub}` has no option {word}"
    return f"swarm {sub}"


# -- Dockerfile -----------------------------------------------------------------------------------

def test_dockerfile_builds_a_non_root_celery_image_from_files_that_exist():
    instructions = dockerfile_instructions()
    keywords = [kw for kw, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert re.search(r"apt-get install[^&]*\bbubblewrap\b", runs), "bubblewrap is the shell tool's sandbox"
    (user,) = [args for kw, args in instructions if kw == "USER"]
    assert user.split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN"), \
        "USER comes after every RUN that needs root"
    workdir = [args for kw, args in instructions if kw == "WORKDIR"][-1]
    copied: list[str] = []
    for kw, args in instructions:
        if kw == "COPY":
            *sources, _dest = args.split()
            for source in sources:
                assert not source.startswith("--from"), "single-stage image"
                assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file in the repository"
                copied.append(source)
    assert {"pyproject.toml", "coordination", "swarm_tasks", "flowerconfig.py"} <= set(copied)
    assert image_entrypoint()[-3:] == ["celery", "-A", "swarm_tasks"]
    (cmd,) = [json.loads(args) for kw, args in instructions if kw == "CMD"]
    check_command(image_entrypoint() + cmd, "Dockerfile CMD")
    assert workdir == "/app"  # compose and k8s pass --conf=/app/flowerconfig.py


def test_dockerignore_lets_every_copied_file_into_the_build_context():
    lines = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for kw, args in dockerfile_instructions():
        if kw == "COPY":
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"


# -- docker compose -------------------------------------------------------------------------------

def test_compose_services_have_images_commands_and_wait_for_a_healthy_redis():
    services = compose()["services"]
    assert {"redis", "flower", "dashboard"} <= set(services)
    redis = services["redis"]
    assert "image" in redis
    health = redis["healthcheck"]["test"]
    assert "redis-cli" in " ".join(health) and "ping" in " ".join(health)
    redis_command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert any(str(v).endswith(":/data") for v in redis["volumes"]), "the AOF must live on a volume"
    runs: dict[str, str] = {}
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: no image or build"
        if name == "redis":
            continue
        assert service.get("command"), f"{name}: no command"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        env = service["environment"]
        assert env["SWARM_REDIS_URL"].startswith("redis://") and "@redis:6379" in env["SWARM_REDIS_URL"]
        runs[name] = check_command(service_argv(service), f"compose service {name}")
        if "build" in service:
            assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() \
                == DOCKERFILE.resolve()
    assert runs["flower"] == "flower" and runs["dashboard"] == "swarm dashboard"
    flower = services["flower"]
    assert any(str(p).endswith(":5555") for p in flower["ports"])
    assert "SWARM_FLOWER_BASIC_AUTH" in flower["environment"]
    assert "--conf=/app/flowerconfig.py" in flower["command"]


def test_compose_workers_cover_every_queue():
    consumed = [q for s in compose()["services"].values() if s.get("command") and "worker" in s["command"]
                for q in worker_queues(service_argv(s))]
    assert sorted(consumed) == sorted(QUEUES), "each queue is consumed by exactly one worker service"


def test_compose_variables_are_documented_in_the_env_example():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required and required <= example


# -- Kubernetes -----------------------------------------------------------------------------------

def test_every_k8s_manifest_is_valid_yaml_with_the_required_fields():
    docs = list(k8s_documents())
    assert {p.name for p, _ in docs} >= {"workers.yaml", "flower.yaml", "dashboard.yaml", "keda.yaml",
                                         "redis.yaml", "secret.yaml"}
    for path, doc in docs:
        where = f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), where
        if doc["kind"] in ("Secret", "ConfigMap"):
            assert doc.get("stringData") or doc.get("data"), where
            continue
        assert isinstance(doc.get("spec"), dict), f"{where}: no spec"
        if doc["kind"] in WORKLOADS:
            spec = doc["spec"]
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items(), f"{where}: selector misses its pods"
            for container in pod_containers(doc):
                assert container.get("image"), f"{where}: container without image"
                assert container.get("command") or container.get("args"), f"{where}: container without command"


def test_k8s_containers_run_real_commands_on_queues_that_exist():
    runs: dict[str, str] = {}
    for kind in WORKLOADS:
        for name, workload in by_kind(kind).items():
            for container in pod_containers(workload):
                if container["image"] != IMAGE:
                    continue
                runs[name] = check_command(container_argv(container), f"{kind} {name}")
                probe = container.get("livenessProbe", {}).get("exec", {}).get("command")
                if probe:
                    check_command(shlex.split(probe[-1]) if probe[0] == "sh" else probe, f"{name} probe")
                pod = workload["spec"]["template"]["spec"]["securityContext"]
                assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
    assert runs["swarm-flower"] == "flower" and runs["swarm-dashboard"] == "swarm dashboard"
    consumed = [q for name, workload in by_kind("Deployment").items() if runs.get(name) == "worker"
                for q in worker_queues(container_argv(pod_containers(workload)[0]))]
    assert sorted(consumed) == sorted(QUEUES), "each queue is consumed by exactly one worker Deployment"


def test_k8s_services_select_pods_and_secret_references_exist():
    workloads = [w for kind in WORKLOADS for w in by_kind(kind).values()]
    for name, service in by_kind("Service").items():
        selector = service["spec"]["selector"]
        targets = [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, f"Service {name} selects no pods"
        ports = {p["name"] for w in targets for c in pod_containers(w) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no container port {port['targetPort']}"
    secrets = {name: set(doc["stringData"]) for name, doc in by_kind("Secret").items()}
    for workload in workloads:
        for container in pod_containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in secrets.get(ref["name"], set()), f"missing secret {ref}"
    for name, auth in by_kind("TriggerAuthentication").items():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets.get(ref["name"], set()), f"TriggerAuthentication {name}: missing {ref}"
    flower = pod_containers(by_kind("Deployment")["swarm-flower"])[0]
    assert "SWARM_FLOWER_BASIC_AUTH" in {e["name"] for e in flower["env"]}
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in by_kind("Service").values()), \
        "nothing is exposed outside the cluster by these manifests"


def redis_server_argv(command: list[str]) -> list[str]:
    """The redis-server arguments of a Redis container's ``sh -c '... && exec redis-server ...'``."""
    script = command[-1] if command[:2] == ["sh", "-c"] else shlex.join(command)
    words = shlex.split(script)
    return words[words.index("redis-server") + 1:]


def test_redis_is_one_primary_with_aof_and_no_eviction():
    (statefulset,) = by_kind("StatefulSet").values()
    assert statefulset["spec"]["replicas"] == 1
    command = redis_server_argv(pod_containers(statefulset)[0]["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert statefulset["spec"]["volumeClaimTemplates"], "the AOF needs a persistent volume"


# -- Redis users ----------------------------------------------------------------------------------

ACL = DEPLOY / "redis" / "users.acl"
RENDER = DEPLOY / "redis" / "render-acl.sh"
ROLE_OF_COMMAND = {"worker": "swarm-worker", "flower": "swarm-flower", "swarm dashboard": "swarm-dashboard",
                   "swarm status": "swarm-client"}


def acl_users() -> dict[str, list[str]]:
    users = {}
    for line in ACL.read_text().splitlines():
        if line and not line.startswith("#"):
            words = line.split()
            assert words[0] == "user", f"not an ACL user line: {line}"
            users[words[1]] = words[2:]
    return users


def url_user(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0]


def test_the_acl_file_gives_each_process_its_least_rights():
    users = acl_users()
    assert users["default"] == ["off"]
    assert set(users) == {"default", "admin", "swarm-worker", "swarm-client", "swarm-dashboard", "swarm-flower",
                          "swarm-keda"}
    for name, rules in users.items():
        assert not any(r.startswith((">", "<")) for r in rules), f"{name}: a plaintext password in the file"
        if name in ("default", "admin"):
            continue
        assert rules[0] == "on" and re.fullmatch(r"#\{\{REDIS_[A-Z]+_PASSWORD\}\}", rules[1]), name
        assert "resetkeys" in rules and "resetchannels" in rules and "-@all" in rules, name
        assert not {"~*", "%R~*", "&*", "+@all", "+@admin", "+@dangerous", "allkeys", "allcommands"} & set(rules), name
        keys = [r for r in rules if r.startswith(("~", "%"))]
        assert keys and all(":" not in k or k.endswith("swarm:*") for k in keys), f"{name}: {keys}"
        if name != "swarm-keda":
            assert "-@dangerous" in rules, name
    assert [r for r in users["swarm-dashboard"] if "~" in r] == ["%R~swarm:*"], "the dashboard only reads"
    assert set(users["swarm-keda"]) >= {"+llen", "-@all"} and not [r for r in users["swarm-keda"]
                                                                   if r.startswith("+") and r not in ("+llen",
                                                                                                      "+@connection")]
    assert "-@blocking" in users["swarm-client"], "clients consume no queue"
    assert {f"%R~{q}" for q in QUEUES} <= set(users["swarm-flower"]), "Flower cannot push to work queues"


def test_each_process_logs_in_to_redis_as_its_own_user_and_no_password_is_on_a_command_line():
    users = acl_users()
    services = compose()["services"]
    redis_env = services["redis"]["environment"]
    placeholders = set(re.findall(r"\{\{(\w+)\}\}", ACL.read_text().split("\nuser default", 1)[1]))
    assert {p for p in placeholders if p != "REDIS_KEDA_PASSWORD"} <= set(redis_env), "a user without a password"
    for name, service in services.items():
        if name == "redis":
            continue
        runs = check_command(service_argv(service), name)
        user = url_user(service["environment"]["SWARM_REDIS_URL"])
        assert user == ROLE_OF_COMMAND[runs] and user in users, f"compose {name} logs in as {user}"
    redis_command = " ".join(services["redis"]["command"])
    assert "render-acl.sh" in redis_command and "--aclfile /data/users.acl" in redis_command
    assert "./redis:/etc/swarm-redis:ro" in services["redis"]["volumes"]
    secret = by_kind("Secret")["swarm-tasks"]["stringData"]
    for kind in WORKLOADS:
        for name, workload in by_kind(kind).items():
            for container in pod_containers(workload):
                env = {e["name"]: e for e in container.get("env", [])}
                if container["image"] == IMAGE:
                    key = env["SWARM_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"]
                    runs = check_command(container_argv(container), name)
                    assert url_user(secret[key]) == ROLE_OF_COMMAND[runs], f"{name} logs in as {secret[key]}"
    (auth,) = by_kind("TriggerAuthentication").values()
    params = {r["parameter"]: r["key"] for r in auth["spec"]["secretTargetRef"]}
    assert secret[params["username"]] == "swarm-keda" and params["password"] == "REDIS_KEDA_PASSWORD"
    (configmap,) = by_kind("ConfigMap").values()
    assert configmap["data"] == {"users.acl": ACL.read_text(), "render-acl.sh": RENDER.read_text()}, \
        "k8s/redis.yaml's ConfigMap must hold deploy/redis/ as it is"
    everything = "\n".join(p.read_text() for p in [COMPOSE, *K8S.glob("*.yaml"), REPO_ROOT / "Procfile"])
    assert "--requirepass" not in everything and not re.search(r"redis-cli[^\n]* -a ", everything), \
        "a password on a command line (use --aclfile and REDISCLI_AUTH)"


def test_keda_scales_every_worker_deployment_on_ready_plus_reserved_messages():
    deployments = by_kind("Deployment")
    workers = {name: worker_queues(container_argv(pod_containers(d)[0])) for name, d in deployments.items()
               if check_command(container_argv(pod_containers(d)[0]), name) == "worker"}
    scaled = by_kind("ScaledObject")
    targets = [so["spec"]["scaleTargetRef"]["name"] for so in scaled.values()]
    assert sorted(targets) == sorted(workers), "one ScaledObject per worker Deployment, each on a real one"
    auths = set(by_kind("TriggerAuthentication"))
    for name, so in scaled.items():
        queues = workers[so["spec"]["scaleTargetRef"]["name"]]
        spec = so["spec"]
        assert spec["maxReplicaCount"] >= max(1, spec["minReplicaCount"])
        assert spec["cooldownPeriod"] > 0
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
            "stabilizationWindowSeconds"] >= 300, f"{name}: scale-in needs a cooldown"
        assert spec["fallback"]["replicas"] >= 1
        triggers = spec["triggers"]
        (prometheus,) = [t for t in triggers if t["type"] == "prometheus"]
        query = prometheus["metadata"]["query"]
        assert "swarm_queue_messages" in query, f"{name}: the main trigger counts ready + reserved messages"
        assert "state=" not in query, f"{name}: both states (ready and reserved) must be counted"
        selected = re.search(r'queue=~"([^"]+)"', query)
        assert selected and sorted(selected.group(1).split("|")) == sorted(queues), name
        assert prometheus["metadata"]["ignoreNullValues"] == "false", f"{name}: a missing metric is not 0"
        lists = sorted(t["metadata"]["listName"] for t in triggers if t["type"] == "redis")
        assert lists == sorted(queues), f"{name}: the redis backstop watches the Deployment's own queues"
        for trigger in triggers:
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auths


def test_the_metric_keda_reads_is_the_one_flower_exports():
    from swarm_tasks.worker.flower_metrics import METRIC

    assert all(METRIC in t["metadata"]["query"] for so in by_kind("ScaledObject").values()
               for t in so["spec"]["triggers"] if t["type"] == "prometheus")


# -- Procfile -------------------------------------------------------------------------------------

def _unwrapped(argv: list[str]) -> list[str]:
    """The command under bin/in-venv (which only puts the checkout's .venv/bin first on PATH)."""
    if argv and argv[0] == "bin/in-venv":
        wrapper = REPO_ROOT / "bin" / "in-venv"
        assert wrapper.is_file() and os.access(wrapper, os.X_OK), "bin/in-venv must exist and be executable"
        return argv[1:]
    return argv


def test_procfile_runs_workers_for_every_queue_flower_and_the_dashboard():
    procfile = parse_procfile((REPO_ROOT / "Procfile").read_text())
    assert set(procfile.processes) >= {"flower", "dashboard"}
    runs = {name: check_command(_unwrapped(shlex.split(cmd)), f"Procfile {name}")
            for name, cmd in procfile.processes.items()}
    assert runs["flower"] == "flower" and runs["dashboard"] == "swarm dashboard"
    consumed = [q for name, cmd in procfile.processes.items() if runs[name] == "worker"
                for q in worker_queues(_unwrapped(shlex.split(cmd)))]
    assert sorted(consumed) == sorted(QUEUES)
    for name, cmd in procfile.processes.items():
        if runs[name] == "worker":
            assert "HONCHO_PROCESS_NAME" in cmd, f"{name}: `honcho start -c {name}=3` needs distinct node names"


def test_no_deployment_file_ships_a_usable_password():
    for name, secret in by_kind("Secret").items():
        for key, value in secret["stringData"].items():
            if "PASSWORD" in key or "AUTH" in key or "URL" in key:
                assert "REPLACE" in value, f"Secret {name}.{key} must be a placeholder"
    text = COMPOSE.read_text()
    assert "${REDIS_PASSWORD:?" in text and "${SWARM_FLOWER_BASIC_AUTH:?" in text
