"""gRPC adapter: the real server process answering tritonclient.grpc, our generated stubs, health and reflection."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.utils import InferenceServerException

from parity.lake import read_lake
from parity.schema import MISSING_STRING, Signature
from parity.server._grpc_codec import decode_infer_request
from parity.server.proto import open_inference_grpc_pb2 as pb
from parity.server.proto import open_inference_grpc_pb2_grpc as pb_grpc
from tests._servers import ServerProcess, make_certificate
from tests.server.conftest import ModelEnv

TOKEN = "s3cret"
MAX_REQUEST_BYTES = 256 * 1024
COLUMNS = (("age", "FP64"), ("income", "FP64"), ("plan", "BYTES"))


class GrpcServer(ServerProcess):
    """The shared server launcher with gRPC on, ready when the gRPC health service says SERVING."""

    def __init__(self, ref: Path, log_path: Path, *extra: str, tls: tuple[Path, Path] | None = None) -> None:
        args = [str(ref), "--lake", "none", "--reload-interval", "0", *extra]
        if tls is not None:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.tls = tls
        super().__init__(args, log_path, grpc=True)

    @property
    def address(self) -> str:
        """host:port of the gRPC server (the port changes if a bind conflict forced a restart)."""
        return f"127.0.0.1:{self.grpc_port}"

    def channel(self) -> grpc.Channel:
        """A channel to the gRPC port (TLS-verified against the test certificate when TLS is on)."""
        if self.tls is None:
            return grpc.insecure_channel(self.address)
        creds = grpc.ssl_channel_credentials(root_certificates=self.tls[0].read_bytes())
        return grpc.secure_channel(self.address, creds, options=[("grpc.ssl_target_name_override", "localhost")])

    def probe(self) -> bool:
        """Ready when the gRPC health service says SERVING."""
        with self.channel() as ch:
            try:
                status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1).status
            except grpc.RpcError:
                return False
        return bool(status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> int:
        """SIGTERM, wait, return the exit code."""
        return self.terminate()


@pytest.fixture(scope="module")
def server(model_env: ModelEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """The shared plain server: the churn artifact directory (version "0"), a 256 KiB request limit."""
    root = tmp_path_factory.mktemp("grpc")
    proc = GrpcServer(model_env.artifact_dir, root / "server.log", "--max-request-bytes", str(MAX_REQUEST_BYTES))
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def secure_server(model_env: ModelEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """A server requiring a bearer token, over TLS when openssl is there to make a certificate."""
    root = tmp_path_factory.mktemp("grpc-secure")
    tls = None
    if shutil.which("openssl"):  # without it the token is still tested, over plain gRPC
        tls = make_certificate(root)
    proc = GrpcServer(model_env.artifact_dir, root / "server.log", "--token", TOKEN, tls=tls)
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0, proc.log()


@pytest.fixture
def stub(server: GrpcServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with server.channel() as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


@pytest.fixture
def tclient(server: GrpcServer) -> Iterator[Any]:
    c = tgrpc.InferenceServerClient(server.address)
    yield c
    c.close()


def sample_rows(env: ModelEnv) -> pd.DataFrame:
    """Rows with missing ages, missing plans and a plan never seen in training."""
    f = env.frame
    rows = pd.concat([f[f["age"].isna()].head(3), f[f["plan"].isna()].head(3), f.head(10)])
    rows = rows.reset_index(drop=True)
    rows.loc[len(rows) - 1, "plan"] = "ultra"
    return rows


def column(rows: pd.DataFrame, name: str) -> np.ndarray:
    """One input column as gRPC carries it: FP64 with NaN, BYTES with MISSING_STRING for a missing value."""
    if name == "plan":
        return np.array([MISSING_STRING if pd.isna(v) else v for v in rows[name]], dtype=object)
    return rows[name].to_numpy(dtype=np.float64)


def typed_request(rows: pd.DataFrame, skip: str = "", **datatypes: str) -> pb.ModelInferRequest:
    """A ModelInferRequest with typed contents (``datatypes`` overrides a tensor's declared datatype)."""
    req = pb.ModelInferRequest(model_name="churn", id="req-1")
    for name, datatype in COLUMNS:
        if name == skip:
            continue
        t = req.inputs.add(name=name, datatype=datatypes.get(name, datatype), shape=[len(rows)])
        values = column(rows, name)
        if datatype == "BYTES":
            t.contents.bytes_contents.extend(v.encode() for v in values)
        else:
            t.contents.fp64_contents.extend(values.tolist())
    return req


def raw_request(rows: pd.DataFrame) -> pb.ModelInferRequest:
    """A ModelInferRequest with raw_input_contents (what tritonclient sends)."""
    req = pb.ModelInferRequest(model_name="churn")
    for name, datatype in COLUMNS:
        req.inputs.add(name=name, datatype=datatype, shape=[len(rows)])
        values = column(rows, name)
        if datatype == "BYTES":
            req.raw_input_contents.append(b"".join(struct.pack("<I", len(b)) + b for b in (v.encode() for v in values)))
        else:
            req.raw_input_contents.append(values.astype("<f8").tobytes())
    return req


def assert_outputs(labels: Any, probs: Any, want: pd.DataFrame) -> None:
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == want["label"].tolist()
    np.testing.assert_allclose(np.asarray(probs, dtype=float), want["probability"].to_numpy(), rtol=1e-9, atol=1e-12)


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------- tritonclient.grpc


def test_tritonclient_health_and_metadata(tclient: Any, model_env: ModelEnv) -> None:
    assert tclient.is_server_live() and tclient.is_server_ready()
    assert tclient.is_model_ready("churn") and tclient.is_model_ready("churn", "0")
    meta = tclient.get_server_metadata(as_json=True)
    assert meta["name"] == "parity" and "binary_tensor_data" in meta["extensions"]
    model = tclient.get_model_metadata("churn", as_json=True)
    assert model["name"] == "churn" and model["versions"] == ["0"] and model["platform"] == "parity-onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in model["inputs"]] == [
        ("age", "FP64", ["-1"]),
        ("income", "FP64", ["-1"]),
        ("plan", "BYTES", ["-1"]),
    ]
    assert [(t["name"], t["datatype"]) for t in model["outputs"]] == [("label", "BYTES"), ("probability", "FP64")]
    with pytest.raises(InferenceServerException, match="unknown model"):
        tclient.is_model_ready("nope")


