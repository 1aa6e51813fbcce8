"""Server errors and the one table mapping every parity error to an HTTP status and a gRPC code.

Domain errors (:mod:`parity.errors`) carry no transport codes; REST and gRPC both call
:func:`status_for` so the same mistake gets the same answer on every protocol. Lookup walks the
exception's MRO, so a subclass without its own row inherits its parent's mapping; anything that
is not a :class:`~parity.errors.ParityError` is an internal error (500 / ``INTERNAL``).
"""

from __future__ import annotations

from typing import NamedTuple

from parity.errors import (
    AddressInUse,
    ArtifactError,
    CompositionError,
    DeclarationError,
    DownstreamError,
    DownstreamRejected,
    DownstreamTimeout,
    ExportError,
    IntegrityError,
    LakeError,
    LakeFullError,
    MissingDependencyError,
    NotFoundError,
    ParityError,
    ParityMismatchError,
    ProfileError,
    RegistryError,
    SchemaError,
    UnsupportedModelError,
    UntrustedArtifactError,
)

__all__ = [
    "STATUS",
    "AddressInUse",
    "BadRequest",
    "HostNotAllowed",
    "LimitExceeded",
    "ModelNotFound",
    "ModelNotReady",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServerError",
    "Status",
    "Unauthorized",
    "UnsupportedMediaType",
    "status_for",
]


class ServerError(ParityError):
    """Base class of errors raised by the model server itself."""


class ModelNotFound(NotFoundError):
    """The requested model or version is not served (unknown, or unloaded)."""


class ModelNotReady(ServerError):
    """The model exists but cannot take requests right now (loading, draining, shutting down)."""


class BadRequest(ServerError):
    """The request is malformed: bad JSON, bad binary framing, wrong shapes or parameters."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class PayloadTooLarge(ServerError):
    """The request body exceeds ``max_request_bytes``."""


class UnsupportedMediaType(ServerError):
    """A POST body in a content type the endpoint refuses (the ones a web page can send cross-site)."""


class HostNotAllowed(BadRequest):
    """The ``Host`` header names a host the server does not answer for (DNS rebinding)."""


class LimitExceeded(ServerError):
    """A server-side cap was reached (e.g. the number of model slots)."""


class Unauthorized(ServerError):
    """A bearer token is required and the request's is missing or wrong."""


class Overloaded(ServerError):
    """The model has as many requests in flight as its limit allows: retry after a short pause."""


class RequestTimeout(ServerError):
    """The request did not complete within ``request_timeout_s``."""


class Status(NamedTuple):
    """Transport codes of one error class."""

    http: int
    grpc: str


# The single mapping table. Every class of parity.errors must appear (a test checks it).
STATUS: dict[type[BaseException], Status] = {
    ParityError: Status(500, "INTERNAL"),
    SchemaError: Status(400, "INVALID_ARGUMENT"),
    UnsupportedModelError: Status(422, "FAILED_PRECONDITION"),
    ExportError: Status(422, "FAILED_PRECONDITION"),
    ParityMismatchError: Status(422, "FAILED_PRECONDITION"),
    ArtifactError: Status(500, "INTERNAL"),
    IntegrityError: Status(500, "DATA_LOSS"),
    UntrustedArtifactError: Status(403, "PERMISSION_DENIED"),
    # Invalid model names/aliases in a URL or load request are the client's mistake.
    RegistryError: Status(400, "INVALID_ARGUMENT"),
    NotFoundError: Status(404, "NOT_FOUND"),
    ProfileError: Status(500, "INTERNAL"),
    LakeError: Status(503, "UNAVAILABLE"),
    LakeFullError: Status(503, "UNAVAILABLE"),
    MissingDependencyError: Status(500, "INTERNAL"),
    ServerError: Status(500, "INTERNAL"),
    ModelNotFound: Status(404, "NOT_FOUND"),
    ModelNotReady: Status(503, "UNAVAILABLE"),
    BadRequest: Status(400, "INVALID_ARGUMENT"),
    PayloadTooLarge: Status(413, "RESOURCE_EXHAUSTED"),
    Unauthorized: Status(401, "UNAUTHENTICATED"),
    UnsupportedMediaType: Status(415, "INVALID_ARGUMENT"),
    HostNotAllowed: Status(400, "INVALID_ARGUMENT"),
    LimitExceeded: Status(429, "RESOURCE_EXHAUSTED"),
    AddressInUse: Status(500, "UNAVAILABLE"),
    RequestTimeout: Status(504, "DEADLINE_EXCEEDED"),
    Overloaded: Status(503, "UNAVAILABLE"),
    CompositionError: Status(500, "INTERNAL"),
    DeclarationError: Status(500, "FAILED_PRECONDITION"),
    # A downstream that failed is a bad gateway; one that refused the input passes the 4xx on.
    DownstreamError: Status(502, "UNAVAILABLE"),
    DownstreamTimeout: Status(504, "DEADLINE_EXCEEDED"),
    DownstreamRejected: Status(400, "INVALID_ARGUMENT"),
}

_INTERNAL = Status(500, "INTERNAL")


def status_for(exc: BaseException | type[BaseException]) -> Status:
    """Return the (HTTP status, gRPC code name) of an exception or exception class."""
    cls = exc if isinstance(exc, type) else type(exc)
    for klass in cls.__mro__:
        found = STATUS.get(klass)
        if found is not None:
            return found
    return _INTERNAL
