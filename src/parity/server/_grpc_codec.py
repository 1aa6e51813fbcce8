"""Open Inference Protocol gRPC tensors: ``ModelInferRequest`` -> columns, outputs -> ``ModelInferResponse``.

An input tensor is one raw column: shape ``[N]`` or ``[N, 1]``, the column's datatype exactly, data
either typed (``InferTensorContents``: ``fp64_contents`` for FP64, ``fp32_contents`` for FP32,
``int64_contents`` for INT64, ``int_contents`` for INT32, ``bool_contents`` for BOOL,
``bytes_contents`` (UTF-8) for BYTES) or raw (``raw_input_contents``, one entry per input in the
order of ``inputs``: little-endian values; BYTES as a 4-byte little-endian length + the bytes per
element, as in :func:`parity.codec.decode_raw`). gRPC has no null: an FP64 NaN is a
missing number, and a missing string travels as :data:`parity.schema.MISSING_STRING`.

A request with raw inputs is answered with ``raw_output_contents`` (tritonclient sends and reads
only raw); a typed request gets typed outputs. Every output tensor has shape ``[N]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.codec import WIRE_DTYPES, decode_raw, encode_raw
from parity.errors import SchemaError
from parity.proto import CONTENTS_FIELD
from parity.schema import Signature
from parity.server._errors import BadRequest
from parity.server._tensors import check_tensor
from parity.server.proto import open_inference_grpc_pb2 as pb

__all__ = ["CONTENTS_FIELD", "DecodedInfer", "decode_infer_request", "encode_infer_response"]

_LIST_MAX_ROWS = 64
"""Typed numeric tensors shorter than this are handed to the codec as lists (measured faster), longer as arrays."""


@dataclass
class DecodedInfer:
    """Columns of one request, whether it was raw, and the outputs to answer with (in order)."""

    columns: dict[str, Any]
    raw: bool
    outputs: list[str]


def _typed(name: str, datatype: str, contents: Any, rows: int) -> Any:
    """Values of one tensor from its typed contents, checking the field and the count."""
    field = CONTENTS_FIELD[datatype]
    values: Any = ()
    # ListFields names only the non-empty repeated fields: one C call instead of a getattr per field.
    for descriptor, listed in contents.ListFields():
        if descriptor.name != field:
            raise BadRequest(
                f"input {name!r} is {datatype}, so its values go in contents.{field}; "
                f"received contents.{descriptor.name}",
                column=name,
            )
        values = listed
    if len(values) != rows:
        raise SchemaError(
            f"input {name!r}: shape says {rows} values; contents.{field} holds {len(values)}", column=name
        )
    if datatype == "BYTES":
        out: list[str] = []
        for i, b in enumerate(values):
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"input {name!r}: bytes_contents[{i}] is not valid UTF-8", column=name) from None
        return out
    if rows < _LIST_MAX_ROWS:
        return list(values)  # the codec checks and converts a short list faster than a short array
    return np.array(values, dtype=WIRE_DTYPES[datatype])


def _raw(name: str, datatype: str, raw: bytes, rows: int, index: int) -> Any:
    """Values of one tensor from its raw bytes, with the size checked in gRPC terms."""
    dtype = WIRE_DTYPES.get(datatype)
    if dtype is not None and len(raw) != rows * dtype.itemsize:
        raise BadRequest(
            f"input {name!r}: raw_input_contents[{index}] has {len(raw)} bytes but {rows} {datatype} values "
            f"need {rows * dtype.itemsize}",
            column=name,
        )
    return decode_raw(name, datatype, raw, rows)


def decode_infer_request(
    request: pb.ModelInferRequest, signature: Signature, *, reject_extra: bool = True
) -> DecodedInfer:
    """Decode the inputs of a ``ModelInferRequest`` into columns (input name -> values)."""
    if not request.inputs:
        raise BadRequest("the request has no inputs; send one tensor per input column")
    raw_contents = request.raw_input_contents
    raw = len(raw_contents) > 0
    if raw and len(raw_contents) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw_contents)} entries for {len(request.inputs)} inputs; "
            "send one per input, in the order of inputs"
        )
    known = {c.name: c for c in signature.inputs}
    columns: dict[str, Any] = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if name not in known and not reject_extra:
            continue  # --extra-inputs ignore
        spec, rows = check_tensor(name, tensor.datatype, list(tensor.shape), known, columns, signature)
        has_contents = tensor.HasField("contents")
        if raw:
            if has_contents:
                raise BadRequest(
                    f"input {name!r} has typed contents in a request that uses raw_input_contents; use one form"
                )
            columns[name] = _raw(name, spec.datatype, raw_contents[i], rows, i)
        elif has_contents:
            columns[name] = _typed(name, spec.datatype, tensor.contents, rows)
        else:
            raise BadRequest(f"input {name!r} has neither contents nor raw_input_contents", column=name)
    return DecodedInfer(columns, raw, _requested(request, signature))


def _requested(request: pb.ModelInferRequest, signature: Signature) -> list[str]:
    """Names of the outputs to return: the requested ones in request order, else all of them."""
    if not request.outputs:
        return signature.output_names
    names = set(signature.output_names)
    out: list[str] = []
    for tensor in request.outputs:
        if tensor.name not in names:
            raise BadRequest(f"unknown output {tensor.name!r}; the model returns {signature.output_names}")
        if tensor.name not in out:
            out.append(tensor.name)
    return out


def _fill_contents(contents: Any, values: np.ndarray, datatype: str) -> None:
    field = getattr(contents, CONTENTS_FIELD[datatype])
    if datatype == "BYTES":
        field.extend(v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values.tolist())
    else:
        field.extend(values.tolist())


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Mapping[str, np.ndarray],
    datatypes: Mapping[str, str],
    decoded: DecodedInfer,
) -> pb.ModelInferResponse:
    """Build the ``ModelInferResponse`` of the requested outputs (raw if the request was raw)."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id)
    for name in decoded.outputs:
        values = outputs[name]
        datatype = datatypes[name]
        tensor = response.outputs.add(name=name, datatype=datatype, shape=[len(values)])
        if decoded.raw:
            response.raw_output_contents.append(encode_raw(values, datatype))
        else:
            _fill_contents(tensor.contents, values, datatype)
    return response
