"""The Python side of a model: validation of the user's estimator and its reference outputs.

``reference_outputs`` is the definition of what a model answers: the fitted scikit-learn object
run on the raw frame, then the :class:`~parity.postprocess.OutputPlan`. The exported graph is
checked against it, and non-portable artifacts serve with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from parity.errors import UnsupportedModelError
from parity.postprocess import OutputPlan

__all__ = ["check_model", "model_classes", "reference_outputs", "restore_dtypes"]


def check_model(model: Any) -> None:
    """Raise UnsupportedModelError unless ``model`` is a fitted estimator with a usable predict API."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise UnsupportedModelError(
            f"`model` must be a fitted scikit-learn estimator or Pipeline; got {type(model).__name__} instead"
        )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise UnsupportedModelError(f"`model` ({type(model).__name__}) is not fitted; call .fit(X, y) first") from exc
    except TypeError:
        pass  # not a scikit-learn estimator: the predict call will tell
    final = model.steps[-1][1] if type(model).__name__ == "Pipeline" and model.steps else model
    get_params = getattr(final, "get_params", None)
    if type(final).__name__.startswith("XGB") and callable(get_params) and get_params().get("enable_categorical"):
        raise UnsupportedModelError(
            f"{type(final).__name__}(enable_categorical=True) uses XGBoost's native categorical splits, which "
            "parity cannot export or check exactly; encode the text columns in the pipeline instead "
            "(e.g. OneHotEncoder or OrdinalEncoder in a ColumnTransformer) and fit with enable_categorical=False",
            step=type(final).__name__,
        )
    if model_classes(model) is not None and not hasattr(model, "predict_proba"):
        raise UnsupportedModelError(
            f"{type(model).__name__} is a classifier without predict_proba; parity needs probabilities "
            "(use e.g. LogisticRegression, or CalibratedClassifierCV around it)"
        )


def model_classes(model: Any) -> list[Any] | None:
    """Return the classes of a classifier, or None for a regressor."""
    from sklearn.base import is_classifier

    try:
        classifier = is_classifier(model)
    except AttributeError:  # not a scikit-learn estimator (no tags): a classifier is what predicts probabilities
        classifier = hasattr(model, "predict_proba")
    if classifier and hasattr(model, "classes_"):
        return list(np.asarray(model.classes_).tolist())
    return None


def restore_dtypes(frame: pd.DataFrame, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Give columns back the pandas dtypes of the training frame, so the model sees nulls as it was trained."""
    out = {}
    for name in frame.columns:
        want = dtypes.get(name)
        col = frame[name]
        if want and str(col.dtype) != want:
            # On failure keep the values; the model's own validation reports the problem.
            with contextlib.suppress(TypeError, ValueError):
                col = col.astype(want)
        out[name] = col
    return pd.DataFrame(out, index=frame.index)


def reference_outputs(model: Any, frame: pd.DataFrame, plan: OutputPlan) -> dict[str, np.ndarray]:
    """Run the Python model on raw ``frame`` and return the declared outputs."""
    if plan.task == "regression":
        raw = np.asarray(model.predict(frame), dtype=np.float64)
        if raw.ndim == 2 and raw.shape[1] == 1:
            raw = raw[:, 0]
        if raw.ndim != 1:
            raise UnsupportedModelError(f"the regressor returned shape {raw.shape}; parity supports one target")
    else:
        raw = np.asarray(model.predict_proba(frame), dtype=np.float64)
    return plan.compute(raw)
