"""The one exception hierarchy of parity.

Every error parity raises on purpose derives from :class:`ParityError`, so callers can catch
one class. Messages say what was wrong, what was received, and what to do. Domain errors carry
no HTTP or gRPC codes: transports map classes to status codes in a single table.

::

    ParityError
    ├── SchemaError                 input does not match the artifact signature
    ├── UnsupportedModelError       the model (or one of its steps) cannot be handled
    │   └── ExportError             ONNX export of a step failed
    ├── ParityMismatchError         exported graph and Python model disagree
    ├── ArtifactError               artifact directory unreadable or malformed
    │   ├── IntegrityError          a file's sha256 differs from the manifest
    │   └── UntrustedArtifactError  loading needs trusted=True (pickle-like payload)
    ├── RegistryError               registry operation failed
    │   └── NotFoundError           unknown model, version or alias
    ├── ProfileError                a profile cannot be built, read or merged
    ├── AddressInUse                a server cannot listen on its address (port taken)
    ├── LakeError                   the prediction lake cannot be written (path, disk, options)
    │   └── LakeFullError           the lake queue has no room for a request's rows
    ├── MissingDependencyError      an optional extra is not installed
    └── CompositionError            a composition of model endpoints failed
        ├── DeclarationError        a composition's declaration does not match its downstreams
        └── DownstreamError         a downstream model call failed (no fallback)
            ├── DownstreamTimeout   ... within the per-call timeout or the request deadline
            └── DownstreamRejected  ... because the downstream refused the request (4xx)
"""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "ArtifactError",
    "CompositionError",
    "DeclarationError",
    "DownstreamError",
    "DownstreamRejected",
    "DownstreamTimeout",
    "ExportError",
    "IntegrityError",
    "LakeError",
    "LakeFullError",
    "MissingDependencyError",
    "NotFoundError",
    "ParityError",
    "ParityMismatchError",
    "ProfileError",
    "RegistryError",
    "SchemaError",
    "UnsupportedModelError",
    "UntrustedArtifactError",
]


class ParityError(Exception):
    """Base class of every error parity raises on purpose.

    ``param`` names the library parameter the error is about (``keys``, ``trusted``...), or None; the
    CLI turns it into the flag that sets it, so library messages never spell CLI flags.
    """

    param: str | None = None

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        if param is not None:
            self.param = param


class SchemaError(ParityError, ValueError):
    """Input data does not match the signature (names the column, expected and received)."""

    def __init__(self, message: str, *, column: str | None = None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.column = column


class UnsupportedModelError(ParityError, TypeError):
    """The model, or one step of it, is not supported for the requested operation."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class ExportError(UnsupportedModelError):
    """A step could not be exported to ONNX."""


class ParityMismatchError(ParityError):
    """The exported graph's outputs differ from the Python model's beyond tolerance."""

    def __init__(self, message: str, *, report: object | None = None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.report = report


class ArtifactError(ParityError):
    """An artifact directory is missing, unreadable or malformed."""


class IntegrityError(ArtifactError):
    """A file of an artifact does not match the sha256 recorded in its manifest."""


class UntrustedArtifactError(ArtifactError):
    """The artifact holds pickle-like bytes; loading it needs an explicit trusted=True."""

    param = "trusted"


class RegistryError(ParityError):
    """A registry operation failed."""


class NotFoundError(RegistryError, LookupError):
    """An unknown model name, version or alias was asked for."""


class ProfileError(ParityError):
    """A data profile cannot be built, read or merged."""


class LakeError(ParityError):
    """The prediction lake cannot be written: unusable path, failing disk or invalid options."""


class LakeFullError(LakeError):
    """The lake queue has no room for a request's rows (overflow policy ``shed``, or ``block`` timed out)."""


class MissingDependencyError(ParityError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class AddressInUse(ParityError, OSError):
    """A server cannot listen on its address (port taken or address unavailable)."""


class CompositionError(ParityError):
    """A composition (business rules over several model endpoints) failed."""


class DeclarationError(CompositionError):
    """A composition's declaration does not match a downstream (names the endpoint and field)."""

    def __init__(self, message: str, *, endpoint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.field = field


class DownstreamError(CompositionError):
    """A downstream model could not answer and no fallback was declared."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class DownstreamTimeout(DownstreamError):
    """A downstream call did not finish within its timeout or the request's deadline."""


class DownstreamRejected(DownstreamError):
    """A downstream refused the request as malformed (it answered 4xx): the caller's mistake."""