def test_tritonclient_infer_equals_artifact_predict(tclient: Any, model_env: ModelEnv) -> None:
    rows = sample_rows(model_env)
    inputs = []
    for name, datatype in COLUMNS:
        t = tgrpc.InferInput(name, [len(rows)], datatype)
        t.set_data_from_numpy(column(rows, name))
        inputs.append(t)
    result = tclient.infer("churn", inputs, request_id="abc")
    response = result.get_response()
    assert response.id == "abc" and response.model_name == "churn" and response.model_version == "0"
    assert len(response.raw_output_contents) == 2  # raw in, raw out
    assert [list(o.shape) for o in response.outputs] == [[len(rows)], [len(rows)]]
    assert_outputs(result.as_numpy("label"), result.as_numpy("probability"), model_env.artifact.predict(rows))

    only = tclient.infer("churn", inputs, outputs=[tgrpc.InferRequestedOutput("probability")])
    assert [o.name for o in only.get_response().outputs] == ["probability"]
    assert only.as_numpy("label") is None


# ---------------------------------------------------------------------------------------- generated stubs


def test_typed_contents_get_typed_outputs(stub: Any, model_env: ModelEnv) -> None:
    rows = sample_rows(model_env)
    for version in ("", "0"):
        req = typed_request(rows)
        req.model_version = version
        resp = stub.ModelInfer(req)
        assert resp.id == "req-1" and resp.model_version == "0" and not resp.raw_output_contents
        label, prob = resp.outputs
        assert (label.name, label.datatype, list(label.shape)) == ("label", "BYTES", [len(rows)])
        assert (prob.name, prob.datatype, list(prob.shape)) == ("probability", "FP64", [len(rows)])
        assert_outputs(label.contents.bytes_contents, prob.contents.fp64_contents, model_env.artifact.predict(rows))


