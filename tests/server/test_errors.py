"""The single error table: every parity error class has HTTP and gRPC codes."""

from __future__ import annotations

import inspect

import pytest

import parity.errors
from parity.server import _errors
from parity.server._errors import STATUS, ModelNotFound, Status, status_for

GRPC_CODES = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}  # fmt: skip


def _classes(module: object) -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, parity.errors.ParityError) and obj.__module__ == module.__name__  # type: ignore[attr-defined]
    ]


@pytest.mark.parametrize("cls", _classes(parity.errors) + _classes(_errors), ids=lambda c: c.__name__)
def test_every_error_class_has_its_own_row(cls: type[BaseException]) -> None:
    assert cls in STATUS, f"{cls.__name__} has no row in parity.server._errors.STATUS"
    status = STATUS[cls]
    assert 400 <= status.http <= 599
    assert status.grpc in GRPC_CODES


def test_status_for_walks_the_mro() -> None:
    class Custom(ModelNotFound):
        pass

    assert status_for(Custom("x")) == Status(404, "NOT_FOUND")
    assert status_for(parity.errors.SchemaError("bad")) == Status(400, "INVALID_ARGUMENT")
    assert status_for(RuntimeError("boom")) == Status(500, "INTERNAL")
    assert status_for(_errors.PayloadTooLarge) == Status(413, "RESOURCE_EXHAUSTED")
