"""The Open Inference Protocol gRPC modules, re-exported from :mod:`parity.proto` (their one home)."""

from parity.proto import open_inference_grpc_pb2, open_inference_grpc_pb2_grpc

__all__ = ["open_inference_grpc_pb2", "open_inference_grpc_pb2_grpc"]