def test_long_typed_tensors_get_the_same_answers(stub: Any, model_env: ModelEnv) -> None:
    # Short numeric tensors reach the codec as lists, long ones (>= 64 rows) as arrays: same answers.
    rows = pd.concat([sample_rows(model_env), model_env.frame.head(150)]).reset_index(drop=True)
    assert rows["age"].isna().any()
    label, prob = stub.ModelInfer(typed_request(rows)).outputs
    assert len(prob.contents.fp64_contents) == len(rows) >= 64
    assert_outputs(label.contents.bytes_contents, prob.contents.fp64_contents, model_env.artifact.predict(rows))


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux-only")
def test_pool_threads_run_as_sched_batch_and_the_loop_does_not(stub: Any, server: GrpcServer) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live  # at least one pool thread exists now
    pid = server.proc.pid
    policies = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread may end meanwhile
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            policies[int(tid)] = int(stat[stat.rindex(")") + 2 :].split()[38])  # field 41: policy
    assert policies[pid] == os.SCHED_OTHER  # the event loop keeps its wake-up preemption
    assert os.SCHED_BATCH in policies.values()


def test_raw_contents_with_column_shape_get_raw_outputs(stub: Any, model_env: ModelEnv) -> None:
    rows = sample_rows(model_env)
    req = raw_request(rows)
    for t in req.inputs:
        t.shape[:] = [len(rows), 1]  # [N, 1] is one column too
    resp = stub.ModelInfer(req)
    assert not resp.outputs[0].HasField("contents") and len(resp.raw_output_contents) == 2
    labels, pos = [], 0
    raw_labels = resp.raw_output_contents[0]
    while pos < len(raw_labels):
        (n,) = struct.unpack_from("<I", raw_labels, pos)
        labels.append(raw_labels[pos + 4 : pos + 4 + n])
        pos += 4 + n
    probs = np.frombuffer(resp.raw_output_contents[1], dtype="<f8")
    assert_outputs(labels, probs, model_env.artifact.predict(rows))


def test_server_rpcs_on_generated_stub(stub: Any) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="churn")).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name == "parity"
    assert stub.ModelMetadata(pb.ModelMetadataRequest(name="churn", version="0")).versions == ["0"]
    err = rpc_error(stub.ModelMetadata, pb.ModelMetadataRequest(name="churn", version="7"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def _mutate(rows: pd.DataFrame, case: str) -> pb.ModelInferRequest:
    """A bad request for each error case."""
    if case == "missing_input":
        return typed_request(rows, skip="income")
    if case == "wrong_datatype":
        return typed_request(rows, age="FP32")
    if case == "unknown_model":
        req = typed_request(rows)
        req.model_name = "nope"
        return req
    if case == "unknown_version":
        req = typed_request(rows)
        req.model_version = "9"
        return req
    req = typed_request(rows)
    if case == "extra_input":
        req.inputs.add(name="zip", datatype="BYTES", shape=[len(rows)]).contents.bytes_contents.extend(
            [b"x"] * len(rows)
        )
    elif case == "wrong_shape":
        req.inputs[1].shape[:] = [len(rows) // 2, 2]
    elif case == "count_mismatch":
        req.inputs[1].contents.fp64_contents.append(1.0)
    elif case == "wrong_contents_field":
        values = list(req.inputs[0].contents.fp64_contents)
        req.inputs[0].contents.ClearField("fp64_contents")
        req.inputs[0].contents.fp32_contents.extend(values)
    elif case == "null_in_non_nullable":
        req.inputs[1].contents.fp64_contents[0] = float("nan")
    elif case == "unknown_output":
        req.outputs.add(name="score")
    elif case == "raw_size_mismatch":
        req = raw_request(rows)
        req.raw_input_contents[1] = req.raw_input_contents[1][:-3]
    elif case == "raw_bytes_truncated":
        req = raw_request(rows)
        req.raw_input_contents[2] = req.raw_input_contents[2][:-1]
    elif case == "raw_and_typed":
        req.raw_input_contents.extend([b"", b"", b""])
    return req


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("unknown_model", "NOT_FOUND", "unknown model 'nope'"),
        ("unknown_version", "NOT_FOUND", "no version '9'"),
        ("missing_input", "INVALID_ARGUMENT", "'income'"),
        ("extra_input", "INVALID_ARGUMENT", "'zip'"),
        ("wrong_datatype", "INVALID_ARGUMENT", "input 'age' expects datatype FP64; received FP32"),
        ("wrong_shape", "INVALID_ARGUMENT", "'income'"),
        ("count_mismatch", "INVALID_ARGUMENT", "'income'"),
        ("wrong_contents_field", "INVALID_ARGUMENT", "contents.fp64_contents"),
        ("null_in_non_nullable", "INVALID_ARGUMENT", "'income' is not nullable"),
        ("unknown_output", "INVALID_ARGUMENT", "unknown output 'score'"),
        ("raw_size_mismatch", "INVALID_ARGUMENT", "input 'income': raw_input_contents[1] has"),
        ("raw_bytes_truncated", "INVALID_ARGUMENT", "input 'plan'"),
        ("raw_and_typed", "INVALID_ARGUMENT", "use one form"),
    ],
)
def test_errors(stub: Any, model_env: ModelEnv, case: str, code: str, needle: str) -> None:
    err = rpc_error(stub.ModelInfer, _mutate(sample_rows(model_env), case))
    assert err.code() == grpc.StatusCode[code], err.details()
    assert needle in err.details()


def test_tritonclient_wrong_datatype_names_the_input(tclient: Any) -> None:
    t = tgrpc.InferInput("age", [1], "FP32")
    t.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="input 'age' expects datatype FP64") as info:
        tclient.infer("churn", [t])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_message_over_the_limit_is_resource_exhausted(stub: Any) -> None:
    n = MAX_REQUEST_BYTES // 8 + 1
    req = pb.ModelInferRequest(model_name="churn")
    for name in ("age", "income"):
        req.inputs.add(name=name, datatype="FP64", shape=[n])
        req.raw_input_contents.append(np.zeros(n).tobytes())
    err = rpc_error(stub.ModelInfer, req)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# ---------------------------------------------------------------------------------------- health, reflection


