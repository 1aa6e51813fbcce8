"""The public API is explicit and the core never imports transports or the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import parity

CORE = [
    "parity",
    "parity.artifact",
    "parity.schema",
    "parity.codec",
    "parity.checks",
    "parity.export",
    "parity.profile",
    "parity.registry",
    "parity.runtime",
    "parity.deploy",
    "parity.batch",
]
FORBIDDEN = ["starlette", "uvicorn", "grpc", "typer", "rich", "prometheus_client", "parity.server", "parity.cli"]


def test_public_names() -> None:
    assert sorted(parity.__all__) == sorted(
        [
            "Artifact",
            "ArtifactError",
            "ClassLabels",
            "ColumnSpec",
            "ExportError",
            "IntegrityError",
            "MissingDependencyError",
            "ModelVersion",
            "NotFoundError",
            "OutputSpec",
            "ParityError",
            "ParityMismatchError",
            "ParityReport",
            "ProfileError",
            "Registry",
            "RegistryError",
            "SchemaError",
            "Signature",
            "Threshold",
            "UnsupportedModelError",
            "UntrustedArtifactError",
            "__version__",
            "load",
            "package",
        ]
    )
    for name in parity.__all__:
        assert hasattr(parity, name), name


def test_core_does_not_import_server_or_cli() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []


def test_every_error_derives_from_parity_error() -> None:
    import parity.errors as errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ParityError)
