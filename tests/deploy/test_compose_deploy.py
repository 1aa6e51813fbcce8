"""`parity build --compose` and `parity deploy k8s --compose`: a composition service's image and manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import parity
from parity.cli import app
from parity.deploy._image import GRPC_PORT, HTTP_PORT
from parity.deploy._lock import read_lock
from parity.registry import Registry, verify_artifact_dir
from tests.deploy.conftest import _labels
from tests.deploy.test_build import hadolint
from tests.deploy.test_k8s import K8S_VERSION, kustomize
from tests.fixtures import pipeline, raw_frame

runner = CliRunner()
IMAGE = "registry.example.com/ml/triage:1.0.0"
RULES_APP = Path(__file__).parents[1] / "compose" / "rules_app.py"


def flat(output: str) -> str:
    """The CLI's error text without the box rich wraps it in."""
    return re.sub(r"[│╭╰─╮╯\s]+", " ", output)


# Every kind of target: an in-process artifact by alias, REST and gRPC remotes on loopback (to be wired),
# a remote with a fallback, and an external HTTPS remote (kept, reached through the egress policy).
MODULE = """
from parity.compose import Composition, Fallback, Local, Remote
from parity.schema import ColumnSpec, OutputSpec

comp = Composition("triage", inputs=[ColumnSpec("tenure", "FP64", True)], outputs=[OutputSpec("decision", "BYTES")])
comp.model("churn", Local("churn@prod"))
comp.model("risk", Remote("http://127.0.0.1:8001", "risk"))
comp.model("spend", Remote("grpc://localhost:8003", "spend"), fallback=Fallback(default={"prediction": 0.0}))
comp.model("bureau", Remote("https://scores.example.com", "bureau"), required=False)


@comp.rule(per_row=True)
def decide(row, out):
    return {"decision": "call" if out["risk"]["probability"] > 0.5 else "ignore"}
"""


