"""Read fitted tree ensembles (scikit-learn, XGBoost, LightGBM) into one small IR.

Every family is described by the same :class:`TreeModel`: binary trees with a threshold test
per internal node, a missing-value direction and a scalar leaf value contributing to one output
column, plus how the library turns the per-column sums into predictions. The emitter in
``_trees.py`` turns that into ONNX; nothing here touches ONNX.

XGBoost and LightGBM are recognised by class module name and never imported at module import.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from parity.errors import ExportError

__all__ = ["CategoricalSplit", "Tree", "TreeModel", "read_tree_model"]

Link = Literal["identity", "sigmoid", "softmax", "exp"]


@dataclass(frozen=True)
class Tree:
    """One binary tree; node 0 is the root and a node with ``feature < 0`` is a leaf."""

    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    missing_left: NDArray[np.bool_]
    value: NDArray[np.float64]
    target: int


@dataclass
class TreeModel:
    """Trees plus the recipe that turns per-target leaf sums into the library's output."""

    trees: list[Tree]
    n_targets: int
    kind: Literal["proba", "values"]
    precision: str
    strict: bool = False
    """``x < t`` (XGBoost) instead of ``x <= t``."""
    float32_input: bool = False
    """The library rounds features to float32 before comparing them."""
    float32_sum: bool = False
    """The library sums leaves and applies the link in float32, tree after tree (XGBoost)."""
    offset: NDArray[np.float64] | None = None
    """Added to the leaf sums (init estimator, baseline, base margin), shape ``[n_targets]``."""
    divisor: float | None = None
    """The leaf sums are divided by this (forests, LightGBM ``average_output``)."""
    link: Link = "identity"
    link_scale: float = 1.0
    """Raw scores are multiplied by this before the link (``expit(2 * raw)``, ``sigmoid:k``)."""
    thresholds: dict[int, NDArray[np.float64]] = field(default_factory=dict)
    inputs: list[tuple[int, NDArray[np.float64] | None]] | None = None
    """Model features built from the input ones: (input index, categories to ordinal-encode or None).

    HistGradientBoosting with categorical features first ordinal-encodes those columns (unknown and
    missing -> NaN) and moves them to the front; None when the model reads its input as it is.
    """
    categorical: list[CategoricalSplit] = field(default_factory=list)
    """Bitset splits, each rewritten as a numeric split ``indicator <= 0.5`` on an extra feature."""


@dataclass(frozen=True)
class CategoricalSplit:
    """Extra feature ``n_model_features + i``: 0 if the code goes left, 1 if right, NaN if missing/unknown."""

    feature: int
    left: NDArray[np.int64]
    known: NDArray[np.int64]


_CAT = "; encode categories numerically (one-hot or ordinal) before the model instead"


def _fail(est: object, msg: str) -> ExportError:
    return ExportError(f"{type(est).__name__}: {msg}", step=type(est).__name__)


def _family(est: object, names: set[str], module: str) -> bool:
    """True if ``est`` is (a subclass of) one of ``names`` defined under ``module``."""
    return any(c.__module__.startswith(module) and c.__name__ in names for c in type(est).__mro__)


def _tree(feature: Any, threshold: Any, left: Any, right: Any, missing_left: Any, value: Any, target: int) -> Tree:
    return Tree(
        np.asarray(feature, dtype=np.int64),
        np.asarray(threshold, dtype=np.float64),
        np.asarray(left, dtype=np.int64),
        np.asarray(right, dtype=np.int64),
        np.asarray(missing_left, dtype=np.bool_),
        np.asarray(value, dtype=np.float64),
        target,
    )


# --- scikit-learn -------------------------------------------------------------------------------

