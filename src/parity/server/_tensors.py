"""Open Inference Protocol tensors: decode request inputs, encode response outputs (JSON and binary).

One request tensor carries one raw input column: shape ``[N]`` or ``[N, 1]``, the column's
datatype exactly (``FP64`` column -> ``FP64`` tensor), data either as JSON (flat or nested lists;
BYTES as strings; ``null`` for a missing value in a nullable column) or, with Triton's binary
tensor data extension, as raw bytes after the JSON header (``parameters.binary_data_size``):
little-endian fixed-width values, and BYTES elements as a 4-byte little-endian length followed
by the UTF-8 bytes. Binary BYTES cannot say null: send the element
:data:`parity.schema.MISSING_STRING` (U+E000) for a missing value, or use JSON. The gRPC
``raw_input_contents`` use the same byte layout, so :func:`parity.codec.decode_raw` serves both
adapters (and the composition's gRPC client).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from parity.codec import OIP_DATATYPES, decode_raw, encode_raw
from parity.errors import SchemaError
from parity.schema import ColumnSpec, Signature
from parity.server._checks import echo
from parity.server._errors import BadRequest

__all__ = [
    "InferRequest",
    "check_tensor",
    "encode_outputs",
    "loads_json",
    "parse_infer_request",
]


@dataclass
class InferRequest:
    """A decoded OIP inference request."""

    id: str | None
    columns: dict[str, Any]
    outputs: list[tuple[str, bool]] = field(default_factory=list)
    """Requested outputs as (name, binary); empty means every output."""
    binary_output: bool = False
    """Default of ``binary_data`` for outputs not listed (``parameters.binary_data_output``)."""
    timeout_s: float | None = None
    """The client's deadline (``parameters.timeout``, microseconds as in Triton), in seconds."""


def _shape(name: str, shape: Any) -> int:
    """Row count of a tensor shape, which must be [N] or [N, 1]."""
    if type(shape) is list and len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0:
        return shape[0]  # the common case, checked cheaply
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(
            f"input {name!r}: shape must be a list of non-negative integers; received {shape!r}", column=name
        )
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return shape[0]
    raise SchemaError(f"input {name!r} must have shape [N] or [N, 1] (one column); received {shape}", column=name)


def check_tensor(
    name: str, datatype: Any, shape: Any, known: Mapping[str, ColumnSpec], seen: Collection[str], signature: Signature
) -> tuple[ColumnSpec, int]:
    """The column spec and row count of one input tensor header (name, datatype, shape): REST and gRPC."""
    if name in seen:
        raise BadRequest(f"input {name!r} is given twice", column=name)
    spec = known.get(name)
    if spec is None:
        raise SchemaError(f"unknown input {echo(name)}; the model takes {signature.input_names}", column=name)
    if not isinstance(datatype, str) or datatype not in OIP_DATATYPES:
        raise BadRequest(f"input {name!r}: unknown datatype {echo(str(datatype))}", column=name)
    if datatype != spec.datatype:
        raise SchemaError(f"input {name!r} expects datatype {spec.datatype}; received {datatype}", column=name)
    return spec, _shape(name, shape)


