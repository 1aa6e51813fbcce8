"""Errors of the deployment generators (part of the :mod:`parity.errors` tree)."""

from __future__ import annotations

from parity.errors import ParityError

__all__ = ["DeployError", "InvalidOptionError"]


class DeployError(ParityError):
    """A build context, lock, manifest set or environment check could not be produced."""


class InvalidOptionError(DeployError, ValueError):
    """A deployment option is invalid; nothing was written. ``param`` names its parameter (e.g. ``min_replicas``)."""

    param: str

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message, param=param)
