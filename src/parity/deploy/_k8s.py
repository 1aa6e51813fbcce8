"""``parity deploy k8s``: plain Kubernetes manifests (or a KServe InferenceService) for one image.

Options are recorded in :class:`K8sOptions` and validated as a whole before anything is rendered,
so a bad option never leaves half a directory. ``render`` returns ``{file name: [objects]}``;
``write_manifests`` writes them plus a ``kustomization.yaml`` listing them (``kubectl kustomize DIR``
renders the set offline).

Shutdown timing: the pod's ``preStop`` sleeps :data:`PRESTOP_S` so endpoints stop sending traffic
before SIGTERM; ``parity serve`` then drains in-flight requests for up to :data:`DRAIN_S` seconds
(``ServerConfig.graceful_timeout_s``) and flushes the lake; ``terminationGracePeriodSeconds`` covers
all three with a margin (:data:`FLUSH_S`) before Kubernetes sends SIGKILL.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.deploy._compose import CompositionPlan, compose_serve_args
from parity.deploy._errors import DeployError, InvalidOptionError
from parity.deploy._image import GRPC_PORT, HTTP_PORT, LAKE_DIR, USER_ID, serve_args

__all__ = [
    "DRAIN_S",
    "FLUSH_S",
    "K8S_VERSION",
    "PRESTOP_S",
    "K8sOptions",
    "memory_needed",
    "parse_downstreams",
    "parse_memory",
    "render",
    "render_composition",
    "write_manifests",
]

K8S_VERSION = "1.32.0"
"""Kubernetes version the manifests target (and are validated against in the tests)."""
PRESTOP_S = 5
DRAIN_S = 30
"""Mirrors ``parity.server.ServerConfig.graceful_timeout_s`` (a test keeps them equal)."""
FLUSH_S = 15
_BASE_MEMORY = 256 * 2**20  # interpreter + numpy/pandas/pyarrow/onnxruntime + server, measured ~180 MiB
_MODEL_FACTOR = 4  # file bytes -> onnxruntime session(s) + parsed graph + parity sample in memory

_IMAGE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_UNITS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_memory(text: str) -> int:
    """Bytes of a Kubernetes memory quantity (``512Mi``, ``1G``, ``1073741824``)."""
    match = _MEMORY.fullmatch(text)
    if match is None:
        raise InvalidOptionError(f"memory must be a quantity like 512Mi or 2Gi, got {text!r}", param="memory")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def memory_needed(manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
    """Bytes a server process needs to load its artifacts (runtime baseline + a multiple of their files)."""
    manifests = [manifest] if isinstance(manifest, Mapping) else list(manifest)
    size = sum(int(f.get("size", 0)) for m in manifests for f in (m.get("files") or {}).values())
    return _BASE_MEMORY + _MODEL_FACTOR * size


def _what(manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    return f"model {manifest.get('name')!r}" if isinstance(manifest, Mapping) else "the composition"


def _dns_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:50].strip("-")
    return name or "model"


@dataclass(frozen=True)
class K8sOptions:
    """Every option of ``parity deploy k8s``; :meth:`validate` checks them against the artifact."""

    image: str
    name: str | None = None
    replicas: int = 2
    min_replicas: int | None = None
    max_replicas: int | None = None
    cpu: str = "1"
    memory: str = "1Gi"
    namespace: str | None = None
    lake: str | None = None
    token_secret: str | None = None
    kserve: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def validate(self, manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, label: str | None = None) -> None:
        """Raise InvalidOptionError naming the first bad option (nothing has been written yet).

        ``manifest`` is the model's, or the list of a composition's in-process artifacts (``label``
        then names the composition in the memory message).
        """
        if not _IMAGE.fullmatch(self.image) or len(self.image) > 255:
            raise InvalidOptionError(
                f"image must be an image reference like registry.example.com/team/churn:1.2 or "
                f"NAME@sha256:<64 hex>, got {self.image!r}",
                param="image",
            )
        for param, count in (("replicas", self.replicas), ("min_replicas", self.min_replicas)):
            if count is not None and count < 1:
                raise InvalidOptionError(f"{param} must be >= 1, got {count}", param=param)
        low, high = self.bounds()
        if high < low:
            raise InvalidOptionError(f"min_replicas ({low}) must be <= max_replicas ({high})", param="max_replicas")
        if not low <= self.replicas <= high:
            raise InvalidOptionError(
                f"replicas ({self.replicas}) must lie within min_replicas..max_replicas ({low}..{high})",
                param="replicas",
            )
        if not _CPU.fullmatch(self.cpu) or self.cpu in ("0", "0m"):
            raise InvalidOptionError(f"cpu must be a positive quantity like 500m or 2, got {self.cpu!r}", param="cpu")
        need = memory_needed(manifest)
        if parse_memory(self.memory) < need:
            raise InvalidOptionError(
                f"memory {self.memory} is below what {label or _what(manifest)} needs to load: "
                f"at least {-(-need // 2**20)}Mi",
                param="memory",
            )
        for param, value in (("namespace", self.namespace), ("token_secret", self.token_secret)):
            if value is not None and (not _DNS_LABEL.fullmatch(value) or len(value) > 63):
                raise InvalidOptionError(
                    f"{param} must be a DNS-1123 label (lower-case letters, digits, '-'), got {value!r}", param=param
                )
        if self.name is not None and (not _DNS_LABEL.fullmatch(self.name) or len(self.name) > 50):
            raise InvalidOptionError(
                f"name must be a DNS-1123 label of <= 50 characters, got {self.name!r}", param="name"
            )
        if self.lake is not None and not (self.lake.startswith(("s3://", "/")) and len(self.lake) > 5):
            raise InvalidOptionError(
                f"lake must be an s3://bucket/prefix URL or an absolute path in the pod, got {self.lake!r}",
                param="lake",
            )

    def bounds(self) -> tuple[int, int]:
        """(min, max) replicas for the autoscaler."""
        low = self.min_replicas if self.min_replicas is not None else min(self.replicas, 2)
        high = self.max_replicas if self.max_replicas is not None else max(self.replicas, low) * 3
        return low, high


@dataclass(frozen=True)
class _Workload:
    """What differs between a model server and a composition service; the objects around it are shared."""

    name: str
    component: str
    """``model-server`` or ``composition`` (label and selector)."""
    args: list[str]
    """The container's arguments after the ``parity`` command."""
    annotations: Mapping[str, str]
    env: list[dict[str, Any]] = field(default_factory=list)
    egress: list[dict[str, Any]] | None = None
    """NetworkPolicy egress rules (None: egress is not restricted)."""


