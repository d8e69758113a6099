"""A fast runtime for the served tree models: ONNX Runtime, with scikit-learn's own arithmetic.

``compile_pipeline`` turns ``build_pipeline``'s pipeline (median imputer, then a random forest
or a histogram gradient boosting classifier) into a ``FastPredictor`` whose ``predict_raw``
returns what ``lib/model.predict_raw`` does (the uncalibrated fraud probability, float64) in
microseconds instead of milliseconds, and proves it on a probe before returning.

How it stays exact. The trees go into one ``ai.onnx.ml`` opset 5 ``TreeEnsemble`` node with
float64 splits and float64 leaf values, built here from the fitted trees. skl2onnx (1.20) is
not used: its tree converters emit the opset 1 ``TreeEnsembleClassifier`` with float32
thresholds, leaf values and output (on the champions' validation rows up to 8e-7 from
scikit-learn; on rows next to a boosting threshold up to 0.34), and its float64 boosting graph
does not load. Every other step is done in numpy exactly as scikit-learn does it:

- the imputer: missing values are replaced by its statistics (``SimpleImputer.transform``
  copies them in; columns it drops are dropped);
- the forest: inputs are rounded to float32 (scikit-learn's trees compare ``(float32)x`` to
  float64 thresholds), each tree's leaf fraction is summed in tree order and the sum divided by
  the number of trees, as ``forest_proba`` does;
- boosting: inputs stay float64, the baseline is folded into the first tree's leaves so the
  float64 sum is scikit-learn's ``baseline + tree_1 + tree_2 + ...`` in the same order, and the
  sigmoid is ``scipy.special.expit``, scikit-learn's own (ONNX Runtime's differs in the last
  bit).

On the champion's validation rows the result is bit-identical to scikit-learn. A model this
module does not know raises ``UnsupportedModel``; a graph that disagrees with scikit-learn on
the probe raises ``RuntimeMismatch``; both are ``NotCompiled``, on which the caller serves with
scikit-learn.

One ONNX Runtime session per model, on one thread, sequential; ``InferenceSession.run`` is
thread-safe and releases the GIL, and nothing else here is mutable, so a ``FastPredictor`` can
be called from several threads at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

#: The largest probability difference from scikit-learn a runtime may have.
TOLERANCE = 1e-6
#: Generated probe rows (a 150-tree forest checks them in about 10 ms).
PROBE_ROWS = 256
#: Probe rows also scored one at a time.
SINGLE_ROWS = 16
#: The ONNX opsets of the graph: ``TreeEnsemble`` with float64 values needs ``ai.onnx.ml`` 5.
OPSETS = {"": 21, "ai.onnx.ml": 5}
IR_VERSION = 10
INPUT, OUTPUT = "X", "Y"


class NotCompiled(ValueError):
    """No fast runtime for this model: serve it with scikit-learn."""


class UnsupportedModel(NotCompiled):
    """The pipeline is not one this module compiles exactly."""


class RuntimeMismatch(NotCompiled):
    """The compiled graph disagrees with scikit-learn on the probe."""


class _Tree(NamedTuple):
    """One fitted tree's node arrays, the root first (scikit-learn's layout)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray  # what a row reaching the leaf adds
    missing_left: np.ndarray  # where a missing value goes


@dataclass(frozen=True)
class _Trees:
    """Fitted trees in ``TreeEnsemble``'s layout: interior nodes and leaves, all trees."""

    roots: np.ndarray
    features: np.ndarray
    splits: np.ndarray
    true_ids: np.ndarray
    true_leaf: np.ndarray
    false_ids: np.ndarray
    false_leaf: np.ndarray
    missing_true: np.ndarray
    leaf_values: np.ndarray
    average: bool


