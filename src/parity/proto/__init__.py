"""Generated Open Inference Protocol gRPC modules (scripts/gen_proto.sh); do not edit by hand.

They sit below the server so that gRPC clients in the core (the composition's downstream calls)
and the server share one set of message types; importing them loads grpc and protobuf only.
"""

__all__ = ["CONTENTS_FIELD"]

# The InferTensorContents field that carries each datatype parity signatures use (one table for
# the server's gRPC codec and the composition's gRPC client).
CONTENTS_FIELD: dict[str, str] = {
    "FP64": "fp64_contents",
    "FP32": "fp32_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "BOOL": "bool_contents",
    "BYTES": "bytes_contents",
}
