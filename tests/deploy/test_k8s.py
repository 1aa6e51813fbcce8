"""`parity deploy k8s`: strict-valid manifests for a pinned Kubernetes, rendered by kustomize, KServe schema-valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from parity.cli import app
from parity.deploy._k8s import DRAIN_S, FLUSH_S, K8S_VERSION, PRESTOP_S, memory_needed
from parity.registry import verify_artifact_dir
from parity.server._config import ServerConfig

runner = CliRunner()
IMAGE = "registry.example.com/ml/churn:1.4.0"
KUBECTL = shutil.which("kubectl")


def deploy(artifact: Path, out: Path, *args: str) -> Any:
    return runner.invoke(app, ["deploy", "k8s", str(artifact), "--image", IMAGE, "-o", str(out), *args])


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render the directory with kubectl's embedded kustomize (offline) and parse the stream."""
    assert KUBECTL is not None, "kubectl must be on PATH"
    done = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.fixture(scope="module")
def plain(portable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "churn"
    args = ["--namespace", "ml", "--token-secret", "churn-token", "--replicas", "3", "--max-replicas", "6"]
    result = deploy(portable_dir, out, *args, "--lake", "s3://lake-bucket/churn", "--cpu", "500m", "--memory", "768Mi")
    assert result.exit_code == 0, result.output
    return out


def test_every_manifest_is_strictly_valid(plain: Path) -> None:
    files = sorted(p.name for p in plain.iterdir())
    assert files == [
        "deployment.yaml", "hpa.yaml", "kustomization.yaml", "networkpolicy.yaml", "pdb.yaml", "service.yaml",
        "serviceaccount.yaml",
    ]  # fmt: skip
    for path in plain.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            for obj in yaml.safe_load_all(path.read_text()):
                validate(obj)
    rendered = kustomize(plain)
    assert sorted(o["kind"] for o in rendered) == [
        "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount",
    ]  # fmt: skip
    for obj in rendered:
        validate(obj)
        assert obj["metadata"]["namespace"] == "ml"


def test_deployment_is_hardened_and_drains(plain: Path) -> None:
    (dep,) = yaml.safe_load_all((plain / "deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    assert dep["spec"]["replicas"] == 3
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    sec = box["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["capabilities"]["drop"] == ["ALL"]
    assert sec["seccompProfile"]["type"] == "RuntimeDefault" and sec["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"] for m in box["volumeMounts"]}
    assert {"/var/lib/parity", "/tmp"} <= mounts  # the writable lake buffer and temp dir
    assert box["args"][box["args"].index("--lake") + 1] == "s3://lake-bucket/churn"
    assert box["args"][box["args"].index("--host") + 1] == "0.0.0.0"
    assert box["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert box["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert box["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert box["resources"]["requests"] == {"cpu": "500m", "memory": "768Mi"}
    assert box["env"] == [
        {"name": "PARITY_TOKEN", "valueFrom": {"secretKeyRef": {"name": "churn-token", "key": "token"}}}
    ]
    # The drain window is the server's: SIGKILL must come after preStop + drain + lake flush.
    assert ServerConfig().graceful_timeout_s == DRAIN_S
    assert box["lifecycle"]["preStop"]["sleep"]["seconds"] == PRESTOP_S
    assert pod["terminationGracePeriodSeconds"] > PRESTOP_S + DRAIN_S + ServerConfig().lake_flush_interval_s
    assert pod["terminationGracePeriodSeconds"] == PRESTOP_S + DRAIN_S + FLUSH_S


def test_service_hpa_pdb_policy(plain: Path) -> None:
    (svc,) = yaml.safe_load_all((plain / "service.yaml").read_text())
    assert {p["name"]: p["appProtocol"] for p in svc["spec"]["ports"]} == {"http": "http", "grpc": "grpc"}
    (hpa,) = yaml.safe_load_all((plain / "hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (pdb,) = yaml.safe_load_all((plain / "pdb.yaml").read_text())
    assert pdb["spec"]["maxUnavailable"] == 1
    (sa,) = yaml.safe_load_all((plain / "serviceaccount.yaml").read_text())
    assert sa["automountServiceAccountToken"] is False
    (pol,) = yaml.safe_load_all((plain / "networkpolicy.yaml").read_text())
    assert sorted(p["port"] for p in pol["spec"]["ingress"][0]["ports"]) == [8080, 8081]


def test_kserve_inference_service_validates(portable_dir: Path, tmp_path: Path, kserve_python: Path) -> None:
    out = tmp_path / "isvc"
    result = deploy(portable_dir, out, "--kserve", "--min-replicas", "1", "--max-replicas", "4")
    assert result.exit_code == 0, result.output
    rendered = kustomize(out)
    kinds = {o["kind"]: o for o in rendered}
    assert set(kinds) == {"InferenceService", "ServingRuntime", "ServiceAccount"}
    validate(kinds["ServiceAccount"])
    isvc = kinds["InferenceService"]
    assert isvc["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    runtime = kinds["ServingRuntime"]["spec"]
    assert runtime["protocolVersions"] == ["v2", "grpc-v2"]
    assert runtime["containers"][0]["name"] == "kserve-container"
    assert runtime["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    script = Path(__file__).with_name("kserve_schema.py")
    stream = yaml.safe_dump_all(rendered)
    done = subprocess.run([str(kserve_python), str(script)], input=stream, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok InferenceService churn" in done.stdout and "ok ServingRuntime churn-runtime" in done.stdout
    # The validator rejects what KServe's schema rejects (so the pass above means something).
    broken = stream.replace("protocolVersion:", "protocolVersoin:")
    bad = subprocess.run([str(kserve_python), str(script)], input=broken, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "unknown field 'protocolVersoin'" in bad.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--replicas", "-1"], "--replicas"),
        (["--min-replicas", "4", "--max-replicas", "2"], "--max-replicas"),
        (["--image", "Bad Image!"], "--image"),
        (["--memory", "64Mi"], "--memory"),
        (["--memory", "lots"], "--memory"),
        (["--cpu", "0"], "--cpu"),
        (["--namespace", "Not_A_Label"], "--namespace"),
        (["--lake", "ftp://x/y"], "--lake"),
    ],
)
def test_invalid_options_are_refused_before_writing(
    portable_dir: Path, tmp_path: Path, args: list[str], option: str
) -> None:
    out = tmp_path / "k8s"
    image = [] if "--image" in args else ["--image", IMAGE]  # a bad --image replaces the good one
    result = runner.invoke(app, ["deploy", "k8s", str(portable_dir), *image, "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert list(tmp_path.iterdir()) == []


def test_memory_floor_names_what_the_model_needs(portable_dir: Path, tmp_path: Path) -> None:
    need = memory_needed(verify_artifact_dir(portable_dir))
    result = deploy(portable_dir, tmp_path / "k8s", "--memory", f"{need // 2**20 - 1}Mi")
    assert result.exit_code == 2 and f"at least {-(-need // 2**20)}Mi" in result.output
    assert deploy(portable_dir, tmp_path / "ok", "--memory", f"{-(-need // 2**20)}Mi").exit_code == 0