class FastPredictor:
    """The fraud-class probability of a float64 feature matrix, from one ONNX Runtime session.

    ``fill`` (per input column) and ``keep`` (the columns the model reads, or None for all) are
    the imputer's; ``float32_inputs`` and ``logistic`` say how the model reads its inputs and
    what its graph returns (see the module). ``onnx_model`` is the serialized graph.
    """

    def __init__(
        self,
        onnx_model: bytes,
        fill: np.ndarray,
        keep: np.ndarray | None,
        *,
        float32_inputs: bool,
        logistic: bool,
    ) -> None:
        self.onnx_model = onnx_model
        self.fill = np.asarray(fill, dtype=np.float64)
        self.keep = keep
        self.float32_inputs, self.logistic = float32_inputs, logistic
        self.n_features = len(self.fill)
        self.timings: dict[str, float] = {}
        self._session = _session(onnx_model)

    def __reduce__(self) -> tuple:
        """Pickled as its graph and settings; the session is created again when loaded."""
        args = (self.onnx_model, self.fill, self.keep)
        settings = {"float32_inputs": self.float32_inputs, "logistic": self.logistic}
        return _restore, (args, settings)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """The uncalibrated fraud probability of each row of ``x`` (shape (n,), float64)."""
        z = self._inputs(x)
        if z.shape[0] == 0:
            return np.empty(0)
        raw = self._session.run([OUTPUT], {INPUT: z})[0].ravel()
        return expit(raw) if self.logistic else raw

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        """The graph's input: imputed, reduced to the kept columns, rounded as the model reads
        it, C-ordered. Infinite values are refused, as scikit-learn refuses them."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {x.shape}")
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, self.fill, x)
        if self.keep is not None:
            x = x[:, self.keep]
        z = x.astype(np.float32).astype(np.float64) if self.float32_inputs else x
        if np.isinf(z).any():
            raise ValueError("input contains infinity or a value too large for the model")
        return np.ascontiguousarray(z)


def _restore(args: tuple, settings: dict[str, bool]) -> FastPredictor:
    return FastPredictor(*args, **settings)


def compile_pipeline(
    pipeline: Pipeline,
    n_features: int,
    probe: np.ndarray | None = None,
    *,
    probe_rows: int = PROBE_ROWS,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> FastPredictor:
    """The fast runtime of a fitted ``build_pipeline`` pipeline over ``n_features`` columns,
    checked against ``pipeline.predict_proba`` on ``probe_rows`` edge rows (``edge_rows``) and
    the caller's ``probe`` rows: ``RuntimeMismatch`` if a probability differs by more than
    ``tolerance``, ``UnsupportedModel`` for a pipeline this module does not compile. The
    predictor's ``timings`` say what each step cost."""
    started = time.perf_counter()
    fill, keep, trees, float32_inputs, logistic = _plan(pipeline, n_features)
    try:
        graph = _graph(trees, n_features if keep is None else len(keep))
        built = time.perf_counter()
        predictor = FastPredictor(
            graph, fill, keep, float32_inputs=float32_inputs, logistic=logistic
        )
    except Exception as exc:  # an onnx or onnxruntime too old for the graph, say
        raise UnsupportedModel(
            f"onnx {onnx.__version__} / onnxruntime {ort.__version__} cannot build or load the "
            f"graph: {type(exc).__name__}: {exc}"[:500]
        ) from exc
    loaded = time.perf_counter()
    rows = _edge_rows(trees, fill, keep, probe_rows, np.random.default_rng(seed))
    if probe is not None:
        rows = np.vstack([rows, np.asarray(probe, dtype=np.float64)])
    check_parity(predictor, pipeline, rows, tolerance)
    predictor.timings = {
        "graph_s": built - started,
        "session_s": loaded - built,
        "probe_s": time.perf_counter() - loaded,
        "probe_rows": len(rows),
    }
    return predictor


def edge_rows(
    pipeline: Pipeline, n_features: int, rows: int = PROBE_ROWS, seed: int = 0
) -> np.ndarray:
    """``rows`` input rows that walk a supported pipeline's tree edges (see ``_edge_rows``)."""
    fill, keep, trees, _, _ = _plan(pipeline, n_features)
    return _edge_rows(trees, fill, keep, rows, np.random.default_rng(seed))


def _plan(
    pipeline: Pipeline, n_features: int
) -> tuple[np.ndarray, np.ndarray | None, _Trees, bool, bool]:
    """The imputer's fill and kept columns, the trees, and how the model reads its inputs
    (rounded to float32?) and what the graph returns (log-odds?)."""
    imputer, clf = _parts(pipeline, n_features)
    fill, keep = _imputation(imputer)
    if isinstance(clf, RandomForestClassifier):
        return fill, keep, _forest_trees(clf), True, False
    return fill, keep, _boosting_trees(clf), False, True


