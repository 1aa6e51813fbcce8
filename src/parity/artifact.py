"""The artifact: one fitted pipeline as a verified, self-describing directory.

``package()`` turns a fitted model and its raw training frame into an :class:`Artifact`:
it infers the signature, exports the whole pipeline to ONNX (or, when a step cannot be exported,
keeps a Python runtime and says so), proves parity between the two, profiles the training data,
and records everything in ``manifest.json``. Directory layout (format ``parity.artifact/1``)::

    manifest.json           described by parity/schemas/manifest.schema.json
    model.onnx              portable artifacts: raw inputs -> business outputs
    model.skops | model.pkl non-portable artifacts only (loading needs trusted=True)
    profile.json            reference profile of the raw inputs and outputs (parity.profile)
    parity_sample.parquet   inputs of the parity check + the Python model's outputs (prefix "expected.")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parity._format import (
    DIGEST_SCHEME,
    PROFILE_FILE,
    file_entry,
    profile_bytes,
    read_dir,
    read_reference,
    validate_name,
    write_dir,
)
from parity._io import sha256_bytes
from parity.checks import ParityReport, edge_cases, null_case, predict_with, run_parity_check
from parity.codec import EncodedColumns, decode_outputs, encode_columns, encode_frame
from parity.env import environment, lineage, model_packages
from parity.errors import (
    ArtifactError,
    ExportError,
    MissingDependencyError,
    SchemaError,
    UnsupportedModelError,
    UntrustedArtifactError,
)
from parity.model import check_model, model_classes, reference_outputs
from parity.postprocess import OutputPlan, Postprocess, plan_outputs
from parity.profile import ColumnKind, Profile, ProfileSpec, profile_frame
from parity.runtime import OnnxRuntime, PythonRuntime, Runtime
from parity.schema import MISSING_STRING, Signature, infer_signature

__all__ = ["FORMAT", "Artifact", "artifact_from_files", "failed_parity_warning", "load_artifact", "package"]

log = logging.getLogger("parity.artifact")

FORMAT = "parity.artifact/1"
ONNX_FILE = "model.onnx"
SKOPS_FILE = "model.skops"
PICKLE_FILE = "model.pkl"
SAMPLE_FILE = "parity_sample.parquet"
EXPECTED_PREFIX = "expected."
STORED_SAMPLE_ROWS = 2000


class Artifact:
    """A packaged model: manifest, runtime and reference data. Build with package() or load()."""

    def __init__(self, manifest: dict[str, Any], files: dict[str, bytes], runtime: Runtime) -> None:
        self.manifest = manifest
        self._files = files
        self.runtime = runtime
        self.signature = Signature.from_dict(manifest["signature"])
        self.plan = OutputPlan.from_dict(manifest["postprocess"])
        self.unseen_counts: dict[str, int] = {}
        # A null (MISSING_STRING) is not an unseen category: count it as known.
        self._categories = {
            c.name: frozenset((*c.categories, MISSING_STRING))
            for c in self.signature.inputs
            if c.categories is not None
        }
        self._input_names = set(self.signature.input_names)
        self._output_columns = pd.Index(self.signature.output_names)
        self._checked_columns: object = None
        self._reported_extra: set[str] = set()
        self.path: Path | None = None
        self.version: int | None = None

    def __repr__(self) -> str:
        runtime = "onnx" if self.portable else "python"
        verdict = "ok" if self.parity_passed else "FAILED"
        return f"<Artifact {self.name!r} task={self.task} runtime={runtime} parity={verdict}>"

    @property
    def name(self) -> str:
        """Model name."""
        return str(self.manifest["name"])

    @property
    def task(self) -> str:
        """binary, multiclass or regression."""
        return str(self.manifest["task"])

    @property
    def portable(self) -> bool:
        """True when the model runs from model.onnx in any ONNX runtime."""
        return bool(self.manifest["portable"])

    @property
    def parity_report(self) -> ParityReport:
        """The parity check recorded at packaging."""
        return ParityReport.from_dict(self.manifest["parity"])

    @property
    def parity_passed(self) -> bool:
        """Whether the recorded parity check passed."""
        return bool(self.manifest["parity"]["passed"])

    @property
    def profile(self) -> Profile:
        """Reference profile of the raw training inputs."""
        return Profile.from_dict(self._reference()["inputs"])

    @property
    def output_profile(self) -> Profile | None:
        """Reference profile of the model's outputs on the parity sample (None if not recorded)."""
        outputs = self._reference().get("outputs")
        return Profile.from_dict(outputs) if outputs else None

    def _reference(self) -> dict[str, Any]:
        return read_reference(self.file_bytes(PROFILE_FILE), f"artifact {self.name!r}")

    def file_bytes(self, name: str) -> bytes:
        """Content of one artifact file (e.g. ``model.onnx``)."""
        try:
            return self._files[name]
        except KeyError:
            raise ArtifactError(f"artifact {self.name!r} has no file {name!r}; it has {sorted(self._files)}") from None

    def predict_columns(self, columns: Mapping[str, Any], *, observe: bool = True) -> dict[str, np.ndarray]:
        """Validate a mapping of column -> values and return the outputs as arrays.

        The one path that runs a model: ``predict``, the server, replay and the parity check all call
        it, so validation and side effects are the same. ``observe`` counts unseen categories (off
        for synthetic inputs: the parity check, ``verify``, replay). Columns already validated
        (:class:`~parity.codec.EncodedColumns`) are not checked again; extra columns are ignored,
        with one warning per column name.
        """
        if isinstance(columns, EncodedColumns):
            encoded = columns
        else:
            encoded = encode_columns(self.signature, columns)
            self._report_extra(columns.keys())
        if observe:
            self._count_unseen(encoded)
        return self.runtime.predict(encoded)

    def predict(self, data: pd.DataFrame) -> pd.DataFrame:
        """Validate raw inputs and return one column per declared output (same index)."""
        encoded = encode_frame(self.signature, data)
        self._report_extra(data.columns)
        outputs = self.predict_columns(encoded)
        return decode_outputs(self.signature, outputs, index=data.index, columns=self._output_columns)

    def _report_extra(self, columns: Iterable[Any]) -> None:
        if columns is self._checked_columns:
            return
        names = list(columns)
        if len(names) <= len(self._input_names) and self._input_names.issuperset(names):
            self._checked_columns = columns  # frames sliced from one source share this Index
            return
        extra = [c for c in columns if c not in self._input_names and c not in self._reported_extra]
        if extra:
            self._reported_extra.update(extra)
            log.warning("model %r ignores extra input column(s) %s", self.name, extra)

    def _count_unseen(self, columns: Mapping[str, np.ndarray]) -> None:
        dictionaries = getattr(columns, "dictionaries", {})
        for name, known in self._categories.items():
            text = dictionaries.get(name)
            if text is not None:  # one lookup per distinct value, weighted by its row count
                seen = np.fromiter(map(known.__contains__, text.values.tolist()), bool, len(text.values))
                unseen = int(np.bincount(text.indices, minlength=len(text.values))[~seen].sum())
            else:
                values = columns[name]
                # map(known.__contains__) runs the set lookups in C: 4x faster than a generator.
                unseen = len(values) - sum(map(known.__contains__, values.tolist()))
            if unseen:
                self.unseen_counts[name] = self.unseen_counts.get(name, 0) + unseen

    def parity_sample(self) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Stored parity-check inputs and the Python model's outputs for them."""
        import io

        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(self._files[SAMPLE_FILE]))
        frame = table.to_pandas()
        expected = {
            c[len(EXPECTED_PREFIX) :]: frame.pop(c).to_numpy()
            for c in list(frame.columns)
            if c.startswith(EXPECTED_PREFIX)
        }
        return frame, expected

    def verify(self, *, raise_on_failure: bool = True) -> ParityReport:
        """Replay the stored parity sample through this artifact's runtime and compare."""
        frame, expected = self.parity_sample()
        report, _ = run_parity_check(
            lambda _f: expected,
            predict_with(self.signature, lambda cols: self.predict_columns(cols, observe=False)),
            {"stored_sample": frame},
            tolerance=float(self.manifest["parity"]["tolerance"]),
            precision=str(self.manifest["parity"]["precision"]),
            runtime=self.runtime.kind,
            raise_on_failure=raise_on_failure,
        )
        return report

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact directory (atomically: a temp dir renamed into place)."""
        self.path = write_dir(path, self.manifest, self._files)
        return self.path


def _fingerprint(data: pd.DataFrame) -> dict[str, Any]:
    hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
    return {"rows": len(data), "columns": [str(c) for c in data.columns], "sha256": sha256_bytes(hashed.tobytes())}


def _serialize_python(model: Any) -> tuple[str, bytes]:
    """skops when it can represent the model (no arbitrary code on load), else pickle."""
    try:
        import skops.io as sio

        data = sio.dumps(model)
        sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        return SKOPS_FILE, data
    except Exception as exc:
        log.warning("skops cannot store this model (%s); falling back to pickle", exc)
    try:
        return PICKLE_FILE, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ExportError(f"the model can neither be exported to ONNX nor serialised ({exc})") from exc


_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


def _deserialize_python(name: str, data: bytes) -> Any:
    try:
        if name == SKOPS_FILE:
            import skops.io as sio

            return sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        return pickle.loads(data)  # only reached after trusted=True
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        hint = f"pip install 'parity[{_EXTRAS[root]}]'" if root in _EXTRAS else f"pip install {root}"
        raise MissingDependencyError(f"this model needs the package {root!r}, which is not installed; {hint}") from exc


def _sample_frame(cases: Mapping[str, pd.DataFrame], expected: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for case, frame in cases.items():
        if case not in expected:
            continue
        part = frame.copy()
        for name, values in expected[case].items():
            part[EXPECTED_PREFIX + name] = values
        parts.append(part)
    both = pd.concat(parts, ignore_index=True)
    if len(both) > STORED_SAMPLE_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(both), STORED_SAMPLE_ROWS, replace=False))
        both = both.iloc[keep].reset_index(drop=True)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(both, preserve_index=False), buf)
    return buf.getvalue()


def package(
    model: Any,
    data: pd.DataFrame,
    *,
    name: str,
    target: str | pd.Series | np.ndarray | Sequence[Any] | None = None,
    nullable: Sequence[str] | None = None,
    postprocess: Postprocess | Sequence[Postprocess] | None = None,
    metrics: Mapping[str, float] | Sequence[str] | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    tolerance: float = 1e-5,
    allow_mismatch: bool = False,
    sample_size: int = 10_000,
    random_state: int = 0,
) -> Artifact:
    """Package a fitted model with its raw training inputs into a verified artifact."""
    validate_name(name)
    check_model(model)
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"`data` must be a pandas DataFrame of raw inputs; got {type(data).__name__} instead")
    data, target_info, labels = _split_target(model, data, target)
    metrics = _resolve_metrics(model, data, labels, metrics)
    signature = infer_signature(data)
    feature_order = [str(c) for c in getattr(model, "feature_names_in_", data.columns)]
    plan = plan_outputs(model_classes(model), postprocess)
    dtypes = {str(c): str(t) for c, t in data.dtypes.items()}

    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(len(data), min(sample_size, len(data)), replace=False))
    sample = data.iloc[idx].reset_index(drop=True)
    cases: dict[str, pd.DataFrame] = {"training_sample": sample}
    for i in range(min(5, len(sample))):
        cases[f"one_row:{i}"] = sample.iloc[[i]].reset_index(drop=True)

    def reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return reference_outputs(model, frame, plan)

    signature = _with_nullability(signature, sample, reference, nullable).with_outputs(plan.specs())

    files: dict[str, bytes] = {}
    blocked: dict[str, str] | None = None
    runtime: Runtime
    try:
        from parity.export import export_model  # lazy: serving a portable artifact needs no sklearn/skl2onnx

        exported = export_model(model, signature, plan, feature_order)
        files[ONNX_FILE] = exported.model.SerializeToString()
        runtime = OnnxRuntime(files[ONNX_FILE], signature)
        precision, estimator, thresholds = exported.precision, exported.estimator, exported.raw_thresholds
    except ExportError as exc:
        blocked = {"step": exc.step or "unknown", "reason": str(exc)}
        log.warning(
            "NOT PORTABLE: %s cannot be exported to ONNX (%s). The artifact keeps a Python runtime; "
            "loading it requires trusted=True and it cannot be served from other languages.",
            exc.step,
            exc,
        )
        file_name, blob = _serialize_python(model)
        files[file_name] = blob
        runtime = PythonRuntime(_deserialize_python(file_name, blob), signature, plan, dtypes)
        precision, estimator, thresholds = "python", type(model).__name__, {}
    cases.update(edge_cases(sample, signature, thresholds))
    # The check runs the artifact itself (its one predict path); the manifest is completed below.
    artifact = Artifact(
        {"name": name, "signature": signature.to_dict(), "postprocess": plan.to_dict(), "portable": blocked is None},
        files,
        runtime,
    )
    report, expected = run_parity_check(
        reference,
        predict_with(signature, lambda cols: artifact.predict_columns(cols, observe=False)),
        cases,
        tolerance=tolerance,
        precision=precision,
        runtime=runtime.kind,
        raise_on_failure=not allow_mismatch,
    )
    if "training_sample" in report.skipped:  # edge cases may fail in Python; the model's own training rows may not
        raise UnsupportedModelError(
            f"the model cannot predict its training sample: {report.skipped['training_sample']}"
        )
    if not report.passed:
        log.error("PARITY MISMATCH recorded in the manifest (allow_mismatch=True): %s", report.failure)

    spec = ProfileSpec.from_reference(data)
    profile = profile_frame(data, spec)
    out_frame = pd.DataFrame(expected["training_sample"])
    # A label is a category even when the classes are integers: profiled as numbers, 0/1 labels
    # would share one bin and a shift in the class balance could not show.
    out_kinds: dict[str, ColumnKind] = {
        o.name: "categorical" if o.labels is not None else "numeric" for o in signature.outputs
    }
    out_profile = profile_frame(out_frame, ProfileSpec.from_reference(out_frame, columns=out_kinds))
    files[PROFILE_FILE] = profile_bytes(profile.to_dict(), out_profile.to_dict())
    files[SAMPLE_FILE] = _sample_frame(cases, expected)

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "description": description or "",
        "task": plan.task,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "portable": blocked is None,
        "runtime": runtime.kind,
        "blocked_by": blocked,
        "estimator": estimator,
        "signature": signature.to_dict(),
        "postprocess": plan.to_dict(),
        "pandas_dtypes": dtypes,
        "parity": report.to_dict(),
        "metrics": metrics,
        "training_data": _fingerprint(data) | ({"target": target_info} if target_info else {}),
        "environment": environment(model_packages(model)),
        "lineage": lineage(tags={str(k): str(v) for k, v in (tags or {}).items()}),
        "files": {n: file_entry(b) for n, b in sorted(files.items())},
    }
    validate_manifest(manifest)
    artifact.manifest = manifest
    return artifact


def _split_target(
    model: Any, data: pd.DataFrame, target: str | pd.Series | np.ndarray | Sequence[Any] | None
) -> tuple[pd.DataFrame, dict[str, Any] | None, pd.Series | None]:
    """The raw inputs without the target, and a summary of the training labels (None without a target)."""
    if target is None:
        return data, None, None
    if isinstance(target, str):
        if target not in data.columns:
            raise SchemaError(
                f"target column {target!r} is not in `data`; columns: {list(data.columns)}", column=target
            )
        return data.drop(columns=[target]), _target_summary(target, data[target]), data[target]
    if isinstance(target, pd.DataFrame) or not isinstance(target, pd.Series | np.ndarray | list | tuple):
        raise SchemaError(
            "`target` must be a column name of `data`, or a Series/array of one label per row; "
            f"got {type(target).__name__} instead"
        )
    labels = target if isinstance(target, pd.Series) else pd.Series(np.asarray(target))
    if labels.ndim != 1 or len(labels) != len(data):
        raise SchemaError(f"`target` has {len(labels)} labels but `data` has {len(data)} rows; pass one label per row")
    name = labels.name if isinstance(labels.name, str) else None
    fitted_on = {str(c) for c in getattr(model, "feature_names_in_", [])}
    if name is not None and name in data.columns and name not in fitted_on:
        data = data.drop(columns=[name])  # y = df["churn"] with df still holding it: not an input
    return data, _target_summary(name, labels), labels


_METRICS = ("accuracy", "roc_auc", "log_loss", "r2", "mae", "rmse")


def _resolve_metrics(
    model: Any, data: pd.DataFrame, labels: pd.Series | None, metrics: Mapping[str, float] | Sequence[str] | None
) -> dict[str, float]:
    """Metrics given as numbers are recorded as they are; metric names are computed on (data, target)."""
    if metrics is None or isinstance(metrics, Mapping):
        return {k: float(v) for k, v in (metrics or {}).items()}
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        raise SchemaError(f"unknown metric(s) {unknown}; parity computes {list(_METRICS)} (or pass a dict of values)")
    if labels is None:
        raise SchemaError(f"metrics {names} are computed from the labels: pass target= (a column name or a Series)")
    from sklearn import metrics as skm

    y = labels.to_numpy()
    out: dict[str, float] = {}
    for name in names:
        if name in ("r2", "mae", "rmse"):
            pred = np.asarray(model.predict(data), dtype=np.float64)
            value = {"r2": skm.r2_score, "mae": skm.mean_absolute_error}.get(name, skm.root_mean_squared_error)(y, pred)
        elif name == "accuracy":
            value = skm.accuracy_score(y, model.predict(data))
        else:
            proba = model.predict_proba(data)
            if name == "log_loss":
                value = skm.log_loss(y, proba, labels=list(model.classes_))
            elif proba.shape[1] == 2:
                value = skm.roc_auc_score(y == model.classes_[1], proba[:, 1])
            else:
                value = skm.roc_auc_score(y, proba, multi_class="ovr", labels=list(model.classes_))
        out[name] = float(value)
    return out


def _target_summary(name: str | None, labels: pd.Series) -> dict[str, Any]:
    """Label distribution (classes) or moments (numbers) of the training target."""
    out: dict[str, Any] = {"name": name, "rows": len(labels), "nulls": int(labels.isna().sum())}
    present = labels.dropna()
    if pd.api.types.is_float_dtype(present.dtype) and present.nunique() > 20:
        values = present.to_numpy(dtype=np.float64)
        out.update(mean=float(values.mean()), std=float(values.std()), min=float(values.min()), max=float(values.max()))
    else:
        counts = present.astype(str).value_counts().sort_index()
        out["distribution"] = {str(k): int(v) for k, v in counts.items()}
    return out


def _with_nullability(
    signature: Signature,
    sample: pd.DataFrame,
    reference: Any,
    declared: Sequence[str] | None,
) -> Signature:
    """Mark nullable the columns whose nulls the pipeline handles (imputed, or NaN-aware estimators).

    A column with nulls in training is nullable anyway. Otherwise the Python pipeline is run on rows
    with that column missing: if it answers, the column accepts nulls (and the parity check proves the
    graph answers the same on those rows). ``declared`` (``package(nullable=[...])``) replaces the
    inference: exactly those columns become nullable, and each must pass the same test.
    """
    import warnings

    names = signature.input_names
    if declared is not None:
        if isinstance(declared, str):
            declared = [declared]
        unknown = [c for c in declared if c not in names]
        if unknown:
            raise SchemaError(f"nullable= names unknown column(s) {unknown}; inputs: {names}", column=unknown[0])
        candidates = [c for c in signature.inputs if c.name in declared and not c.nullable]
    else:
        candidates = [c for c in signature.inputs if not c.nullable and c.datatype != "BOOL"]
    specs = {c.name: c for c in signature.inputs}
    for spec in candidates:
        if spec.datatype == "BOOL":
            raise SchemaError(
                f"column {spec.name!r} is bool; a nullable bool column must have nulls in the training data "
                "(as pandas 'boolean' dtype)",
                column=spec.name,
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the verdict must not depend on the caller's warning filters
                reference(null_case(sample, spec))
        except Exception as exc:
            if declared is not None:
                raise UnsupportedModelError(
                    f"column {spec.name!r} is declared nullable, but the pipeline fails on a missing value there "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                    "impute it (e.g. SimpleImputer) in the pipeline or remove it from nullable="
                ) from exc
            continue
        datatype = "FP64" if spec.datatype in ("INT64", "INT32") else spec.datatype  # NaN needs a float tensor
        specs[spec.name] = dataclasses.replace(spec, nullable=True, datatype=datatype)
    return Signature(tuple(specs[n] for n in names), signature.outputs)


def validate_manifest(manifest: Mapping[str, Any]) -> None:
    """Check a manifest against the committed JSON Schema."""
    import jsonschema

    schema = json.loads((Path(__file__).parent / "schemas" / "manifest.schema.json").read_text())
    try:
        jsonschema.validate(manifest, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ArtifactError(f"manifest is invalid at {where}: {exc.message}") from exc


def load_artifact(
    path: str | os.PathLike[str],
    *,
    trusted: bool = False,
    digest: str | None = None,
    scheme: int = DIGEST_SCHEME,
    label: object = None,
) -> Artifact:
    """Read an artifact directory, hashing each file once; ``digest`` (a registered version's) is checked too."""
    root = Path(path)
    manifest, files = read_dir(root, digest=digest, scheme=scheme, label=label)
    artifact = artifact_from_files(manifest, files, trusted=trusted, where=root)
    artifact.path = root
    return artifact


def artifact_from_files(
    manifest: dict[str, Any], files: dict[str, bytes], *, trusted: bool = False, where: object = None
) -> Artifact:
    """Build an Artifact from a manifest and file contents already checked against it."""
    where = where if where is not None else manifest.get("name")
    if manifest.get("format") != FORMAT:
        raise ArtifactError(
            f"{where}: unsupported artifact format {manifest.get('format')!r}; this parity reads {FORMAT!r}"
        )
    validate_manifest(manifest)
    signature = Signature.from_dict(manifest["signature"])
    runtime: Runtime
    if manifest["portable"]:
        runtime = OnnxRuntime(files[ONNX_FILE], signature)
    else:
        py_file = SKOPS_FILE if SKOPS_FILE in files else PICKLE_FILE
        if not trusted:
            step = (manifest.get("blocked_by") or {}).get("step", "a step")
            raise UntrustedArtifactError(
                f"{where}: artifact {manifest['name']!r} is not portable ({step} could not be exported) and holds "
                f"{py_file}, which can run code when loaded. Load it with trusted=True only if you "
                "trust its origin"
            )
        model = _deserialize_python(py_file, files[py_file])
        runtime = PythonRuntime(
            model, signature, OutputPlan.from_dict(manifest["postprocess"]), manifest["pandas_dtypes"]
        )
    artifact = Artifact(manifest, files, runtime)
    if not artifact.parity_passed:
        log.warning("%s", failed_parity_warning(artifact))
    return artifact


def failed_parity_warning(artifact: Artifact) -> str:
    """The warning every load of an artifact whose recorded parity check failed prints."""
    return (
        f"artifact {artifact.name!r} FAILED its parity check at packaging: it does not answer what the Python "
        f"pipeline answers ({artifact.manifest['parity'].get('failure')})"
    )
