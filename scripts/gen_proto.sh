#!/usr/bin/env bash
# Regenerate the Python modules of the Open Inference Protocol gRPC service
# (src/parity/proto/open_inference_grpc.proto -> *_pb2.py, *_pb2.pyi, *_pb2_grpc.py).
#
# The generated files are committed. They are made with grpcio-tools 1.62.x (protoc 25), whose
# output has no runtime version check, so they import under every protobuf parity supports
# (>=4.25,<7) and every grpcio >=1.62; newer grpcio-tools would pin protobuf/grpcio to at least
# their own versions. The tool runs in its own throwaway venv so the project venv keeps its
# newer protobuf. Override the interpreter with PROTOC_PYTHON=/path/to/python (it must have
# grpcio-tools==1.62.*).
#
# Two edits follow generation:
#   * the descriptors go into a private DescriptorPool (module attribute POOL), not the default
#     one: tritonclient.grpc registers the same `inference.*` message names from its own file,
#     and two files defining one symbol in the default pool make the second import fail;
#   * the pb2_grpc module imports its pb2 package-relatively.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$here/src/parity/proto"
name="open_inference_grpc"
tools_version="1.62.3"

if [[ -z "${PROTOC_PYTHON:-}" ]]; then
  venv="${TMPDIR:-/tmp}/parity-protogen-$tools_version"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "grpcio-tools==$tools_version"
  fi
  PROTOC_PYTHON="$venv/bin/python"
fi

"$PROTOC_PYTHON" -c "
import grpc_tools, importlib.metadata as m, sys
v = m.version('grpcio-tools')
sys.exit(0 if v.startswith('1.62.') else f'grpcio-tools {v} found; need 1.62.x (see scripts/gen_proto.sh)')
"

"$PROTOC_PYTHON" -m grpc_tools.protoc -I "$out" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "$out/$name.proto"

# Private descriptor pool (see above).
sed -i \
  -e 's/^DESCRIPTOR = _descriptor_pool\.Default()\.AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' \
  "$out/${name}_pb2.py"
grep -q '^POOL = _descriptor_pool.DescriptorPool()$' "$out/${name}_pb2.py" || { echo "pool edit failed" >&2; exit 1; }

# Package-relative import of the messages.
sed -i -e "s/^import ${name}_pb2 as /from . import ${name}_pb2 as /" "$out/${name}_pb2_grpc.py"
grep -q "^from \. import ${name}_pb2 as " "$out/${name}_pb2_grpc.py" || { echo "import edit failed" >&2; exit 1; }

# Guard the compatibility promise above.
if grep -q -e 'ValidateProtobufRuntimeVersion' -e 'GRPC_GENERATED_VERSION' "$out/${name}_pb2.py" "$out/${name}_pb2_grpc.py"; then
  echo "generated code pins a protobuf/grpcio runtime version; use grpcio-tools $tools_version" >&2
  exit 1
fi
echo "generated $out/${name}_pb2.py, ${name}_pb2.pyi, ${name}_pb2_grpc.py"
