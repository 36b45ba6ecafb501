"""deploy/: the manifests parse and say what they must, and the container's command really runs.

Docker is not available here, so the image is checked by reading the Dockerfile, and its
entry command is run directly with the environment docker-compose.yml gives a replica, only
the addresses of PostgreSQL, Redis, S3 and the mounted keys swapped for this machine's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.cluster import (
    REDIS_ENV,
    GatewayProcess,
    clean_environ,
    console_script,
    fresh_schema,
    require_postgres,
)

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
NAME_LABEL = {"app.kubernetes.io/name": "footage-gateway"}


# --- Kubernetes -----------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object kustomization.yaml applies, by (kind, name)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = {}
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    return manifests()


@pytest.fixture(scope="module")
def pod(k8s) -> dict[str, Any]:
    return k8s[("Deployment", "footage-gateway")]["spec"]["template"]["spec"]


def container(pod: dict[str, Any], name: str = "gateway") -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


def test_kustomization_applies_every_manifest_but_the_example_secrets() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"secrets.example.yaml"}
    assert listed <= on_disk


def test_the_deployment_runs_three_replicas_with_probes(k8s, pod) -> None:
    deployment = k8s[("Deployment", "footage-gateway")]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["selector"]["matchLabels"] == NAME_LABEL
    assert deployment["spec"]["template"]["metadata"]["labels"] == NAME_LABEL
    gateway = container(pod)
    assert gateway["command"] == ["footage-gateway", "serve"]
    port = gateway["ports"][0]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert "limits" in gateway["resources"] and "requests" in gateway["resources"]
    [migrate] = pod["initContainers"]
    assert migrate["command"] == ["footage-gateway", "migrate"]
    assert migrate["image"] == gateway["image"]


def test_every_container_runs_as_non_root_without_privileges(pod) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    for spec in [*pod["containers"], *pod["initContainers"]]:
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]


def test_secrets_are_referenced_never_inlined(k8s, pod) -> None:
    assert not [key for key in k8s if key[0] == "Secret"]
    refs = {ref["secretRef"]["name"] for ref in container(pod)["envFrom"] if "secretRef" in ref}
    assert {"footage-gateway-db", "footage-gateway-redis"} <= refs
    keys_volume = next(v for v in pod["volumes"] if v["name"] == "keys")
    assert keys_volume["secret"]["secretName"] == "footage-gateway-keys"
    examples = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    }
    assert refs | {"footage-gateway-keys"} <= examples
    config = k8s[("ConfigMap", "footage-gateway-config")]["data"]
    assert not [k for k in config if re.search("PASSWORD|SECRET|DATABASE_URL|REDIS_URL", k)]
    assert config["FOOTGW_CHECKPOINT_KEY_FILE"].startswith("/etc/footage-gateway/keys/")


def test_the_policies_configmap_is_policies_dir_and_mounted_where_the_gateway_looks(
    k8s, pod
) -> None:
    data = k8s[("ConfigMap", "footage-gateway-policies")]["data"]
    on_disk = {p.name: p.read_text() for p in (REPO / "policies").iterdir() if p.is_file()}
    assert data == on_disk, "policies/ changed: run python deploy/k8s/render_policies.py"
    policy_dir = k8s[("ConfigMap", "footage-gateway-config")]["data"]["FOOTGW_POLICY_DIR"]
    mount = next(m for m in container(pod)["volumeMounts"] if m["name"] == "policies")
    assert mount["mountPath"] == policy_dir and mount["readOnly"] is True
    assert "subPath" not in mount  # the kubelet only updates whole-volume mounts in place
    volume = next(v for v in pod["volumes"] if v["name"] == "policies")
    assert volume["configMap"]["name"] == "footage-gateway-policies"


def test_the_service_pdb_and_hpa_cover_the_deployment(k8s) -> None:
    service = k8s[("Service", "footage-gateway")]["spec"]
    assert service["selector"] == NAME_LABEL and service["ports"][0]["targetPort"] == "http"
    pdb = k8s[("PodDisruptionBudget", "footage-gateway")]["spec"]
    assert pdb["selector"]["matchLabels"] == NAME_LABEL
    assert 1 <= pdb["minAvailable"] < 3
    hpa = k8s[("HorizontalPodAutoscaler", "footage-gateway")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "footage-gateway",
    }
    assert hpa["minReplicas"] >= 3 and hpa["maxReplicas"] > hpa["minReplicas"]


# --- the image --------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The final stage's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(None, 1)) for line in lines if line and line[0] != "#"]
    last_from = max(i for i, ins in enumerate(instructions) if ins[0] == "FROM")
    return [(ins[0], ins[1] if len(ins) > 1 else "") for ins in instructions[last_from:]]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), "exec form, so signals reach the gateway"
    return value


def test_the_image_is_slim_non_root_and_checks_its_health() -> None:
    stage = dockerfile()
    assert re.fullmatch(r"python:3\.11-slim\S*", stage[0][1])
    [user] = [args for instruction, args in stage if instruction == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    [healthcheck] = [args for instruction, args in stage if instruction == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    [cmd] = [args for instruction, args in stage if instruction == "CMD"]
    assert exec_form(cmd) == ["footage-gateway", "serve"]
    assert ("COPY", "policies /etc/footage-gateway/policies") in stage
    assert image_env()["FOOTGW_POLICY_DIR"] == "/etc/footage-gateway/policies"
    copied = " ".join(args for instruction, args in stage if instruction in ("COPY", "ADD"))
    assert not re.search(r"\.pem|secrets|\.env\b", copied)


def healthcheck_argv() -> list[str]:
    [args] = [a for i, a in dockerfile() if i == "HEALTHCHECK"]
    return exec_form(args.split(" CMD ", 1)[1])


# --- docker compose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_two_replicas_behind_a_proxy_on_the_backing_services(compose) -> None:
    services = compose["services"]
    gateways = [
        n
        for n, s in services.items()
        if s.get("image") == "footage-gateway:local" and "command" not in s
    ]
    assert gateways == ["gateway-1", "gateway-2"]
    assert {"postgres", "redis", "minio", "proxy", "migrate"} <= set(services)
    one, two = (services[n] for n in gateways)
    assert one["environment"] == two["environment"]
    env = one["environment"]
    assert env["FOOTGW_DATABASE_URL"].startswith("postgresql://")
    assert env["FOOTGW_REDIS_URL"].startswith("redis://")
    assert env["FOOTGW_STORAGE"].startswith("s3://") and "minio" in env["FOOTGW_S3_ENDPOINT_URL"]
    for name in gateways:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
    assert services["migrate"]["command"] == ["footage-gateway", "migrate"]
    proxy = services["proxy"]
    assert {d: c["condition"] for d, c in proxy["depends_on"].items()} == dict.fromkeys(
        gateways, "service_healthy"
    )
    # The gateway trusts X-Forwarded-For from the proxy's fixed address, and only from it.
    assert proxy["networks"]["backend"]["ipv4_address"] == env["FOOTGW_TRUSTED_PROXIES"]
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert (DEPLOY / "secrets" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


def test_the_proxy_balances_over_every_replica_and_streams(compose) -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream footage_gateway \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server (\S+):8080", upstream.group(1))
    assert servers == ["gateway-1", "gateway-2"]
    assert "proxy_buffering off;" in conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf  # replaced, not appended
    mount = compose["services"]["proxy"]["volumes"][0]
    assert mount.startswith("./nginx.conf:")


# --- the container's command, run here --------------------------------------------------------


@pytest.fixture
def container_env(compose, s3_server: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Image ENV, then compose's gateway-1 environment, with this machine's addresses."""
    base = require_postgres()
    env = {**image_env(), **compose["services"]["gateway-1"]["environment"]}
    private = Ed25519PrivateKey.generate()
    (tmp_path / "jwt-private.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "jwt-private.pem").chmod(0o600)
    (tmp_path / "jwt-public.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "checkpoint-key.pem").write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    bucket = env["FOOTGW_STORAGE"].removeprefix("s3://")
    s3 = boto3.client("s3", endpoint_url=s3_server)
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="cust-deploy/cam/20261128T101500Z.mp4", Body=b"clip" * 256)
    s3.close()
    with fresh_schema(base) as database_url:
        swapped = {
            "FOOTGW_DATABASE_URL": database_url,
            "FOOTGW_S3_ENDPOINT_URL": s3_server,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FOOTGW_JWT_PUBLIC_KEY_FILE": str(tmp_path / "jwt-public.pem"),
            "FOOTGW_CHECKPOINT_KEY_FILE": str(tmp_path / "checkpoint-key.pem"),
            "FOOTGW_POLICY_DIR": str(REPO / "policies"),  # what the image copies there
            "FOOTGW_DATA_DIR": str(tmp_path / "data"),
        }
        redis_url = os.environ.get(REDIS_ENV, "").strip()
        if redis_url:
            swapped["FOOTGW_REDIS_URL"] = redis_url
        else:
            env.pop("FOOTGW_REDIS_URL")
        assert set(swapped) <= set(env)
        env.update(swapped)
        yield env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if argv[0] == "footage-gateway":
        argv = [console_script(), *argv[1:]]
    return subprocess.run(
        argv,
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


@pytest.mark.postgres
def test_the_entry_command_serves_with_the_compose_environment(
    compose, container_env: dict[str, str], tmp_path: Path
) -> None:
    migrated = run(compose["services"]["migrate"]["command"], container_env)
    assert migrated.returncode == 0, migrated.stderr
    [cmd] = [args for instruction, args in dockerfile() if instruction == "CMD"]
    argv = [console_script(), *exec_form(cmd)[1:]]
    gateway = GatewayProcess(container_env, tmp_path / "gateway.log", argv=argv).start()
    try:
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"].values()) == {"ok"}
        # The image's HEALTHCHECK, as Docker would run it inside the container.
        probe = healthcheck_argv()
        assert probe[0] == "python"
        healthy = run([sys.executable, *probe[1:]], gateway.env)
        assert healthy.returncode == 0, healthy.stderr
        token = run(
            [
                "footage-gateway",
                "token",
                "--private-key",
                str(tmp_path / "jwt-private.pem"),
                "--sub",
                "dee",
                "--role",
                "customer",
                "--customer-id",
                "cust-deploy",
            ],
            container_env,
        )
        assert token.returncode == 0, token.stderr
        clip = httpx.get(
            f"{gateway.url}/v1/footage/cust-deploy/cam/20261128T101500Z.mp4",
            headers={"Authorization": f"Bearer {token.stdout.strip()}"},
        )
        assert clip.status_code == 200 and clip.content == b"clip" * 256
    finally:
        # SIGTERM: uvicorn drains, the lifespan closes the audit log, then uvicorn re-raises
        # the signal so the exit status says what stopped it.
        assert gateway.stop() in (0, -signal.SIGTERM), gateway.log_tail()
    assert '"event": "gateway_stopped"' in gateway.log_tail(5)
    verified = run(["footage-gateway", "audit", "verify"], container_env)
    assert verified.returncode == 0, verified.stderr
