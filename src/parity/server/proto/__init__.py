"""Generated Open Inference Protocol gRPC modules (scripts/gen_proto.sh); do not edit by hand."""
