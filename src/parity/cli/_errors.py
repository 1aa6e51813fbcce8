"""Exit codes of the ``parity`` command and the one table mapping exceptions to them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from parity.errors import (
    AddressInUse,
    IntegrityError,
    NotFoundError,
    ParityError,
    ParityMismatchError,
    SchemaError,
    UntrustedArtifactError,
)

__all__ = [
    "EXIT_CODES",
    "SERVE_MODULES",
    "ExitCode",
    "epilog",
    "exit_code_for",
    "flag_of",
    "missing_serve_dist",
    "with_flags",
]


# Top-level modules of the `serve` extra, with their distribution names.
SERVE_MODULES = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "orjson": "orjson",
    "prometheus_client": "prometheus-client",
    "grpc": "grpcio",
    "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection",
}


def missing_serve_dist() -> str | None:
    """Name a distribution of the `serve` extra that is not installed, or None when all are."""
    for module, dist in SERVE_MODULES.items():
        try:
            if importlib.util.find_spec(module) is None:
                return dist
        except (ImportError, ValueError):
            return dist
    return None


@dataclass(frozen=True)
class ExitCode:
    """One documented exit status and the exception classes that produce it."""

    code: int
    meaning: str
    errors: tuple[type[BaseException], ...] = ()


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "success"),
    ExitCode(1, "unexpected error (rerun with --debug for the traceback)"),
    ExitCode(2, "usage error: unknown command, bad option or argument"),
    ExitCode(3, "parity check failed", (ParityMismatchError,)),
    # ValueError: a malformed input file (bad CSV/JSON, unconvertible values) is an input error too.
    ExitCode(4, "input does not match the model signature, or an input file is malformed", (SchemaError, ValueError)),
    ExitCode(5, "not found: unknown model, version or alias, or a missing file", (NotFoundError, FileNotFoundError)),
    ExitCode(6, "integrity error: an artifact file differs from its recorded sha256", (IntegrityError,)),
    ExitCode(7, "untrusted artifact: not portable, rerun with --trusted if you trust it", (UntrustedArtifactError,)),
    ExitCode(8, "any other parity error", (ParityError,)),
    ExitCode(9, "the server cannot listen: port in use or address unavailable", (AddressInUse,)),
)
"""Every exit status of the CLI; the single source of the mapping, the help epilog and the docs."""

UNEXPECTED = 1

_BY_CLASS: dict[type[BaseException], int] = {cls: row.code for row in EXIT_CODES for cls in row.errors}


def exit_code_for(exc: BaseException) -> int:
    """Return the exit code of ``exc``: its most specific class listed in EXIT_CODES wins."""
    # Walking the MRO (not the table order) makes SchemaError -> 4 although it is also a ParityError.
    for cls in type(exc).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
    return UNEXPECTED


def epilog() -> str:
    """Render EXIT_CODES for ``parity --help``."""
    lines = "\n".join(f"  {row.code}  {row.meaning}" for row in EXIT_CODES)
    return f"Exit codes:\n\n{lines}"


OPTION_FLAGS: dict[str, str] = {"out": "--output", "spec": "--compose", "keys": "--key"}
"""Library parameters whose CLI flag is not ``--`` + the name with dashes."""


def flag_of(param: str) -> str:
    """The CLI flag that sets library parameter ``param`` (``min_replicas`` -> ``--min-replicas``)."""
    return OPTION_FLAGS.get(param, "--" + param.replace("_", "-"))


def with_flags(exc: BaseException) -> str:
    """The message of ``exc``, plus the CLI flag of the parameter it names (:attr:`ParityError.param`)."""
    message = str(exc) or type(exc).__name__
    param = getattr(exc, "param", None) if isinstance(exc, ParityError) else None
    return f"{message} (CLI: {flag_of(param)})" if param else message