def check_parity(
    predictor: FastPredictor, pipeline: Pipeline, x: np.ndarray, tolerance: float = TOLERANCE
) -> float:
    """The largest |runtime - scikit-learn| probability over the rows of ``x``, scored as one
    batch and (the first ``SINGLE_ROWS``) one row at a time, which ONNX Runtime computes on
    another path; ``RuntimeMismatch`` when it exceeds ``tolerance`` or a row is NaN in one
    only. scikit-learn runs on one OpenMP thread: the same sums, and no stall on a busy host."""
    with threadpool_limits(1, "openmp"):
        expected = pipeline.predict_proba(x)[:, 1]
    single = [predictor.predict_raw(x[i : i + 1]) for i in range(min(SINGLE_ROWS, len(x)))]
    gap = np.abs(
        np.concatenate([predictor.predict_raw(x), *single])
        - np.concatenate([expected, expected[: len(single)]])
    )
    worst = float(np.max(gap, initial=0.0))
    if np.isnan(gap).any() or worst > tolerance:
        raise RuntimeMismatch(
            f"the fast runtime differs from scikit-learn by up to {worst:.3g} on {len(x)} probe "
            f"rows (tolerance {tolerance:g}); serve this model with scikit-learn"
        )
    return worst


def _parts(
    pipeline: Pipeline, n_features: int
) -> tuple[SimpleImputer, RandomForestClassifier | HistGradientBoostingClassifier]:
    """The imputer and classifier of a supported pipeline, else ``UnsupportedModel``."""
    steps = [step for _, step in getattr(pipeline, "steps", [])]
    if len(steps) != 2 or not isinstance(steps[0], SimpleImputer):
        raise UnsupportedModel("expected a pipeline of a SimpleImputer and a classifier")
    imputer, clf = steps
    if imputer.add_indicator or not _is_nan(imputer.missing_values):
        raise UnsupportedModel("the imputer must fill NaN and add no indicator columns")
    if imputer.n_features_in_ != n_features:
        raise UnsupportedModel(
            f"the pipeline reads {imputer.n_features_in_} features, not {n_features}"
        )
    if not isinstance(clf, RandomForestClassifier | HistGradientBoostingClassifier):
        raise UnsupportedModel(f"no fast runtime for {type(clf).__name__}")
    if len(clf.classes_) != 2:
        raise UnsupportedModel("only binary classifiers are compiled")
    return imputer, clf


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _imputation(imputer: SimpleImputer) -> tuple[np.ndarray, np.ndarray | None]:
    """The imputer's fill value per input column and the columns it keeps (None: all)."""
    fill = np.asarray(imputer.statistics_, dtype=np.float64)
    empty = np.isnan(fill)
    if imputer.keep_empty_features or not empty.any():
        return fill, None
    return fill, np.flatnonzero(~empty)


def _forest_trees(forest: RandomForestClassifier) -> _Trees:
    """A forest's trees: each leaf's fraud fraction, averaged over the trees."""
    if forest.n_outputs_ != 1:
        raise UnsupportedModel("only single-output forests are compiled")
    parts = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        parts.append(
            _Tree(
                feature=tree.feature,
                threshold=tree.threshold,
                left=tree.children_left,
                right=tree.children_right,
                is_leaf=tree.children_left == -1,
                value=tree.value[:, 0, 1],
                missing_left=np.zeros(tree.node_count, dtype=bool),  # imputed: never missing
            )
        )
    return _flatten(parts, average=True)


def _boosting_trees(model: HistGradientBoostingClassifier) -> _Trees:
    """Boosting's trees, the baseline folded into the first tree's leaves (see the module)."""
    if model.n_trees_per_iteration_ != 1 or type(model._loss).__name__ != "HalfBinomialLoss":
        raise UnsupportedModel("only binary log-loss boosting is compiled")
    if getattr(model, "_preprocessor", None) is not None or np.any(model.is_categorical_):
        raise UnsupportedModel("boosting with categorical features is not compiled")
    baseline = float(np.ravel(model._baseline_prediction)[0])
    parts = []
    for i, (predictor,) in enumerate(model._predictors):
        nodes = predictor.nodes
        values = nodes["value"].astype(np.float64)
        parts.append(
            _Tree(
                feature=nodes["feature_idx"],
                threshold=nodes["num_threshold"],
                left=nodes["left"],
                right=nodes["right"],
                is_leaf=nodes["is_leaf"].astype(bool),
                value=baseline + values if i == 0 else values,
                missing_left=nodes["missing_go_to_left"].astype(bool),
            )
        )
    return _flatten(parts, average=False)