@pytest.fixture(scope="module")
def home(portable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry where churn has two versions and the alias prod points at version 2."""
    root = tmp_path_factory.mktemp("home")
    registry = Registry(root)
    registry.push(portable_dir)
    df = raw_frame(300, seed=11)
    second = parity.package(pipeline(LogisticRegression(max_iter=300)).fit(df, _labels(df)), df, name="churn")
    v2 = registry.push(second)
    assert v2.version == 2
    registry.set_alias("churn", "prod", 2)
    return root


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "triage.py"
    path.write_text(MODULE)
    return path


@pytest.fixture(scope="module")
def context(home: Path, module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import platform

    out = tmp_path_factory.mktemp("ctx") / "image"
    args = ["--registry", str(home), "build", "--compose", f"{module}:comp", "-o", str(out)]
    result = runner.invoke(app, [*args, "--python", platform.python_version()])
    assert result.exit_code == 0, result.output
    return out


def test_compose_context_lints_clean_and_serves_the_composition(context: Path) -> None:
    names = {p.name for p in context.iterdir()}
    assert names == {"Dockerfile", ".dockerignore", "requirements.lock", "wheels", "app", "registry", IMAGE_JSON}
    lint = hadolint(context / "Dockerfile")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docker = (context / "Dockerfile").read_text()
    assert docker.count("FROM ${BASE_IMAGE}") == 2 and "USER 10001:10001" in docker
    assert f"EXPOSE {HTTP_PORT} {GRPC_PORT}" in docker and "/v2/health/live" in docker.split("HEALTHCHECK", 1)[1]
    assert "PARITY_HOME=/opt/parity" in docker and "PYTHONPATH=/opt/parity/app" in docker
    assert "COPY app/ /opt/parity/app/" in docker and "COPY registry/ /opt/parity/registry/" in docker
    entry = json.loads(docker.split("ENTRYPOINT ", 1)[1].strip())
    assert entry[:4] == ["parity", "compose", "serve", "/opt/parity/app/triage.py:comp"]
    assert entry[entry.index("--host") + 1] == "0.0.0.0" and entry[entry.index("--port") + 1] == str(HTTP_PORT)
    # Build-time checks: the module loads in the image's environment, the artifact verifies by its ref.
    run = docker.split("\nRUN ", 3)[-1].split("\n# The root", 1)[0]
    assert "load_composition(" in run and "parity --quiet verify churn@prod" in run
    assert (context / "app" / "triage.py").read_text() == MODULE
    ignore = (context / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and {"!app/", "!registry/", "!wheels/"} <= set(ignore)
    assert all(p.stat().st_mode & 0o004 for p in context.rglob("*"))


IMAGE_JSON = "parity-image.json"


def test_image_registry_resolves_the_refs_as_the_host_does(context: Path, home: Path) -> None:
    host = Registry(home).get("churn@prod")
    inside = Registry(context)  # the context's registry/ is $PARITY_HOME/registry in the image
    copied = inside.get("churn@prod")
    assert (copied.version, copied.digest) == (host.version, host.digest) == (2, host.digest)
    assert [v.version for v in inside.versions("churn")] == [2]  # only what the composition uses
    assert inside.load("churn@prod").version == 2  # files and digest verified
    image = json.loads((context / IMAGE_JSON).read_text())
    assert image["composition"] == {
        "name": "triage", "version": 1, "spec": "/opt/parity/app/triage.py:comp", "source": "triage.py",
        "path": "/opt/parity/app",
    }  # fmt: skip
    by_endpoint = {(d["endpoint"], d["role"]): d for d in image["downstreams"]}
    assert by_endpoint["churn", "primary"] == {
        "endpoint": "churn", "role": "primary", "kind": "local", "ref": "churn@prod", "trusted": False,
        "version": 2, "digest": host.digest,
    }  # fmt: skip
    assert by_endpoint["risk", "primary"]["url"] == "http://127.0.0.1:8001"
    assert by_endpoint["risk", "primary"]["url_env"] == "PARITY_COMPOSE_URL_RISK"
    assert by_endpoint["spend", "primary"]["url"] == "grpc://localhost:8003"


def test_compose_lock_is_the_compose_runtime_at_the_artifact_versions(context: Path, portable_dir: Path) -> None:
    versions = read_lock(context / "requirements.lock").versions()
    trained = verify_artifact_dir(portable_dir)["environment"]["packages"]
    assert versions["onnxruntime"] == trained["onnxruntime"] and versions["numpy"] == trained["numpy"]
    assert {"parity", "aiohttp", "starlette", "uvicorn", "grpcio"} <= set(versions)
    for absent in ("scikit-learn", "skl2onnx", "skops", "xgboost-cpu", "lightgbm"):
        assert absent not in versions, absent
    image = json.loads((context / IMAGE_JSON).read_text())
    assert image["packages"] == versions


def test_rules_app_context_without_in_process_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    result = runner.invoke(app, ["build", "--compose", f"{RULES_APP}:composition", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"Dockerfile", ".dockerignore", "requirements.lock", "wheels", "app",
                                               IMAGE_JSON}  # fmt: skip
    lint = hadolint(out / "Dockerfile")
    assert lint.returncode == 0, lint.stdout
    assert "parity --quiet verify" not in (out / "Dockerfile").read_text()
    image = json.loads(result.stdout)["image"]
    assert [d["url_env"] for d in image["downstreams"]] == ["PARITY_COMPOSE_URL_CHURN", "PARITY_COMPOSE_URL_SPEND"]
    assert "scikit-learn" not in image["packages"] and "aiohttp" in image["packages"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # neither REF nor --compose
        ["some-model", "--compose", f"{RULES_APP}:composition"],  # both
    ],
)
def test_build_takes_exactly_one_of_ref_and_compose(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "ctx"
    result = runner.invoke(app, ["build", *args, "-o", str(out)])
    assert result.exit_code == 2 and "exactly one of REF" in flat(result.output)
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_a_local_artifact_by_path(portable_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bypath.py"
    path.write_text(MODULE.replace('Local("churn@prod")', f"Local({str(portable_dir)!r})"))
    out = tmp_path / "ctx"
    result = runner.invoke(app, ["build", "--compose", f"{path}:comp", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "--compose" in flat(result.output) and "is a directory; push it to the" in flat(result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bypath.py"]


# ---------------------------------------------------------------------------------------------- k8s

WIRED = ["--downstream", "risk=risk", "--downstream", "spend=spend.models:9001"]


def deploy(home: Path, module: Path, out: Path, *args: str) -> Any:
    base = ["--registry", str(home), "deploy", "k8s", "--compose", f"{module}:comp", "--image", IMAGE]
    return runner.invoke(app, [*base, "-o", str(out), *args])


def _objects(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))}


def test_compose_manifests_are_valid_and_wired(home: Path, module: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = deploy(home, module, out, *WIRED, "--namespace", "ml", "--lake", "s3://lake/triage", "--replicas", "2")
    assert result.exit_code == 0, result.output
    objects = _objects(out)
    assert sorted(objects) == [
        "deployment.yaml", "hpa.yaml", "kustomization.yaml", "networkpolicy.yaml", "pdb.yaml", "service.yaml",
        "serviceaccount.yaml",
    ]  # fmt: skip
    for file_name, obj in objects.items():
        if file_name != "kustomization.yaml":
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    rendered = kustomize(out)
    assert {o["kind"] for o in rendered} == {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount", "NetworkPolicy"
    }  # fmt: skip
    assert all(o["metadata"]["namespace"] == "ml" for o in rendered)
    pod = objects["deployment.yaml"]["spec"]["template"]["spec"]
    box = pod["containers"][0]
    assert box["command"] == ["parity"] and box["args"][:3] == ["compose", "serve", "/opt/parity/app/triage.py:comp"]
    assert box["args"][box["args"].index("--lake") + 1] == "s3://lake/triage"
    assert box["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert box["securityContext"]["readOnlyRootFilesystem"] is True and pod["automountServiceAccountToken"] is False
    # The URL shape the engine's RestClient / GrpcClient take: scheme://host:port, no path.
    assert {e["name"]: e["value"] for e in box["env"]} == {
        "PARITY_COMPOSE_URL_RISK": f"http://risk:{HTTP_PORT}",
        "PARITY_COMPOSE_URL_SPEND": "grpc://spend.models:9001",
    }
    policy = objects["networkpolicy.yaml"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    rules = policy["egress"]
    assert {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "risk"}}}],
            "ports": [{"protocol": "TCP", "port": HTTP_PORT}]} in rules  # fmt: skip
    spend = next(r for r in rules if r.get("to") and "namespaceSelector" in r["to"][0])
    assert spend["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "models"}}
    assert spend["ports"] == [{"protocol": "TCP", "port": 9001}]
    open_ports = [r["ports"] for r in rules if "to" not in r]
    assert [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}] in open_ports  # DNS
    assert [{"protocol": "TCP", "port": 443}] in open_ports  # the external https remote and the s3 lake
    assert objects["deployment.yaml"]["metadata"]["annotations"] == {"parity.dev/composition": "triage"}


def test_env_wiring_is_what_the_engine_applies(home: Path, module: Path, tmp_path: Path) -> None:
    """The generated variables, set in a process, make the runner call the Services."""
    from parity.compose import load_composition
    from parity.compose._clients import GrpcClient, RestClient
    from parity.compose._engine import Runner

    out = tmp_path / "k8s"
    assert deploy(home, module, out, *WIRED).exit_code == 0
    box = _objects(out)["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in box["env"]}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        targets = Runner(load_composition(f"{module}:comp")).targets
    risk, spend = targets["risk"]["primary"].client, targets["spend"]["primary"].client
    assert isinstance(risk, RestClient) and risk.url == f"http://risk:{HTTP_PORT}"
    assert isinstance(spend, GrpcClient) and spend.target == "spend.models:9001"


@pytest.mark.parametrize(
    ("args", "flag", "message"),
    [
        ([*WIRED, "--downstream", "nope=svc"], "--downstream", "has no endpoint 'nope'"),
        (["--downstream", "risk=risk"], "--downstream", "'spend' (primary) calls grpc://localhost:8003, a loopback"),
        ([*WIRED, "--downstream", "churn=churn"], "--downstream", "runs in-process"),
        (["--downstream", "risk=Risk_Svc", *WIRED[2:]], "--downstream", "DNS-1123"),
        (["--downstream", "risk=risk:0", *WIRED[2:]], "--downstream", "1..65535"),
        (["--downstream", "risk=risk:http", *WIRED[2:]], "--downstream", "1..65535"),
        (["--downstream", "risk", *WIRED[2:]], "--downstream", "NAME=SERVICE[:PORT]"),
        ([*WIRED, "--downstream", "risk=other"], "--downstream", "given twice"),
        ([*WIRED, "--kserve"], "--kserve", "deploy it without kserve"),
        ([*WIRED, "--replicas", "0"], "--replicas", "replicas must be >= 1"),
        ([*WIRED, "--memory", "128Mi"], "--memory", "composition 'triage' needs to load"),
    ],
)
def test_compose_refusals_write_nothing(
    home: Path, module: Path, tmp_path: Path, args: list[str], flag: str, message: str
) -> None:
    out = tmp_path / "k8s"
    result = deploy(home, module, out, *args)
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert flag in text and message in text, text
    assert list(tmp_path.iterdir()) == []


def test_loopback_fallback_target_is_refused(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "fb.py"
    path.write_text(
        MODULE.replace(
            'fallback=Fallback(default={"prediction": 0.0})',
            'fallback=Fallback(model=Remote("http://127.0.0.1:8004", "spend_old"))',
        )
    )
    result = deploy(home, path, tmp_path / "k8s", *WIRED)
    assert result.exit_code == 2
    assert "(fallback) calls http://127.0.0.1:8004" in flat(result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fb.py"]


def test_downstream_needs_compose(portable_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["deploy", "k8s", str(portable_dir), "--image", IMAGE, "-o", str(tmp_path / "k"), "--downstream", "a=b"]
    )
    assert result.exit_code == 2 and "--compose" in result.output
    assert list(tmp_path.iterdir()) == []


def test_missing_module_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["build", "--compose", f"{tmp_path / 'rules.py'}:composition", "-o", str(tmp_path / "c")]
    )
    assert result.exit_code != 0 and "does not exist" in flat(result.output)
    assert list(tmp_path.iterdir()) == []