def _flatten(name: str, data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: data must be a list; received {type(data).__name__}", column=name)
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for row in data:
            if not isinstance(row, list):
                raise BadRequest(f"input {name!r}: data mixes nested lists and scalars", column=name)
            flat.extend(row)
        return flat
    return data


def _params(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"{where}: parameters must be an object")
    return params


def loads_json(data: bytes | memoryview) -> Any:
    """Parse JSON with orjson, accepting NaN/Infinity tokens too (json.dumps and tritonclient send them)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        value = json.loads(bytes(data))
        # json (unlike orjson) accepts lone UTF-16 surrogate escapes ("\udc80"): such strings
        # cannot be encoded as UTF-8 later (ONNX string tensors, response bodies), so refuse them here.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("malformed JSON in the request body: a string holds a lone UTF-16 surrogate escape") from None
    except (ValueError, RecursionError):
        raise BadRequest(f"malformed JSON in the request body: {error}") from None
    return value


def parse_infer_request(
    body: bytes, header_length: int | None, signature: Signature, *, reject_extra: bool = True
) -> InferRequest:
    """Decode an OIP REST inference request (JSON, or JSON header + binary tensors) into columns."""
    header: bytes | memoryview
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if not 0 < header_length <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes")
        view = memoryview(body)
        header, binary = view[:header_length], view[header_length:]
    req = loads_json(header)
    if not isinstance(req, dict):
        raise BadRequest(f"the request body must be a JSON object; received {type(req).__name__}")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("the request needs a non-empty 'inputs' list of tensors {name, datatype, shape, data}")
    known = {c.name: c for c in signature.inputs}
    columns: dict[str, Any] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise BadRequest(f"inputs[{i}] must be an object {{name, datatype, shape, data}}")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}] needs a string 'name'")
        if name not in known and not reject_extra:
            size = _params(tensor, f"input {name!r}").get("binary_data_size")
            offset += size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
            continue  # --extra-inputs ignore
        spec, rows = check_tensor(name, tensor.get("datatype"), tensor.get("shape"), known, columns, signature)
        datatype = spec.datatype
        size = _params(tensor, f"input {name!r}").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer", column=name)
            if offset + size > len(binary):
                raise BadRequest(
                    f"input {name!r}: binary_data_size {size} exceeds the {len(binary) - offset} binary bytes left",
                    column=name,
                )
            columns[name] = decode_raw(name, datatype, binary[offset : offset + size], rows)
            offset += size
        else:
            if "data" not in tensor:
                raise BadRequest(f"input {name!r} has neither 'data' nor parameters.binary_data_size", column=name)
            data = _flatten(name, tensor["data"])
            if len(data) != rows:
                raise SchemaError(
                    f"input {name!r}: shape {tensor['shape']} says {rows} values; data has {len(data)}", column=name
                )
            columns[name] = data
    if offset != len(binary):
        raise BadRequest(
            f"binary data: {len(binary)} bytes follow the JSON header, "
            f"but the inputs' binary_data_size add up to {offset}"
        )
    return _outputs(req, signature, InferRequest(_request_id(req), columns))


def timeout_parameter(value: Any) -> float | None:
    """Seconds of an OIP ``timeout`` parameter (int64 microseconds; absent or 0: no client deadline)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"parameters.timeout must be a non-negative integer of microseconds; got {value!r:.40}")
    return value / 1e6 if value else None


def _request_id(req: Mapping[str, Any]) -> str | None:
    rid = req.get("id")
    return rid if isinstance(rid, str) and rid else None


def _outputs(req: Mapping[str, Any], signature: Signature, out: InferRequest) -> InferRequest:
    params = _params(req, "request")
    out.binary_output = bool(params.get("binary_data_output", False))
    out.timeout_s = timeout_parameter(params.get("timeout"))
    wanted = req.get("outputs")
    if wanted is None:
        return out
    if not isinstance(wanted, list):
        raise BadRequest("'outputs' must be a list of {name, parameters}")
    names = set(signature.output_names)
    for i, tensor in enumerate(wanted):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest(f"outputs[{i}] must be an object with a string 'name'")
        name = tensor["name"]
        if name not in names:
            raise BadRequest(f"unknown output {name!r}; the model returns {signature.output_names}")
        binary = _params(tensor, f"output {name!r}").get("binary_data", out.binary_output)
        out.outputs.append((name, bool(binary)))
    return out


def encode_outputs(
    result_outputs: Mapping[str, np.ndarray],
    datatypes: Mapping[str, str],
    requested: Sequence[tuple[str, bool]],
    header: dict[str, Any],
) -> tuple[bytes, int | None]:
    """Serialise outputs into a response body; return it and the JSON header length if binary."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in requested:
        values = result_outputs[name]
        datatype = datatypes[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(values)]}
        if binary:
            raw = encode_raw(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = values.tolist()  # NaN -> null in orjson
        tensors.append(tensor)
    header["outputs"] = tensors
    js = orjson.dumps(header)
    if not blobs:
        return js, None
    return b"".join([js, *blobs]), len(js)