def _labels(w: _Workload, opts: K8sOptions) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": w.name,
        "app.kubernetes.io/component": w.component,
        "app.kubernetes.io/part-of": "parity",
        "app.kubernetes.io/managed-by": "parity",
        **dict(opts.labels),
    }


def _meta(name: str, opts: K8sOptions, labels: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels), **extra}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def _container(w: _Workload, opts: K8sOptions, *, kserve: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "kserve-container" if kserve else "server",
        "image": opts.image,
        "args": list(w.args),
        "command": ["parity"],
        "resources": {
            "requests": {"cpu": opts.cpu, "memory": opts.memory},
            "limits": {"memory": opts.memory},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "lake", "mountPath": "/var/lib/parity"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if kserve:
        # KServe routes to one container port; the V2 REST port (gRPC stays reachable inside the pod network).
        container["ports"] = [{"containerPort": HTTP_PORT, "protocol": "TCP"}]
    else:
        container["ports"] = [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ]
    port: Any = HTTP_PORT if kserve else "http"
    container["startupProbe"] = {
        "httpGet": {"path": "/v2/health/ready", "port": port},
        "periodSeconds": 2,
        "failureThreshold": 90,
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/v2/health/ready", "port": port},
        "periodSeconds": 5,
        "failureThreshold": 2,
        "timeoutSeconds": 2,
    }
    container["livenessProbe"] = {
        "httpGet": {"path": "/v2/health/live", "port": port},
        "periodSeconds": 10,
        "failureThreshold": 3,
        "timeoutSeconds": 2,
    }
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_S}}}
    env = list(w.env)
    if opts.token_secret:
        env.append({"name": "PARITY_TOKEN", "valueFrom": {"secretKeyRef": {"name": opts.token_secret, "key": "token"}}})
    if env:
        container["env"] = env
    return container


