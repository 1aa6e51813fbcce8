"""The contract every final-estimator exporter fulfils.

An estimator exporter receives the preprocessed feature matrix as a double tensor ``[N, F]``
(already computed in float64 with the fitted float64 constants) and appends nodes that produce
a double tensor ``[N, K]``: class probabilities in ``estimator.classes_`` order for classifiers
(K = number of classes, binary included), predictions for regressors (K = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["EstimatorGraph"]


@dataclass
class EstimatorGraph:
    """What an estimator exporter appended to the graph."""

    output: str
    """Name of the double ``[N, K]`` tensor (probabilities or predictions)."""
    kind: Literal["proba", "values", "decision"]
    """``proba`` for classifiers, ``values`` for regressors, ``decision`` for a ``decision_function``."""
    precision: str
    """Short id of the numeric recipe used, recorded in the manifest (e.g. ``float64``)."""
    thresholds: dict[int, np.ndarray] = field(default_factory=dict)
    """Split thresholds per input feature index (tree models), used to build edge cases."""
    raw_thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    """The same mapped back to raw input columns (filled by the dispatcher in ``_estimators``)."""
