"""The public API is explicit and the core never imports transports or the CLI."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import parity

SRC = Path(parity.__file__).parent

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
    "parity.skew",
    "parity.lake",
    "parity.env",
    "parity._format",
    "parity.deploy",
    "parity.batch",
]
FORBIDDEN = [
    "starlette",
    "uvicorn",
    "grpc",
    "typer",
    "click",
    "rich",
    "prometheus_client",
    "orjson",
    "parity.server",
    "parity.cli",
]
# Third-party stacks confined to one package (any import of them elsewhere in src/ fails the test).
CONFINED: dict[str, tuple[str, ...]] = {
    "starlette": ("server",),
    "uvicorn": ("server",),
    # Transports: the server speaks them, and a composition calls its downstreams with them.
    "grpc": ("server", "compose"),
    "grpc_health": ("server",),
    "grpc_reflection": ("server",),
    "prometheus_client": ("server",),
    "orjson": ("server", "compose"),
    "aiohttp": ("compose",),
    "typer": ("cli",),
    "click": ("cli",),
    "rich": ("cli",),
}


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


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_heavy_stacks_stay_in_their_package() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[:1] == ("proto",) or rel.parts[:2] == ("server", "proto"):
            continue  # generated gRPC stubs
        for name in _imports(path):
            homes = CONFINED.get(name.split(".")[0])
            if homes is not None and rel.parts[0] not in homes:
                wrong.append(f"{rel}: {name} belongs in parity/{' or '.join(homes)}/")
    assert wrong == []


# Only the CLI speaks in flags; library errors name parameters (the CLI maps them to flags).
_FLAGS_ALLOWED = ("cli",)
_CLI_HINT = re.compile(r"\(CLI: [^)]*\)")
_FLAG = re.compile(r"(^|[\s(`'\"/])--[a-z][a-z-]+")


def _raised_text(node: ast.Raise) -> str:
    parts = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
    return " ".join(parts)


def test_library_errors_name_parameters_not_cli_flags() -> None:
    flagged = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in _FLAGS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # A "(CLI: --flag)" hint beside the parameter's own name is fine.
            if isinstance(node, ast.Raise) and _FLAG.search(_CLI_HINT.sub("", _raised_text(node))):
                flagged.append(f"{rel}:{node.lineno}")
    assert flagged == []