def test_health_checking(server: GrpcServer) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    with server.channel() as ch:
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest()).status == serving
        assert health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")).status == serving
        err = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="nope"))
        assert err.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert next(watch).status == serving
        watch.cancel()


def test_reflection_lists_and_describes_the_service(server: GrpcServer) -> None:
    with server.channel() as ch:
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ]
        listed, described = list(refl.ServerReflectionInfo(iter(requests), timeout=5))
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    assert described.file_descriptor_response.file_descriptor_proto  # serialized open_inference_grpc.proto


# ---------------------------------------------------------------------------------------- token and TLS


def test_token_required_except_for_health(secure_server: GrpcServer, model_env: ModelEnv) -> None:
    good = (("authorization", f"Bearer {TOKEN}"),)
    with secure_server.channel() as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", f"Basic {TOKEN}"),)):
            err = rpc_error(stub.ServerLive, pb.ServerLiveRequest(), metadata=metadata)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "bearer token" in err.details()
            err = rpc_error(stub.ModelInfer, typed_request(sample_rows(model_env)), metadata=metadata)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.ServerLive(pb.ServerLiveRequest(), metadata=good).live
        rows = sample_rows(model_env)
        label, prob = stub.ModelInfer(typed_request(rows), metadata=good).outputs
        assert_outputs(label.contents.bytes_contents, prob.contents.fp64_contents, model_env.artifact.predict(rows))
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_tls_rejects_plaintext(secure_server: GrpcServer) -> None:
    if secure_server.tls is None:
        pytest.skip("openssl not available to make a test certificate")
    with grpc.insecure_channel(secure_server.address) as ch:
        err = rpc_error(pb_grpc.GRPCInferenceServiceStub(ch).ServerLive, pb.ServerLiveRequest(), timeout=5)
    assert err.code() == grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------------------------------- in-process units


def test_generated_messages_coexist_with_tritonclient() -> None:
    from tritonclient.grpc import service_pb2

    # Both define inference.* messages: ours live in a private pool so either import order works.
    assert pb.DESCRIPTOR.pool is not descriptor_pool.Default()
    req = typed_request(pd.DataFrame({"age": [1.0], "income": [2.0], "plan": ["pro"]}))
    assert service_pb2.ModelInferRequest.FromString(req.SerializeToString()).inputs[2].contents.bytes_contents == [
        b"pro"
    ]


