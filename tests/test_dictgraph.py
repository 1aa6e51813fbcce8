"""Dictionary-encoded text: the graph's row-wise text steps run once per distinct value, outputs bit-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pytest
from onnx import TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import parity
from parity._dictgraph import dictionary_model
from parity.artifact import ONNX_FILE
from parity.codec import encode_arrow
from parity.runtime import OnnxRuntime
from parity.schema import ColumnSpec, OutputSpec, Signature
from tests.fixtures import HOUSE_NUMERIC, HOUSE_TEXT, house, pipeline, raw_frame, targets


def _house_model(encoder: Any, estimator: Any) -> Pipeline:
    text = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="none")), ("encode", encoder)])
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    pre = ColumnTransformer([("num", numeric, HOUSE_NUMERIC), ("txt", text, HOUSE_TEXT)])
    return Pipeline([("pre", pre), ("model", estimator)])


def _churn(encoder: str) -> tuple[Any, pd.DataFrame]:
    df = raw_frame(500, seed=3)
    model = pipeline(GradientBoostingClassifier(n_estimators=15, max_depth=3), encoder)
    return model.fit(df, targets(df, "binary")), df


def _house(encoder: Any, estimator: Any, target: int) -> tuple[Any, pd.DataFrame]:
    df, *ys = house(400, seed=5)
    return _house_model(encoder, estimator).fit(df, ys[target]), df


CASES = {
    "one-hot trees": lambda: _churn("onehot"),
    "ordinal trees": lambda: _churn("ordinal"),
    "one-hot drop first, linear": lambda: _house(
        OneHotEncoder(drop="first", handle_unknown="ignore"), LinearRegression(), 0
    ),
    "infrequent one-hot, logistic": lambda: _house(
        OneHotEncoder(min_frequency=15, handle_unknown="infrequent_if_exist"), LogisticRegression(max_iter=500), 1
    ),
    "ordinal, histogram boosting": lambda: _house(
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), HistGradientBoostingRegressor(), 0
    ),
}


def _serving_rows(train: pd.DataFrame, n: int = 3000) -> pd.DataFrame:
    """Rows as they arrive: resampled training rows, then unseen categories and nulls in every text column."""
    df = train.sample(n, replace=True, random_state=0).reset_index(drop=True)
    for j, col in enumerate(c for c in df.columns if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)):
        df.loc[df.index[j::17], col] = f"unseen-{j}"
        df.loc[df.index[j + 5 :: 23], col] = None
    return df


@pytest.mark.parametrize("case", list(CASES))
def test_dictionary_path_is_bit_identical_and_moves_the_text_steps(case: str) -> None:
    fitted, train = CASES[case]()
    artifact = parity.package(fitted, train, name="m")
    assert artifact.portable, case
    table = pa.Table.from_pandas(_serving_rows(train), preserve_index=False)
    encoded = encode_arrow(artifact.signature, table)
    text = [c.name for c in artifact.signature.inputs if c.datatype == "BYTES"]
    assert sorted(encoded.dictionaries) == sorted(text)
    runtime = OnnxRuntime(artifact.file_bytes(ONNX_FILE), artifact.signature, threads=1)
    via_dictionary = runtime.predict(encoded)
    per_row = runtime.predict(dict(encoded))  # a plain mapping carries no dictionaries
    for name in artifact.signature.output_names:
        np.testing.assert_array_equal(via_dictionary[name], per_row[name], err_msg=f"{case}: {name}")
    # The string lookups now read the distinct values, and rows are gathered once per text column.
    model = onnx.load_from_string(dictionary_model(artifact.file_bytes(ONNX_FILE), text)[0])
    encoders = [n for n in model.graph.node if n.op_type == "LabelEncoder"]
    assert encoders and all(n.output[0].endswith("__dict") for n in encoders), case
    gathers = [n for n in model.graph.node if n.name.endswith("__gather")]
    assert len(gathers) >= len(text) and all("__dict" in n.input[0] for n in gathers)


def test_artifact_counts_unseen_categories_the_same_from_dictionaries(tmp_path: Path) -> None:
    fitted, train = _churn("onehot")
    rows = _serving_rows(train)
    by_frame = parity.package(fitted, train, name="m")
    by_arrow = parity.load(by_frame.save(tmp_path / "m"))
    expected = by_frame.predict(rows)
    got = by_arrow.predict_columns(encode_arrow(by_arrow.signature, pa.Table.from_pandas(rows, preserve_index=False)))
    for name in by_frame.signature.output_names:
        np.testing.assert_array_equal(got[name], expected[name].to_numpy())
    assert by_arrow.unseen_counts == by_frame.unseen_counts and sum(by_frame.unseen_counts.values()) > 0


def _text_graph(nodes: list[onnx.NodeProto], consts: list[onnx.TensorProto], out_type: int) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("y", out_type, None)],
        consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def _run(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(["y"], feeds)[0]


@pytest.mark.parametrize(
    ("nodes", "consts", "out_type", "moved"),
    [
        # Equal against a per-row constant ([3], the row axis itself) compares row i with entry i: not row-wise.
        ([helper.make_node("Equal", ["s", "c"], ["y"])],
         [helper.make_tensor("c", TensorProto.STRING, [3], [b"a", b"b", b"a"])], TensorProto.BOOL, False),
        # Against a [1] constant it is: row i is compared with the one value.
        ([helper.make_node("Equal", ["s", "c"], ["y"])],
         [helper.make_tensor("c", TensorProto.STRING, [1], [b"a"])], TensorProto.BOOL, True),
        # Unsqueeze on axis 0 adds a leading axis: the rows are no longer axis 0.
        ([helper.make_node("Unsqueeze", ["s", "ax"], ["y"])],
         [helper.make_tensor("ax", TensorProto.INT64, [1], [0])], TensorProto.STRING, False),
        # A reduction over the rows mixes them.
        ([helper.make_node("Unsqueeze", ["s", "ax"], ["u"]), helper.make_node("Equal", ["u", "c"], ["m"]),
          helper.make_node("Cast", ["m"], ["f"], to=TensorProto.INT64),
          helper.make_node("ReduceMax", ["f", "ax0"], ["y"], keepdims=1)],
         [helper.make_tensor("ax", TensorProto.INT64, [1], [1]), helper.make_tensor("ax0", TensorProto.INT64, [1], [0]),
          helper.make_tensor("c", TensorProto.STRING, [1, 2], [b"a", b"b"])], TensorProto.INT64, False),
    ],
)  # fmt: skip
def test_only_row_wise_steps_move(nodes: list[Any], consts: list[Any], out_type: int, moved: bool) -> None:
    values = np.array(["a", "b", "c"], dtype=object)
    indices = np.array([1, 0, 0], dtype=np.int64)
    model = _text_graph(nodes, consts, out_type)
    rewritten, feeds = dictionary_model(model, ["s"])
    got = _run(rewritten, {feeds["s"].values: values, feeds["s"].indices: indices})
    np.testing.assert_array_equal(got, _run(model, {"s": values[indices]}))
    producer = next(n for n in onnx.load_from_string(rewritten).graph.node if "y" in n.output)
    assert (producer.op_type == "Gather") == moved  # moved: computed on the distinct values, then gathered


def test_runtime_without_dictionaries_for_every_text_input_runs_per_row() -> None:
    signature = Signature(
        inputs=(ColumnSpec("s", "BYTES", nullable=True), ColumnSpec("t", "BYTES", nullable=True)),
        outputs=(OutputSpec("y", "BOOL"),),
    )
    nodes = [helper.make_node("Equal", ["s", "t"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.STRING, ["N"]) for n in ("s", "t")],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()
    runtime = OnnxRuntime(model, signature, threads=1)
    table = pa.table({"s": pa.array(["a", "b", None]), "t": pa.array(["a", "c", None]).dictionary_encode()})
    encoded = encode_arrow(signature, table)
    # Two text inputs of one node: each stays in its own dictionary space, the Equal reads gathered rows.
    assert runtime.predict(encoded)["y"].tolist() == [True, False, True]
    encoded.dictionaries.pop("t")
    assert runtime.predict(encoded)["y"].tolist() == [True, False, True]