def _flatten(parts: list[_Tree], *, average: bool) -> _Trees:
    """Trees into one ensemble (node and leaf ids count across the trees)."""
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in _Trees.__dataclass_fields__ if k != "average"
    }
    nodes = leaves = 0
    for tree in parts:
        feature, threshold, left, right, is_leaf, value, missing_left = _with_inner_root(tree)
        inner, leaf = np.flatnonzero(~is_leaf), np.flatnonzero(is_leaf)
        position = np.empty(len(is_leaf), dtype=np.int64)
        position[inner] = nodes + np.arange(len(inner))
        position[leaf] = leaves + np.arange(len(leaf))
        cols["roots"].append(np.array([nodes]))
        for name, child in (("true", left[inner]), ("false", right[inner])):
            cols[f"{name}_ids"].append(position[child])
            cols[f"{name}_leaf"].append(is_leaf[child].astype(np.int64))
        cols["features"].append(feature[inner].astype(np.int64))
        cols["splits"].append(threshold[inner].astype(np.float64))
        cols["missing_true"].append(missing_left[inner].astype(np.int64))
        cols["leaf_values"].append(value[leaf].astype(np.float64))
        nodes, leaves = nodes + len(inner), leaves + len(leaf)
    return _Trees(**{k: np.concatenate(v) for k, v in cols.items()}, average=average)


def _with_inner_root(tree: _Tree) -> _Tree:
    """The tree as arrays; a single leaf behind one interior node whose branches both reach it
    (``TreeEnsemble`` roots are interior nodes)."""
    tree = _Tree(*map(np.asarray, tree))
    if not tree.is_leaf[0]:
        return tree
    return _Tree(
        feature=np.zeros(2, dtype=np.int64),
        threshold=np.zeros(2),
        left=np.array([1, 0]),
        right=np.array([1, 0]),
        is_leaf=np.array([False, True]),
        value=np.array([0.0, tree.value[0]]),
        missing_left=np.zeros(2, dtype=bool),
    )


def _graph(trees: _Trees, n_inputs: int) -> bytes:
    """The serialized ONNX model: one float64 ``TreeEnsemble`` node, one output column."""
    node = helper.make_node(
        "TreeEnsemble",
        [INPUT],
        [OUTPUT],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=0 if trees.average else 1,  # AVERAGE or SUM
        post_transform=0,  # NONE
        tree_roots=trees.roots.tolist(),
        nodes_featureids=trees.features.tolist(),
        nodes_modes=numpy_helper.from_array(np.zeros(len(trees.features), np.uint8)),  # LEQ
        nodes_splits=numpy_helper.from_array(trees.splits),
        nodes_truenodeids=trees.true_ids.tolist(),
        nodes_trueleafs=trees.true_leaf.tolist(),
        nodes_falsenodeids=trees.false_ids.tolist(),
        nodes_falseleafs=trees.false_leaf.tolist(),
        nodes_missing_value_tracks_true=trees.missing_true.tolist(),
        leaf_targetids=[0] * len(trees.leaf_values),
        leaf_weights=numpy_helper.from_array(trees.leaf_values),
    )
    graph = helper.make_graph(
        [node],
        "fraud_model",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_inputs])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None, 1])],
    )
    opsets = [helper.make_opsetid(domain, version) for domain, version in OPSETS.items()]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _session(onnx_model: bytes) -> ort.InferenceSession:
    """One session on one thread, sequential: the caller micro-batches."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _edge_rows(
    trees: _Trees,
    fill: np.ndarray,
    keep: np.ndarray | None,
    rows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``rows`` input rows that walk the trees' edges: per value, a split threshold itself, its
    float64 or float32 neighbour, a value between the feature's thresholds, or missing."""
    x = np.tile(fill, (rows, 1))
    columns = np.arange(len(fill)) if keep is None else keep
    for graph_column, column in enumerate(columns):
        splits = np.unique(trees.splits[trees.features == graph_column])
        splits = splits[np.isfinite(splits)]
        if splits.size == 0:
            splits = fill[column : column + 1]
        at = rng.choice(splits, rows)
        lo, hi = splits.min(), splits.max()
        spread = max(hi - lo, 1.0)
        between = rng.uniform(lo - 0.1 * spread, hi + 0.1 * spread, rows)
        direction = np.where(rng.random(rows) < 0.5, -np.inf, np.inf)
        choices = [
            at,
            np.nextafter(at, direction),
            np.nextafter(at.astype(np.float32), direction.astype(np.float32)).astype(np.float64),
            between,
        ]
        kind = rng.choice(len(choices), rows, p=[0.3, 0.15, 0.15, 0.4])
        x[:, column] = np.choose(kind, choices)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x