def test_decode_keeps_missing_values(model_env: ModelEnv) -> None:
    rows = sample_rows(model_env)
    sig: Signature = model_env.artifact.signature
    for req in (typed_request(rows), raw_request(rows)):
        decoded = decode_infer_request(req, sig)
        assert decoded.raw == bool(req.raw_input_contents) and decoded.outputs == ["label", "probability"]
        np.testing.assert_array_equal(decoded.columns["age"], rows["age"].to_numpy())  # NaN stays NaN
        assert list(decoded.columns["plan"]) == list(column(rows, "plan"))
        assert MISSING_STRING in list(decoded.columns["plan"])


# ---------------------------------------------------------------------------------------- hostile clients


def _peak_rss_kb(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_a_megabyte_id_is_capped_everywhere(model_env: ModelEnv, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    args = ["--max-request-bytes", str(4 * 1024 * 1024), "--lake", str(lake)]
    server = GrpcServer(model_env.artifact_dir, tmp_path / "server.log", *args)
    try:
        server.wait_ready()
        rows = model_env.frame.head(300)
        with server.channel() as ch:
            stub = pb_grpc.GRPCInferenceServiceStub(ch)
            stub.ModelInfer(raw_request(rows), timeout=10)  # warm up before the baseline
            before = _peak_rss_kb(server.proc.pid)
            for i in range(4):
                req = raw_request(rows)
                req.id = str(i) * 1_000_000
                response, call = stub.ModelInfer.with_call(req, timeout=10)
                assert response.id == str(i) * 128
                assert dict(call.trailing_metadata())["x-request-id"] == str(i) * 128
            # An id in metadata (grpc itself refuses metadata above 8-16 KiB) is cut the same way.
            response, call = stub.ModelInfer.with_call(
                raw_request(rows.head(1)), metadata=(("x-request-id", "m" * 5_000),), timeout=10
            )
            assert dict(call.trailing_metadata())["x-request-id"] == "m" * 128
            time.sleep(2.5)  # one lake flush (every 2 s) of the rows above
            grown = _peak_rss_kb(server.proc.pid) - before
    finally:
        assert server.stop() == 0, server.log()  # flushes the lake
    ids = read_lake(lake)["request_id"].to_pylist()
    assert len(ids) == 5 * 300 + 1 and max(map(len, ids)) <= 128
    # main kept every 1 MB id and the lake expanded it per row (300 MB per request).
    assert grown < 40 * 1024, f"peak RSS grew by {grown} KiB"


def test_a_huge_model_name_is_not_echoed(stub: Any) -> None:
    req = typed_request(pd.DataFrame({"age": [1.0], "income": [2.0], "plan": ["pro"]}))
    req.model_name = "m" * 100_000
    err = rpc_error(stub.ModelInfer, req)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert len(err.details()) < 1000
    err = rpc_error(stub.ModelMetadata, pb.ModelMetadataRequest(name="m" * 100_000))
    assert len(err.details()) < 1000


def test_health_watch_is_bounded_per_peer_and_spares_the_rpc_limit(model_env: ModelEnv, tmp_path: Path) -> None:
    from parity.server import _grpc

    per_peer = getattr(_grpc, "MAX_WATCHES_PER_PEER", 4)
    server = GrpcServer(model_env.artifact_dir, tmp_path / "server.log", "--limit-concurrency", "2")
    try:
        server.wait_ready()
        with server.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=20) for _ in range(per_peer)]
            for w in watches:
                assert next(w).status == health_pb2.HealthCheckResponse.SERVING
            extra = health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
            with pytest.raises(grpc.RpcError) as info:
                next(extra)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Four open streams, a limit of 2: the inference service still answers (main: RESOURCE_EXHAUSTED).
            stub = pb_grpc.GRPCInferenceServiceStub(ch)
            assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
            rows = model_env.frame.head(3)
            assert len(stub.ModelInfer(raw_request(rows), timeout=5).outputs) == 2
            for w in watches:
                w.cancel()
    finally:
        assert server.stop() == 0, server.log()
