"""Declarative business outputs, computed identically in numpy and inside the ONNX graph.

A model's raw result (class probabilities or a regression value) becomes business-ready
outputs here: a label (optionally decided by a :class:`Threshold` on the positive-class
probability, optionally renamed by :class:`ClassLabels`), the probabilities, or the prediction.
:class:`OutputPlan` holds the resolved decisions; ``compute`` runs them in numpy (the Python
reference) and ``emit`` appends the same operations to the ONNX graph, so every runtime returns
the same outputs.

Default outputs: binary classifiers ``label`` and ``probability`` (of the positive class,
``classes_[1]``); multi-class ``label`` and ``probability_<label>`` per class; regressors
``prediction``. ``label`` is the class with the highest probability (first on ties), unless a
threshold decides it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from onnx import TensorProto

from parity.errors import UnsupportedModelError
from parity.export._builder import GraphBuilder
from parity.schema import Datatype, OutputSpec, json_safe

__all__ = ["ClassLabels", "OutputPlan", "Postprocess", "Threshold", "plan_outputs"]

Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class Threshold:
    """Binary decision: ``labels[1]`` when P(``positive``) >= ``threshold``, else ``labels[0]``.

    ``positive`` is the class whose probability is thresholded (default: ``labels[1]`` when the
    labels are the model's classes, else ``classes_[1]``). Labels that are the model's classes are
    matched by name, whatever the order of ``classes_``; other labels rename (negative, positive).
    """

    threshold: float
    labels: tuple[Any, Any] | None = None
    output: str = "label"
    positive: Any = None

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise UnsupportedModelError(f"Threshold must be within [0, 1]; got {self.threshold!r}")
        if self.labels is not None and (
            len(self.labels) != 2 or json_safe(self.labels[0]) == json_safe(self.labels[1])
        ):
            raise UnsupportedModelError(
                f"Threshold labels must be two distinct (negative, positive); got {self.labels!r}"
            )


@dataclass(frozen=True)
class ClassLabels:
    """Rename class labels, e.g. ``ClassLabels({0: "stay", 1: "churn"})``."""

    mapping: Mapping[Any, Any]
    output: str = "label"


Postprocess = Threshold | ClassLabels


def _datatype(values: Sequence[Any]) -> Datatype:
    if all(isinstance(v, bool | np.bool_) for v in values):
        return "BOOL"
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, float | np.floating) for v in values):
        return "FP64"
    if all(isinstance(v, str) for v in values):
        return "BYTES"
    raise UnsupportedModelError(f"class labels must all be strings, all integers or all bools; got {list(values)!r}")


_NUMPY = {"BOOL": np.bool_, "INT64": np.int64, "FP64": np.float64, "BYTES": object}
_ONNX = {"BOOL": TensorProto.BOOL, "INT64": TensorProto.INT64, "FP64": TensorProto.DOUBLE, "BYTES": TensorProto.STRING}


@dataclass
class OutputPlan:
    """Resolved output decisions for one model."""

    task: Task
    classes: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    threshold: float | None = None
    label_output: str = "label"
    positive: int = 1
    """Binary: index in ``classes`` of the class whose probability is output (and thresholded)."""

    @property
    def label_datatype(self) -> Datatype:
        """Datatype of the label output."""
        return _datatype(self.labels)

    @property
    def probability_outputs(self) -> list[str]:
        """Names of the probability outputs."""
        if self.task == "binary":
            return ["probability"]
        if self.task == "multiclass":
            return [f"probability_{lab}" for lab in self.labels]
        return []

    def specs(self) -> list[OutputSpec]:
        """Declared outputs, in order."""
        if self.task == "regression":
            return [OutputSpec("prediction", "FP64", "predicted value")]
        pos = self.classes[self.positive] if self.classes else None
        if self.threshold is not None:
            desc = (
                f"{self.labels[self.positive]!r} when P({pos!r}) >= {self.threshold}, "
                f"else {self.labels[1 - self.positive]!r}"
            )
        else:
            desc = "most probable"
        specs = [OutputSpec(self.label_output, self.label_datatype, f"class label, {desc}", tuple(self.labels))]
        if self.task == "binary":
            specs.append(OutputSpec("probability", "FP64", f"probability of class {pos!r}"))
        else:
            specs += [
                OutputSpec(n, "FP64", f"probability of {lab!r}")
                for n, lab in zip(self.probability_outputs, self.labels, strict=True)
            ]
        return specs

    def compute(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy reference: raw probabilities ``[N, K]`` or predictions ``[N]`` -> outputs."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.task == "regression":
            return {"prediction": raw.reshape(-1)}
        labels: np.ndarray = np.array(self.labels, dtype=_NUMPY[self.label_datatype])
        if self.threshold is not None:
            above = raw[:, self.positive] >= self.threshold
            idx = np.where(above, self.positive, 1 - self.positive).astype(np.int64)
        else:
            idx = np.argmax(raw, axis=1)
        out = {self.label_output: labels[idx]}
        if self.task == "binary":
            out["probability"] = raw[:, self.positive].copy()
        else:
            for j, name in enumerate(self.probability_outputs):
                out[name] = raw[:, j].copy()
        return out

    def emit(self, b: GraphBuilder, raw: str) -> None:
        """Append the same operations to the graph and declare the outputs."""
        if self.task == "regression":
            flat = b.node("Reshape", [raw, b.const(np.array([-1], dtype=np.int64), "flat")], "prediction")
            b.add_output(flat, "prediction", TensorProto.DOUBLE, ["N"])
            return
        datatype = self.label_datatype
        if self.threshold is not None:
            p1 = b.node("Gather", [raw, b.const(np.int64(self.positive), "pos")], "p_pos", axis=1)
            above = b.node("GreaterOrEqual", [p1, b.const(np.float64(self.threshold), "thr")])
            idx = b.node(
                "Where",
                [above, b.const(np.int64(self.positive), "pos_idx"), b.const(np.int64(1 - self.positive), "neg_idx")],
                "decided",
            )
        else:
            idx = b.node("ArgMax", [raw], "argmax", axis=1, keepdims=0)
        table = b.const(np.array(self.labels, dtype=_NUMPY[datatype]), "labels")
        b.add_output(b.node("Gather", [table, idx], "label", axis=0), self.label_output, _ONNX[datatype], ["N"])
        for j, name in enumerate(self.probability_outputs):
            col = self.positive if self.task == "binary" else j
            p = b.node("Gather", [raw, b.const(np.int64(col), "col")], name, axis=1)
            b.add_output(p, name, TensorProto.DOUBLE, ["N"])

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form."""
        return {
            "task": self.task,
            "classes": [json_safe(c) for c in self.classes],
            "labels": [json_safe(c) for c in self.labels],
            "threshold": self.threshold,
            "label_output": self.label_output,
            "positive": self.positive,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputPlan:
        """Read the manifest form."""
        return cls(
            d["task"],
            list(d["classes"]),
            list(d["labels"]),
            d.get("threshold"),
            d.get("label_output", "label"),
            int(d.get("positive", 1)),
        )


def plan_outputs(classes: Sequence[Any] | None, postprocess: Postprocess | Sequence[Postprocess] | None) -> OutputPlan:
    """Resolve the task and the postprocessing into an :class:`OutputPlan`."""
    if classes is None:
        if postprocess:
            raise UnsupportedModelError("postprocess (Threshold/ClassLabels) applies to classifiers only")
        return OutputPlan("regression")
    classes = [json_safe(c) for c in classes]
    task: Task = "binary" if len(classes) == 2 else "multiclass"
    plan = OutputPlan(task, list(classes), list(classes))
    steps: list[Postprocess] = []
    if isinstance(postprocess, Threshold | ClassLabels):
        steps = [postprocess]
    elif postprocess is not None:
        steps = list(postprocess)
    renamed = False
    for step in steps:
        if isinstance(step, ClassLabels):
            unknown = [k for k in step.mapping if json_safe(k) not in classes]
            if unknown:
                raise UnsupportedModelError(
                    f"ClassLabels names classes {unknown} the model does not have; classes: {classes}"
                )
            labels = [json_safe(step.mapping.get(c, c)) for c in plan.classes]
            if len(set(labels)) != len(labels):
                raise UnsupportedModelError(
                    f"ClassLabels gives two classes the same label: classes {classes} -> labels {labels}; "
                    "every class needs its own label"
                )
            plan.labels = labels
            plan.label_output = step.output
            renamed = True
        elif isinstance(step, Threshold):
            if task != "binary":
                raise UnsupportedModelError(f"Threshold needs a binary classifier; this one has classes {classes}")
            plan.threshold = float(step.threshold)
            plan.label_output = step.output
            _apply_threshold(plan, step, renamed)
        else:
            raise UnsupportedModelError(
                f"unknown postprocess step {step!r}; use parity.Threshold or parity.ClassLabels"
            )
    _datatype(plan.labels)
    return plan


def _apply_threshold(plan: OutputPlan, step: Threshold, renamed: bool) -> None:
    """Resolve which class is thresholded and the label per class; refuse any inconsistency."""
    classes = plan.classes
    labels = None if step.labels is None else [json_safe(v) for v in step.labels]
    positive = None if step.positive is None else json_safe(step.positive)
    if positive is not None and positive not in classes:
        raise UnsupportedModelError(
            f"Threshold(positive={positive!r}) is not a class of the model; classes_ = {classes}"
        )
    named = labels is not None and set(labels) == set(classes)
    if labels is not None and not named and set(labels) & set(classes):
        raise UnsupportedModelError(
            f"Threshold labels {labels} mix the model's classes {classes} with other names; give both classes "
            "(matched by name: labels[1] is chosen when P(labels[1]) >= threshold) or two new names "
            "(then say which class is thresholded with positive=)"
        )
    if named:
        assert labels is not None
        if positive is not None and positive != labels[1]:
            raise UnsupportedModelError(
                f"Threshold(labels={labels}, positive={positive!r}) disagree: labels[1] is the class given when "
                f"its probability >= threshold; classes_ = {classes}"
            )
        if renamed:
            raise UnsupportedModelError(
                f"Threshold labels {labels} name the model's classes {classes}, but ClassLabels renamed them to "
                f"{plan.labels}; use the new names in one place only"
            )
        positive = labels[1]
    plan.positive = classes.index(positive) if positive is not None else 1
    if labels is not None and not named:
        per_class = [None, None]
        per_class[plan.positive], per_class[1 - plan.positive] = labels[1], labels[0]
        if renamed:
            raise UnsupportedModelError(
                f"both ClassLabels ({plan.labels}) and Threshold labels ({labels}) rename the classes {classes}; "
                "use one of them"
            )
        plan.labels = per_class