_SK_TREES = {"DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor"}
_SK_FORESTS = {"RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"}
_SK_GB = {"GradientBoostingClassifier", "GradientBoostingRegressor"}
_SK_HGB = {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"}
_SK_PRECISION = "float32-input/float64-thresholds"


def _sk_tree(t: Any, value: NDArray[np.float64], target: int) -> Tree:
    return _tree(t.feature, t.threshold, t.children_left, t.children_right, t.missing_go_to_left, value, target)


def _sk_forest(est: Any, members: list[Any]) -> TreeModel:
    if getattr(est, "n_outputs_", 1) != 1:
        raise _fail(
            est, f"{est.n_outputs_} outputs; only single-output models can be exported, fit one model per output"
        )
    trees: list[Tree] = []
    classifier = hasattr(est, "classes_")
    n_targets = len(est.classes_) if classifier else 1
    for member in members:
        t = member.tree_
        if classifier:
            # DecisionTreeClassifier.predict_proba divides each leaf row by its sum (0 -> 1).
            v = np.asarray(t.value[:, 0, :n_targets], dtype=np.float64)
            norm = v.sum(axis=1, keepdims=True)
            norm[norm == 0.0] = 1.0
            v = v / norm
            trees += [_sk_tree(t, v[:, k], k) for k in range(n_targets)]
        else:
            trees.append(_sk_tree(t, t.value[:, 0, 0], 0))
    return TreeModel(
        trees,
        n_targets,
        "proba" if classifier else "values",
        _SK_PRECISION,
        float32_input=True,
        divisor=float(len(members)) if len(members) > 1 else None,
    )


def _sk_link(est: Any) -> tuple[Link, float]:
    link = type(est._loss.link).__name__
    table: dict[str, tuple[Link, float]] = {
        "IdentityLink": ("identity", 1.0),
        "LogitLink": ("sigmoid", 1.0),
        "HalfLogitLink": ("sigmoid", 2.0),
        "LogLink": ("exp", 1.0),
        "MultinomialLogit": ("softmax", 1.0),
    }
    if link not in table:
        raise _fail(est, f"loss {type(est._loss).__name__} with link {link} is not supported; use a standard loss")
    return table[link]


def _sk_gb(est: Any) -> TreeModel:
    init = est.init_
    constant = isinstance(init, str) or type(init).__name__ in {"DummyClassifier", "DummyRegressor"}
    if not constant:
        raise _fail(est, f"init estimator {type(init).__name__} may not be constant; use init=None or 'zero'")
    # The init prediction of a dummy estimator is the same constant for every row.
    offset = np.asarray(est._raw_predict_init(np.zeros((1, est.n_features_in_))), dtype=np.float64)[0]
    lr = float(est.learning_rate)
    trees = [
        # sklearn adds learning_rate * value stage by stage; the product is formed in float64 alike.
        _sk_tree(member.tree_, lr * member.tree_.value[:, 0, 0], k)
        for stage in est.estimators_
        for k, member in enumerate(stage)
    ]
    classifier = hasattr(est, "classes_")
    link, scale = _sk_link(est) if classifier else ("identity", 1.0)
    return TreeModel(
        trees,
        offset.shape[0],
        "proba" if classifier else "values",
        _SK_PRECISION,
        float32_input=True,
        offset=offset,
        link=link,
        link_scale=scale,
    )


def _bitset_codes(bits: NDArray[Any]) -> NDArray[np.int64]:
    """The category codes (0..255) set in one row of a scikit-learn uint32 bitset."""
    return np.asarray([v for v in range(256) if (int(bits[v // 32]) >> (v % 32)) & 1], dtype=np.int64)


def _sk_hgb_inputs(est: Any) -> list[tuple[int, NDArray[np.float64] | None]] | None:
    pre = getattr(est, "_preprocessor", None)
    if pre is None:
        return None
    inputs: list[tuple[int, NDArray[np.float64] | None]] = []
    for name, trans, cols in pre.transformers_:
        if name == "remainder" or trans == "drop":
            continue
        idx = np.flatnonzero(cols) if np.asarray(cols).dtype == bool else np.asarray(cols, dtype=np.int64)
        for pos, j in enumerate(idx):
            if name == "encoder":
                cats = np.asarray(trans.categories_[pos], dtype=np.float64)
                inputs.append((int(j), cats[~np.isnan(cats)]))
            else:
                inputs.append((int(j), None))
    return inputs


def _sk_hgb(est: Any) -> TreeModel:
    n_model = int(np.asarray(est._is_categorical_remapped).size) if est.is_categorical_ is not None else 0
    categorical: list[CategoricalSplit] = []
    known_bits, f_idx_map = est._bin_mapper.make_known_categories_bitsets() if n_model else (None, None)
    trees: list[Tree] = []
    for iteration in est._predictors:
        for k, predictor in enumerate(iteration):
            n = predictor.nodes
            feature = np.where(n["is_leaf"] != 0, -1, n["feature_idx"]).astype(np.int64)
            threshold = np.asarray(n["num_threshold"], dtype=np.float64).copy()
            for node in np.flatnonzero((n["is_categorical"] != 0) & (n["is_leaf"] == 0)):
                f = int(n["feature_idx"][node])
                left = _bitset_codes(predictor.raw_left_cat_bitsets[int(n["bitset_idx"][node])])
                known = (
                    left if known_bits is None or f_idx_map is None else _bitset_codes(known_bits[int(f_idx_map[f])])
                )
                categorical.append(CategoricalSplit(f, left, known))
                feature[node] = n_model + len(categorical) - 1
                threshold[node] = 0.5
            missing_left = n["missing_go_to_left"]
            trees.append(_tree(feature, threshold, n["left"], n["right"], missing_left, n["value"], k))
    link, scale = _sk_link(est)
    offset = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    kind: Literal["proba", "values"] = "proba" if hasattr(est, "classes_") else "values"
    model = TreeModel(trees, offset.shape[0], kind, "float64", offset=offset, link=link, link_scale=scale)
    model.inputs = _sk_hgb_inputs(est)
    model.categorical = categorical
    return model


# --- XGBoost -------------------------------------------------------------------------------------

_XGB_LINKS: dict[str, Link] = {
    "binary:logistic": "sigmoid",
    "reg:logistic": "sigmoid",
    "multi:softprob": "softmax",
    "reg:squarederror": "identity",
    "reg:squaredlogerror": "identity",
    "reg:absoluteerror": "identity",
    "reg:pseudohubererror": "identity",
    "reg:quantileerror": "identity",
    "count:poisson": "exp",
    "reg:gamma": "exp",
    "reg:tweedie": "exp",
}


def _xgb_base_margin(raw: dict[str, Any], n_trees: int) -> NDArray[np.float64]:
    """Ask XGBoost for its base margin: the model with all trees reduced to a 0.0 leaf.

    XGBoost turns the stored ``base_score`` into a margin with float32 libm calls (e.g.
    ``-logf(1/p - 1)``) that numpy does not reproduce bit for bit, so let the library do it.
    """
    import xgboost  # only reached for XGBoost models, so xgboost is installed

    raw = json.loads(json.dumps(raw))
    model = raw["learner"]["gradient_booster"]["model"]
    leaf = {
        "base_weights": [0.0],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": [0],
        "left_children": [-1],
        "loss_changes": [0.0],
        "parents": [2147483647],
        "right_children": [-1],
        "split_conditions": [0.0],
        "split_indices": [0],
        "split_type": [0],
        "sum_hessian": [0.0],
    }
    model["trees"] = [
        {**t, **leaf, "id": i, "tree_param": {**t["tree_param"], "num_nodes": "1"}}
        for i, t in enumerate(model["trees"][:n_trees])
    ]
    model["tree_info"] = model["tree_info"][:n_trees]
    model["iteration_indptr"] = [0, n_trees]
    model["gbtree_model_param"]["num_trees"] = str(n_trees)
    raw["learner"]["feature_names"], raw["learner"]["feature_types"] = [], []  # probe with a bare matrix
    probe = xgboost.Booster()
    probe.load_model(bytearray(json.dumps(raw).encode()))
    n_features = int(raw["learner"]["learner_model_param"]["num_feature"])
    dm = xgboost.DMatrix(np.full((1, n_features), np.nan, dtype=np.float32))
    return np.asarray(probe.predict(dm, output_margin=True, validate_features=False), dtype=np.float64).reshape(-1)


def _xgb(est: Any) -> TreeModel:
    missing = getattr(est, "missing", np.nan)
    if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
        raise _fail(est, f"missing={missing!r} is not supported; refit with missing=np.nan")
    try:
        booster = est.get_booster()
    except Exception as exc:  # xgboost raises NotFittedError (a ValueError/AttributeError) when unfitted
        raise _fail(est, f"not fitted ({exc}); fit it before exporting") from exc
    raw = json.loads(booster.save_raw("json"))
    learner = raw["learner"]
    objective = learner["objective"]["name"]
    gb = learner["gradient_booster"]
    if gb["name"] != "gbtree":
        raise _fail(est, f"booster {gb['name']!r} is not supported; refit with booster='gbtree'")
    if objective not in _XGB_LINKS:
        raise _fail(est, f"objective {objective!r} is not supported; supported: {sorted(_XGB_LINKS)}")
    if int(learner["learner_model_param"].get("num_target", "1")) > 1:
        raise _fail(est, "multi-output models are not supported; fit one model per output")
    model = gb["model"]
    n_groups = max(1, int(learner["learner_model_param"]["num_class"]))
    indptr = model.get("iteration_indptr") or list(range(0, len(model["trees"]) + 1, n_groups))
    try:  # the sklearn wrapper predicts with best_iteration after early stopping
        n_iter = int(est.best_iteration) + 1
    except AttributeError:
        n_iter = len(indptr) - 1
    n_trees = indptr[min(n_iter, len(indptr) - 1)]
    trees: list[Tree] = []
    for t, group in zip(model["trees"][:n_trees], model["tree_info"][:n_trees], strict=True):
        if any(int(s) != 0 for s in t["split_type"]) or int(t["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise _fail(est, f"categorical splits and vector leaves (multi_strategy) are not supported{_CAT}")
        left = np.asarray(t["left_children"], dtype=np.int64)
        cond = np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)  # exact float32 values
        feature = np.where(left < 0, -1, np.asarray(t["split_indices"], dtype=np.int64))
        trees.append(_tree(feature, cond, left, t["right_children"], t["default_left"], cond, int(group)))
    if len({sum(t.target == k for t in trees) for k in range(n_groups)}) > 1:
        raise _fail(est, "targets with different numbers of trees are not supported")
    offset = _xgb_base_margin(raw, indptr[1])
    kind: Literal["proba", "values"] = "proba" if hasattr(est, "classes_") else "values"
    return TreeModel(
        trees,
        n_groups,
        kind,
        "float32",
        strict=True,
        float32_input=True,
        float32_sum=True,
        offset=offset,
        link=_XGB_LINKS[objective],
    )


# --- LightGBM ------------------------------------------------------------------------------------

_LGBM_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
_LGBM_EXP = {"poisson", "gamma", "tweedie"}


def _lgbm_link(est: Any, objective: str) -> tuple[Link, float]:
    name, *params = objective.split()
    if name == "binary":
        scale = next((float(p.split(":")[1]) for p in params if p.startswith("sigmoid:")), 1.0)
        return "sigmoid", scale
    if name == "multiclass":
        return "softmax", 1.0
    if name in _LGBM_IDENTITY and "sqrt" not in params:
        return "identity", 1.0
    if name in _LGBM_EXP:
        return "exp", 1.0
    raise _fail(est, f"objective {objective!r} is not supported; use binary, multiclass or a regression objective")


# LightGBM's predictor drops every |x| <= kZeroThreshold (1e-35f) from a dense row, i.e. reads it
# as 0.0; only thresholds inside that band can tell the difference.
_LGBM_ZERO = float(np.float32(1e-35))


def _lgbm_threshold(t: float) -> float:
    """The threshold that gives ``x <= t'`` the answer LightGBM gives for ``x`` read as above."""
    if abs(t) > _LGBM_ZERO:
        return t
    # |x| <= kZero acts as 0.0: left iff 0 <= t. So left iff x <= kZero (t >= 0) or x < -kZero (t < 0).
    return _LGBM_ZERO if t >= 0.0 else float(np.nextafter(-_LGBM_ZERO, -np.inf))


def _lgbm_tree(est: Any, root: dict[str, Any], target: int, sparse: bool = False) -> Tree:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    missing_left: list[bool] = []
    value: list[float] = []
    stack: list[tuple[dict[str, Any], int, bool]] = [(root, -1, True)]
    while stack:
        node, parent, is_left = stack.pop()
        i = len(feature)
        if parent >= 0:
            (left if is_left else right)[parent] = i
        left.append(-1)
        right.append(-1)
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise _fail(est, "linear trees are not supported; refit with linear_tree=False")
            feature.append(-1)
            threshold.append(0.0)
            missing_left.append(False)
            value.append(float(node["leaf_value"]))
            continue
        if node["decision_type"] != "<=":
            raise _fail(est, f"categorical split {node['decision_type']!r} is not supported{_CAT}")
        # Stored entries of a sparse row are compared as they are (no zero band); absent ones are 0.0.
        t = float(node["threshold"]) if sparse else _lgbm_threshold(float(node["threshold"]))
        missing = node["missing_type"]
        if missing == "NaN":
            go_left = bool(node["default_left"])
        elif missing == "None":
            go_left = t >= 0.0  # LightGBM replaces NaN by 0.0 before comparing
        else:
            raise _fail(est, f"missing_type {missing!r} is not supported; refit with zero_as_missing=False")
        feature.append(int(node["split_feature"]))
        threshold.append(t)
        missing_left.append(go_left)
        value.append(0.0)
        stack += [(node["right_child"], i, False), (node["left_child"], i, True)]
    return _tree(feature, threshold, left, right, missing_left, value, target)


def _lgbm(est: Any, sparse: bool = False) -> TreeModel:
    try:
        booster = est.booster_
    except Exception as exc:  # LGBMNotFittedError when unfitted
        raise _fail(est, f"not fitted ({exc}); fit it before exporting") from exc
    dump = booster.dump_model()  # like predict, limited to best_iteration when early stopping was used
    link, scale = _lgbm_link(est, str(dump["objective"]))
    k = int(dump["num_tree_per_iteration"])
    trees = [_lgbm_tree(est, t["tree_structure"], i % k, sparse) for i, t in enumerate(dump["tree_info"])]
    n_iter = len(trees) // k
    kind: Literal["proba", "values"] = "proba" if hasattr(est, "classes_") else "values"
    divisor = float(n_iter) if dump.get("average_output") else None
    return TreeModel(trees, k, kind, "float64", divisor=divisor, link=link, link_scale=scale)


# --- dispatch ------------------------------------------------------------------------------------


def _collect_thresholds(model: TreeModel) -> dict[int, NDArray[np.float64]]:
    by_feature: dict[int, list[NDArray[np.float64]]] = {}
    for t in model.trees:
        inner = t.feature >= 0
        for f in np.unique(t.feature[inner]):
            by_feature.setdefault(int(f), []).append(t.threshold[inner & (t.feature == f)])
    out = {f: np.unique(np.concatenate(v)) for f, v in sorted(by_feature.items())}
    if model.inputs is not None:  # model feature -> input column; categorical ones have no raw threshold
        out = {model.inputs[f][0]: v for f, v in out.items() if f < len(model.inputs) and model.inputs[f][1] is None}
    return {f: v[np.isfinite(v)] for f, v in out.items()}


def read_tree_model(est: Any, sparse: bool = False) -> TreeModel | None:
    """Describe a fitted tree ensemble as a :class:`TreeModel`, or None if it is not one.

    ``sparse``: the features reach the library as a scipy sparse matrix (changes LightGBM's reading).
    """
    reader: Any
    if _family(est, _SK_TREES, "sklearn."):
        reader = lambda e: _sk_forest(e, [e])  # noqa: E731
    elif _family(est, _SK_FORESTS, "sklearn."):
        reader = lambda e: _sk_forest(e, list(e.estimators_))  # noqa: E731
    elif _family(est, _SK_GB, "sklearn."):
        reader = _sk_gb
    elif _family(est, _SK_HGB, "sklearn."):
        reader = _sk_hgb
    elif _family(est, {"XGBClassifier", "XGBRegressor"}, "xgboost"):
        reader = _xgb
    elif _family(est, {"LGBMClassifier", "LGBMRegressor"}, "lightgbm"):
        reader = lambda e: _lgbm(e, sparse)  # noqa: E731
    else:
        return None
    try:
        model: TreeModel = reader(est)
    except AttributeError as exc:  # fitted attributes (tree_, estimators_, _predictors) missing
        raise _fail(est, f"not fitted or unexpected internals ({exc}); fit it before exporting") from exc
    model.thresholds = _collect_thresholds(model)
    return model