def _pod_spec(w: _Workload, opts: K8sOptions, *, kserve: bool) -> dict[str, Any]:
    return {
        "serviceAccountName": w.name,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": PRESTOP_S + DRAIN_S + FLUSH_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(w, opts, kserve=kserve)],
        "volumes": [
            {"name": "lake", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }


def render(manifest: Mapping[str, Any], opts: K8sOptions) -> dict[str, list[dict[str, Any]]]:
    """Validate ``opts`` and return the manifests as ``{file name: [objects]}``."""
    opts.validate(manifest)
    name = opts.name or _dns_name(str(manifest.get("name", "model")))
    workload = _Workload(
        name=name,
        component="model-server",
        args=serve_args(portable=bool(manifest.get("portable", True)), lake=opts.lake or LAKE_DIR)[1:],
        annotations={"parity.dev/model": str(manifest.get("name"))},
    )
    return _objects(workload, opts)


def _objects(w: _Workload, opts: K8sOptions) -> dict[str, list[dict[str, Any]]]:
    """ServiceAccount, Deployment, Service, HPA, PDB and NetworkPolicy (or the KServe pair) of one workload."""
    name = w.name
    labels = _labels(w, opts)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": w.component}
    low, high = opts.bounds()
    annotations = dict(w.annotations)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, opts, labels),
        "automountServiceAccountToken": False,
    }
    out: dict[str, list[dict[str, Any]]] = {"serviceaccount.yaml": [account]}
    if opts.kserve:
        out.update(_kserve(w, opts, labels, annotations, low, high))
        return out
    out["deployment.yaml"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, opts, labels, annotations=annotations),
            "spec": {
                "replicas": opts.replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": _pod_spec(w, opts, kserve=False),
                },
            },
        }
    ]
    out["service.yaml"] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, opts, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
                ],
            },
        }
    ]
    out["hpa.yaml"] = [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, opts, labels),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": low,
                "maxReplicas": high,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        }
    ]
    out["pdb.yaml"] = [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(name, opts, labels),
            # maxUnavailable (not minAvailable) so a one-replica deployment can still be drained.
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        }
    ]
    policy: dict[str, Any] = {
        "podSelector": {"matchLabels": selector},
        "policyTypes": ["Ingress"] if w.egress is None else ["Ingress", "Egress"],
        "ingress": [{"ports": [{"protocol": "TCP", "port": HTTP_PORT}, {"protocol": "TCP", "port": GRPC_PORT}]}],
    }
    if w.egress is not None:
        policy["egress"] = w.egress
    out["networkpolicy.yaml"] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(name, opts, labels),
            "spec": policy,
        }
    ]
    return out


_SERVICE_MAX = 253


