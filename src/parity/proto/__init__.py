"""Generated Open Inference Protocol gRPC modules (scripts/gen_proto.sh); do not edit by hand.

They sit below the server so that gRPC clients in the core (the composition's downstream calls)
and the server share one set of message types; importing them loads grpc and protobuf only.
"""
