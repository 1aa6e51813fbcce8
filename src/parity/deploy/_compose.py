"""What a composition needs in a container: its module, its in-process artifacts and its remote downstreams.

:func:`plan_composition` imports ``MODULE:OBJECT`` once (as ``parity compose serve`` will in the
image) and records every target of every endpoint, so ``parity build --compose`` knows what to copy
and ``parity deploy k8s --compose`` knows which URLs to wire (``PARITY_COMPOSE_URL_<ENDPOINT>``,
which the engine applies to an endpoint's primary Remote target only).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parity.deploy._errors import DeployError, InvalidOptionError

__all__ = ["APP_DIR", "CompositionPlan", "Downstream", "compose_serve_args", "plan_composition"]

APP_DIR = "/opt/parity/app"
"""Where the composition's module (file or package) lives in the image (on ``PYTHONPATH``)."""


@dataclass(frozen=True)
class Downstream:
    """One target of one endpoint: a remote OIP server, an in-process registry artifact, or a stub."""

    endpoint: str
    role: str
    """primary, candidate, fallback or shadow (see ``Endpoint.targets``)."""
    kind: str
    """remote, local or stub."""
    url: str | None = None
    model: str | None = None
    ref: str | None = None
    trusted: bool = False

    @property
    def wired_by_env(self) -> bool:
        """Whether ``PARITY_COMPOSE_URL_<ENDPOINT>`` replaces this target's url (the engine's rule)."""
        return self.kind == "remote" and self.role == "primary"

    @property
    def scheme(self) -> str:
        """``http``, ``https``, ``grpc`` or ``grpcs`` of a remote target."""
        return urlsplit(self.url or "").scheme

    @property
    def port(self) -> int | None:
        """The port of a remote url (the scheme's default when it has none)."""
        parts = urlsplit(self.url or "")
        try:
            explicit = parts.port
        except ValueError:
            return None
        return explicit or {"http": 80, "https": 443}.get(parts.scheme)

    @property
    def loopback(self) -> bool:
        """Whether a remote url points at this machine (it would be the pod itself in a cluster)."""
        if self.kind != "remote":
            return False
        host = (urlsplit(self.url or "").hostname or "").lower()
        if host in ("localhost", "") or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address.is_loopback or address.is_unspecified

    def to_dict(self) -> dict[str, Any]:
        """For ``parity-image.json``."""
        out: dict[str, Any] = {"endpoint": self.endpoint, "role": self.role, "kind": self.kind}
        if self.kind == "remote":
            from parity.compose._engine import url_env

            out |= {"url": self.url, "model": self.model}
            if self.wired_by_env:
                out["url_env"] = url_env(self.endpoint)
        elif self.kind == "local":
            out |= {"ref": self.ref, "trusted": self.trusted}
        return out


@dataclass(frozen=True)
class CompositionPlan:
    """A loaded composition and what its image must hold."""

    spec: str
    """``MODULE:OBJECT`` as given."""
    name: str
    version: int
    source: Path
    """The module file or the top-level package directory to copy."""
    image_spec: str
    """``MODULE:OBJECT`` as ``parity compose serve`` runs it in the image."""
    downstreams: tuple[Downstream, ...]

    @property
    def local_refs(self) -> list[str]:
        """Registry refs of the in-process artifacts, once each, in declaration order."""
        return list(dict.fromkeys(d.ref for d in self.downstreams if d.kind == "local" and d.ref))

    def remotes(self) -> list[Downstream]:
        """Every remote target."""
        return [d for d in self.downstreams if d.kind == "remote"]


def compose_serve_args(spec: str, *, http_port: int, grpc_port: int, lake: str) -> list[str]:
    """The container's ``parity compose serve`` command line (shared by the Dockerfile and the manifests)."""
    args = ["parity", "compose", "serve", spec, "--host", "0.0.0.0", "--port", str(http_port)]
    return [*args, "--grpc-port", str(grpc_port), "--lake", lake]


def _source(spec: str) -> tuple[Path, str]:
    """The file or package to copy for ``spec`` and the spec the image runs."""
    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        return path.resolve(), f"{APP_DIR}/{path.name}:{attr}"
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        raise DeployError(f"composition module {module_name!r} has no source file to copy into the image")
    path = Path(file).resolve()
    # A package is copied whole (its submodules and data files), a module as its one file.
    return (path.parent if path.name == "__init__.py" else path), spec


def _targets(endpoint: Any) -> list[Downstream]:
    from parity.compose import Local, Remote, Stub

    out = []
    for role, target in endpoint.targets().items():
        if isinstance(target, Remote):
            out.append(Downstream(endpoint.name, role, "remote", url=target.url, model=target.model))
        elif isinstance(target, Local):
            if not isinstance(target.ref, str):
                raise InvalidOptionError(
                    f"endpoint {endpoint.name!r} ({role}): Local holds a loaded {type(target.ref).__name__}; "
                    "an image needs a registry ref: declare Local('name:VERSION') or Local('name@alias')",
                    param="spec",
                )
            if target.registry is not None:
                raise InvalidOptionError(
                    f"endpoint {endpoint.name!r} ({role}): Local(registry={target.registry!r}) names a registry "
                    "outside the image; declare it without registry= (the image's registry is its $PARITY_HOME)",
                    param="spec",
                )
            from parity.registry import parse_ref

            if parse_ref(target.ref).kind == "path":
                raise InvalidOptionError(
                    f"endpoint {endpoint.name!r} ({role}): Local({target.ref!r}) is a directory; push it to the "
                    "registry and declare Local('name:VERSION') so the image can carry and verify it",
                    param="spec",
                )
            out.append(Downstream(endpoint.name, role, "local", ref=target.ref, trusted=target.trusted))
        elif isinstance(target, Stub):
            out.append(Downstream(endpoint.name, role, "stub"))
    return out


def plan_composition(spec: str) -> CompositionPlan:
    """Import ``spec`` and record its module source and every endpoint target."""
    from parity.compose import load_composition

    comp = load_composition(spec)
    source, image_spec = _source(spec)
    downstreams = tuple(d for ep in comp.endpoints.values() for d in _targets(ep))
    return CompositionPlan(spec, comp.name, comp.version, source, image_spec, downstreams)