def parse_downstreams(items: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``["churn=churn-svc", "spend=spend.models:8081"]`` -> ``{endpoint: (service, port or 0)}``; 0: the default."""
    out: dict[str, tuple[str, int]] = {}
    for item in items:
        endpoint, sep, target = item.partition("=")
        if not sep or not endpoint or not target:
            raise InvalidOptionError(f"downstream must be NAME=SERVICE[:PORT], got {item!r}", param="downstream")
        service, colon, port_text = target.partition(":")
        labels = service.split(".")
        if len(service) > _SERVICE_MAX or not all(_DNS_LABEL.fullmatch(x) and len(x) <= 63 for x in labels):
            raise InvalidOptionError(
                f"downstream {endpoint}: SERVICE must be a DNS-1123 name (lower-case letters, digits, '-', "
                f"dot-separated as in churn or churn.models), got {service!r}",
                param="downstream",
            )
        port = 0
        if colon:
            if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
                raise InvalidOptionError(
                    f"downstream {endpoint}: PORT must be an integer in 1..65535, got {port_text!r}",
                    param="downstream",
                )
            port = int(port_text)
        if endpoint in out:
            raise InvalidOptionError(f"downstream {endpoint} is given twice", param="downstream")
        out[endpoint] = (service, port)
    return out


def _downstream_rule(service: str, port: int) -> dict[str, Any]:
    """Egress to the pods behind a parity model Service (``parity deploy k8s`` labels them with its name)."""
    name, _, rest = service.partition(".")
    peer: dict[str, Any] = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}
    namespace = rest.split(".")[0] if rest else None
    if namespace:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return {"to": [peer], "ports": [{"protocol": "TCP", "port": port}]}


def render_composition(
    plan: CompositionPlan,
    opts: K8sOptions,
    downstreams: Sequence[str] = (),
    *,
    artifacts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Validate and return the manifests of a composition service, its remote endpoints wired to ``downstreams``.

    ``downstreams`` are ``NAME=SERVICE[:PORT]`` items; ``artifacts`` the manifests of the in-process
    artifacts (their size sets the memory floor). A primary Remote of a named endpoint gets
    ``PARITY_COMPOSE_URL_<NAME>=<scheme>://SERVICE:PORT`` (PORT defaults to the model Service's
    HTTP port, or its gRPC port for a grpc:// endpoint).
    """
    from parity.compose._engine import url_env

    opts.validate(list(artifacts), label=f"composition {plan.name!r}")
    if opts.kserve:
        raise InvalidOptionError(
            "kserve=True serves one model as an InferenceService predictor; a composition is a plain "
            "Deployment in front of the model services: deploy it without kserve",
            param="kserve",
        )
    wired = parse_downstreams(downstreams)
    remotes = {d.endpoint: d for d in plan.downstreams if d.wired_by_env}
    declared = sorted({d.endpoint for d in plan.downstreams})
    for endpoint in wired:
        if endpoint not in declared:
            raise InvalidOptionError(
                f"downstream {endpoint}: composition {plan.name!r} has no endpoint {endpoint!r}; endpoints: "
                f"{', '.join(declared) or '(none)'}",
                param="downstream",
            )
        if endpoint not in remotes:
            raise InvalidOptionError(
                f"downstream {endpoint}: endpoint {endpoint!r} runs in-process (its primary is not a Remote); "
                "only remote endpoints are wired to a Service",
                param="downstream",
            )
    env: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
    for d in plan.remotes():
        if d.wired_by_env and d.endpoint in wired:
            service, port = wired[d.endpoint]
            port = port or (GRPC_PORT if d.scheme.startswith("grpc") else HTTP_PORT)
            env.append({"name": url_env(d.endpoint), "value": f"{d.scheme}://{service}:{port}"})
            egress.append(_downstream_rule(service, port))
        elif d.loopback:
            how = (
                f"wire it with downstream {d.endpoint}=SERVICE[:PORT]"
                if d.wired_by_env
                else f"only an endpoint's primary is rewired, so declare this {d.role} target with a cluster URL"
            )
            raise InvalidOptionError(
                f"endpoint {d.endpoint!r} ({d.role}) calls {d.url}, a loopback URL that would be the pod itself; {how}",
                param="downstream",
            )
        elif d.port:
            egress.append({"ports": [{"protocol": "TCP", "port": d.port}]})  # a declared external URL
    if opts.lake and opts.lake.startswith("s3://"):
        egress.append({"ports": [{"protocol": "TCP", "port": 443}]})  # the lake's object store
    workload = _Workload(
        name=opts.name or _dns_name(plan.name),
        component="composition",
        args=compose_serve_args(plan.image_spec, http_port=HTTP_PORT, grpc_port=GRPC_PORT, lake=opts.lake or LAKE_DIR)[
            1:
        ],
        annotations={"parity.dev/composition": plan.name},
        env=env,
        egress=egress,
    )
    return _objects(workload, opts)


def _kserve(
    w: _Workload,
    opts: K8sOptions,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    low: int,
    high: int,
) -> dict[str, list[dict[str, Any]]]:
    name = w.name
    pod = _pod_spec(w, opts, kserve=True)
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": _meta(f"{name}-runtime", opts, labels),
        "spec": {
            "supportedModelFormats": [{"name": "parity", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2", "grpc-v2"],
            "containers": pod["containers"],
            "volumes": pod["volumes"],
        },
    }
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _meta(name, opts, labels, annotations=dict(annotations)),
        "spec": {
            "predictor": {
                "minReplicas": low,
                "maxReplicas": high,
                "serviceAccountName": name,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
                "securityContext": pod["securityContext"],
                # The artifact is baked into the image: no storageUri, no storage initializer.
                "model": {
                    "modelFormat": {"name": "parity", "version": "1"},
                    "protocolVersion": "v2",
                    "runtime": f"{name}-runtime",
                },
            }
        },
    }
    return {"servingruntime.yaml": [runtime], "inferenceservice.yaml": [service]}


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:
        from parity.errors import MissingDependencyError

        raise MissingDependencyError("parity deploy needs PyYAML: pip install 'parity[deploy]'") from exc
    return yaml


def write_manifests(
    files: Mapping[str, list[dict[str, Any]]], out: Path, *, namespace: str | None = None
) -> list[Path]:
    """Write each file and a kustomization.yaml listing them into ``out`` (new or empty), all or nothing."""
    yaml = _yaml()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidOptionError(
            f"out {str(out)!r} must be a new or empty directory; it exists and is not empty", param="out"
        )
    if not out.parent.is_dir():
        raise InvalidOptionError(f"out {str(out)!r}: parent directory {str(out.parent)!r} does not exist", param="out")
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
    if namespace:
        kustomization["namespace"] = namespace
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()
    try:
        for file_name, objects in {**files, "kustomization.yaml": [kustomization]}.items():
            text = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)
            (tmp / file_name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DeployError(f"cannot write the manifests to {out}: {exc}") from exc
    return [out / n for n in sorted([*files, "kustomization.yaml"])]
