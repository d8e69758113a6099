"""Training: fetch the labelled data, build the card state, train and register candidates,
and promote one only through the gate (``lib/promotion.py``)."""

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from fraud_assets.defs.metadata import column_schema, image
from fraud_assets.defs.resources import (
    FeedResource,
    MlflowResource,
    MonitoringResource,
    ObjectStoreResource,
    TrainingSourceResource,
    WarehouseResource,
)
from fraud_assets.lib import monitoring as monitoring_lib
from fraud_assets.lib import promotion, registry
from fraud_assets.lib.card_state import write_state
from fraud_assets.lib.download import fetch_to_file, source_name
from fraud_assets.lib.features import IncompatibleModel, for_semantics
from fraud_assets.lib.lake import SERVED_PREFIX, hours_since, read_hours
from fraud_assets.lib.model import TrainParams, TrainResult, default_params, predict_raw, train
from fraud_assets.lib.redaction import redact
from fraud_assets.lib.schema import read_training_csv, validate_transactions

RAW_PREFIX = "raw/training"


@dg.asset(
    kinds={"polars", "parquet"},
    io_manager_key="parquet_io_manager",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
)
def raw_training_data(
    context: dg.AssetExecutionContext,
    training_source: TrainingSourceResource,
    object_store: ObjectStoreResource,
) -> pl.DataFrame:
    """Labelled card transactions in the public fraudTrain/fraudTest layout, fetched from
    FRAUD_TRAINING_DATA_URL (http, s3 or a path). The original CSV bytes are kept unchanged in
    object storage under ``raw/training/<file name>``; the asset itself is the parsed frame."""
    url = training_source.url
    name = source_name(url)
    store = object_store.store()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        size = fetch_to_file(url, local, s3_client=object_store.s3.get_client)
        raw_key = f"{RAW_PREFIX}/{name}"
        store.put_file(raw_key, local)
        frame = read_training_csv(local)
    reasons = validate_transactions(frame)
    bad = int(reasons.is_not_null().sum())
    if bad:
        context.log.warning(f"dropping {bad} invalid rows: {reasons.drop_nulls().value_counts()}")
        frame = frame.filter(reasons.is_null())
    frame = frame.sort("event_time", "trans_num")
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "dagster/column_schema": column_schema(frame),
            "source": redact(url.split("?")[0]),
            "raw_copy": dg.MetadataValue.path(store.uri(raw_key)),
            "raw_bytes": size,
            "frauds": int(frame["is_fraud"].sum()),
            "fraud_rate": round(float(frame["is_fraud"].mean()), 5),
            "cards": frame["cc_num"].n_unique(),
            "invalid_rows_dropped": bad,
            "first_event": str(frame["event_time"].min()),
            "last_event": str(frame["event_time"].max()),
        }
    )
    return frame


@dg.asset(
    kinds={"sql", "polars"},
    pool="warehouse",
)
def card_state(
    context: dg.AssetExecutionContext,
    feed: FeedResource,
    warehouse: WarehouseResource,
    raw_training_data: pl.DataFrame,
) -> dg.MaterializeResult:
    """The card state serving reads by card, built from the training data with the same code
    training uses: for arrival feeds, each card's profile frozen at the end of the training
    data (table ``card_profiles``, one row per card and per card and category); for event-time
    feeds, the training rows themselves (table ``card_history``). Indexed on ``cc_num``, so a
    micro-batch reads only its own cards. Replaced atomically."""
    fs = for_semantics(feed.semantics)
    state = fs.build_state(raw_training_data)
    written = write_state(warehouse.warehouse(), fs, state)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "dagster/column_schema": column_schema(state),
            "feed_semantics": fs.semantics,
            "feature_set_version": fs.version,
            "cards": state["cc_num"].n_unique(),
            "as_of": str(raw_training_data["event_time"].max()),
        }
    )


@dg.asset(
    kinds={"polars", "parquet"},
    io_manager_key="parquet_io_manager",
)
def live_training_rows(
    context: dg.AssetExecutionContext,
    feed: FeedResource,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    monitoring: MonitoringResource,
) -> pl.DataFrame:
    """Labelled live rows for retraining, featurised exactly as they were served: the feature
    rows each score was computed from (the ``served_features`` lake) for the last
    ``history_days``, labelled by the analyst's verdict or else the API's label once the label
    delay has passed. Only rows served with today's feature set are kept."""
    fs = for_semantics(feed.semantics)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    since = now - dt.timedelta(days=monitoring.history_days)
    wh = warehouse.warehouse()
    labelled = monitoring_lib.labelled_recent(wh, now, now - since, monitoring.label_delay())
    served = read_hours(object_store.store(), SERVED_PREFIX, hours_since(since, now))
    rows = monitoring_lib.labelled_served_rows(served, labelled, fs.version)
    if rows.height == 0:
        rows = pl.DataFrame(schema={"trans_num": pl.String, "event_time": pl.Datetime("ms")})
    frauds = int(rows["is_fraud"].sum()) if "is_fraud" in rows.columns else 0
    context.add_output_metadata(
        {
            "dagster/row_count": rows.height,
            "frauds": frauds,
            "feature_set_version": fs.version,
            "label_delay_hours": monitoring.label_delay_hours,
            "analyst_verdicts": int(labelled["label"].is_not_null().sum())
            if labelled.height
            else 0,
        }
    )
    return rows


_RF = default_params("rf")
_HGB = default_params("hgb")
_GATE = promotion.GateConfig()


class CandidateConfig(dg.Config):
    """Settings every candidate shares: validation, profiles, the decision and the gate.

    Defaults come from ``TrainParams`` (lib/model.py) and ``GateConfig`` (lib/promotion.py).
    """

    validation_fraction: float = _RF.validation_fraction
    profile_lag_days: float = _RF.profile_lag_days
    profile_warmup_days: float = _RF.profile_warmup_days
    review_cost: float = _RF.review_cost
    max_flag_rate: float | None = _RF.max_flag_rate
    n_jobs: int = _RF.n_jobs
    random_state: int = _RF.random_state
    min_ap: float = _GATE.min_ap
    min_roc_auc: float = _GATE.min_roc_auc
    ap_margin: float = _GATE.ap_margin
    bootstrap_samples: int = _GATE.bootstrap_samples

    def model_kind(self) -> str:
        raise NotImplementedError

    def params(self) -> TrainParams:
        known = {f.name for f in dataclasses.fields(TrainParams)}
        values = {k: v for k, v in self.model_dump().items() if k in known}
        return default_params(self.model_kind(), **values)

    def gate(self) -> promotion.GateConfig:
        return promotion.GateConfig(
            min_ap=self.min_ap,
            min_roc_auc=self.min_roc_auc,
            ap_margin=self.ap_margin,
            bootstrap_samples=self.bootstrap_samples,
            seed=self.random_state,
        )


class RfModelConfig(CandidateConfig):
    """RandomForest hyperparameters and business settings (defaults chosen on validation)."""

    n_estimators: int = _RF.n_estimators
    max_depth: int | None = _RF.max_depth
    min_samples_leaf: int = _RF.min_samples_leaf
    max_features: float = _RF.max_features
    max_samples: float | None = _RF.max_samples
    criterion: str = _RF.criterion
    legit_sample_rate: float = _RF.legit_sample_rate
    class_weight: str | None = _RF.class_weight
    calibrate_on_validation: bool = _RF.calibrate_on_validation

    def model_kind(self) -> str:
        return "rf"


class HgbModelConfig(CandidateConfig):
    """HistGradientBoosting challenger hyperparameters (defaults chosen on validation)."""

    max_iter: int = _HGB.max_iter
    learning_rate: float = _HGB.learning_rate
    max_leaf_nodes: int = _HGB.max_leaf_nodes
    l2_regularization: float = _HGB.l2_regularization
    legit_sample_rate: float = _HGB.legit_sample_rate
    class_weight: str | None = _HGB.class_weight
    calibrate_on_validation: bool = _HGB.calibrate_on_validation

    def model_kind(self) -> str:
        return "hgb"


def _check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "beats_champion",
        asset=asset,
        blocking=True,
        description="Same feed and features as served, champion not trained on the comparison "
        "window, AP better beyond the margin by a paired bootstrap, cost no worse (or the "
        "first-model bars when there is no usable champion).",
    )


def _current_champion(mlflow_registry: MlflowResource) -> registry.RegisteredModel | None:
    """The champion, or None when the registry has none or its champion is unusable (a
    decision tag that cannot be served: the gate then judges the candidate on the first-model
    bars, so a broken champion is replaced); a registry that cannot be reached fails the step
    before anything is trained: no gate decision without the champion."""
    try:
        return mlflow_registry.champion()
    except registry.RegistryUnavailable as exc:
        raise dg.Failure(description=f"no training without the registry: {exc}") from None
    except IncompatibleModel as exc:
        dg.get_dagster_logger().warning(f"the champion is unusable, so not compared: {exc}")
        return None


def _champion_scores(
    mlflow_registry: MlflowResource,
    champion: registry.RegisteredModel | None,
    result: TrainResult,
) -> promotion.Scores | None:
    """The champion's scores on the candidate's validation window (None if no champion)."""
    if champion is None:
        return None
    fs = result.feature_set
    proba = None
    if (champion.semantics, champion.feature_set_version) == (fs.semantics, fs.version):
        pipe = mlflow_registry.pipeline(champion)
        proba = champion.calibration.apply(predict_raw(pipe, fs, result.validation_features))
    return promotion.Scores(
        semantics=champion.semantics,
        feature_set_version=champion.feature_set_version,
        proba=proba,
        rule=champion.decision,
        fit_windows=registry.windows_of(champion.tags.get("fit_windows")),
        version=champion.version,
    )


def _plots(result: TrainResult) -> dict[str, bytes]:
    # Imported here so that scoring runs, which load these definitions too, skip matplotlib.
    from fraud_assets.lib.plots import importances_png, pr_curve_png, reliability_png

    v = result.validation
    plots = {
        "pr_curve.png": pr_curve_png(*result.pr_curve, v.ap),
        "reliability.png": reliability_png(result.reliability, v.ece),
    }
    if result.importances:
        plots["feature_importance.png"] = importances_png(result.importances)
    return plots


#: Validation rows kept with each model version as its reference for drift.
REFERENCE_ROWS = 20_000


def _gate(
    result: TrainResult, champion: promotion.Scores | None, config: CandidateConfig
) -> promotion.GateDecision:
    """The promotion gate's decision on a trained candidate (``lib/promotion.py``)."""
    fs, valid = result.feature_set, result.validation_features
    candidate = promotion.Scores(
        fs.semantics, fs.version, valid["fraud_probability"].to_numpy(), result.decision
    )
    return promotion.decide(
        valid["is_fraud"].to_numpy(),
        valid["amt"].to_numpy(),
        result.validation_windows,
        candidate,
        champion,
        (fs.semantics, fs.version),
        config.gate(),
    )


def _register(
    context: dg.AssetExecutionContext,
    mlflow_registry: MlflowResource,
    object_store: ObjectStoreResource,
    result: TrainResult,
    decision: promotion.GateDecision,
    plots: dict[str, bytes],
) -> registry.RegisteredModel:
    """Log and register the candidate with its gate decision and its drift reference."""
    run_tags = {"dagster_run_id": context.run.run_id, "dagster_asset": context.asset_key.path[-1]}
    reg = mlflow_registry.register(result, run_tags, plots)
    mlflow_registry.tag(
        reg.version,
        {
            "gate_passed": str(decision.passed),
            "gate_reason": decision.reason[:500],
            **{f"gate_{k}": repr(v) for k, v in decision.as_dict().items() if isinstance(v, float)},
        },
    )
    valid = result.validation_features
    reference = valid.sample(n=min(valid.height, REFERENCE_ROWS), seed=0)
    object_store.store().put_parquet(registry.reference_key(reg.name, reg.version), reference)
    return reg


def _candidate_metadata(
    mlflow_registry: MlflowResource,
    reg: registry.RegisteredModel,
    result: TrainResult,
    decision: promotion.GateDecision,
    plots: dict[str, bytes],
) -> dict[str, object]:
    fs, v = result.feature_set, result.validation
    metadata = {
        "model_name": reg.name,
        "model_version": reg.version,
        "model_kind": result.params.model,
        "feed_semantics": fs.semantics,
        "feature_set_version": fs.version,
        "serving_runtime": result.runtime,
        "mlflow_run_id": reg.run_id,
        "mlflow_tracking": mlflow_registry.describe(),
        **v.as_dict(),
        "min_expected_loss": result.decision.min_expected_loss,
        "odds_factor": result.calibration.odds_factor,
        "train_rows": result.train_rows,
        "fit_rows": result.fit_rows,
        "fit_seconds": round(result.fit_seconds, 2),
        "fit_windows": registry.windows_json(result.fit_windows),
        "validation_windows": registry.windows_json(result.validation_windows),
        "live_rows": result.live_rows,
        "gate": decision.reason,
        **{f"gate_{k}": val for k, val in decision.as_dict().items() if isinstance(val, float)},
        **{name.removesuffix(".png"): image(png, name) for name, png in plots.items()},
    }
    url = mlflow_registry.run_url(reg.run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    return metadata


def _train_candidate(
    context: dg.AssetExecutionContext,
    config: CandidateConfig,
    mlflow_registry: MlflowResource,
    object_store: ObjectStoreResource,
    feed: FeedResource,
    raw_training_data: pl.DataFrame,
    live_training_rows: pl.DataFrame,
) -> dg.MaterializeResult:
    """Train, log and register one candidate for the configured feed, then gate it."""
    fs = for_semantics(feed.semantics)
    champion_info = _current_champion(mlflow_registry)
    live = live_training_rows if live_training_rows.height else None
    context.log.info(
        f"training {config.model_kind()} for {fs.semantics!r} feeds ({fs.version}) on "
        f"{raw_training_data.height:,} training rows and "
        f"{0 if live is None else live.height:,} labelled live rows"
    )
    result = train(raw_training_data, fs, config.params(), live)
    decision = _gate(result, _champion_scores(mlflow_registry, champion_info, result), config)
    plots = _plots(result)
    reg = _register(context, mlflow_registry, object_store, result, decision, plots)
    context.log.info(
        f"model version {reg.version}: {decision.reason} -> {'pass' if decision.passed else 'fail'}"
    )
    return dg.MaterializeResult(
        metadata=_candidate_metadata(mlflow_registry, reg, result, decision, plots),
        check_results=[
            dg.AssetCheckResult(
                check_name="beats_champion",
                passed=decision.passed,
                metadata={"reason": decision.reason, "candidate_version": reg.version},
            )
        ],
    )


@dg.asset(kinds={"sklearn", "mlflow"}, check_specs=[_check_spec("rf_model")])
def rf_model(
    context: dg.AssetExecutionContext,
    config: RfModelConfig,
    mlflow_registry: MlflowResource,
    object_store: ObjectStoreResource,
    feed: FeedResource,
    raw_training_data: pl.DataFrame,
    live_training_rows: pl.DataFrame,
) -> dg.MaterializeResult:
    """A RandomForest for the configured feed's semantics, validated on the latest window of
    the data as it would be served, with calibrated probabilities and an expected-cost
    decision. It is logged to MLflow and registered as a candidate; the blocking check is the
    promotion gate against the champion."""
    return _train_candidate(
        context, config, mlflow_registry, object_store, feed, raw_training_data, live_training_rows
    )


@dg.asset(kinds={"sklearn", "mlflow"}, check_specs=[_check_spec("hgb_model")])
def hgb_model(
    context: dg.AssetExecutionContext,
    config: HgbModelConfig,
    mlflow_registry: MlflowResource,
    object_store: ObjectStoreResource,
    feed: FeedResource,
    raw_training_data: pl.DataFrame,
    live_training_rows: pl.DataFrame,
) -> dg.MaterializeResult:
    """The challenger: HistGradientBoosting on the same features, split, calibration and gate as
    ``rf_model``, registered under the same model name so the two compete for ``champion``."""
    return _train_candidate(
        context, config, mlflow_registry, object_store, feed, raw_training_data, live_training_rows
    )


CANDIDATES = ("rf_model", "hgb_model")


@dg.asset(kinds={"mlflow"}, deps=[*CANDIDATES, "card_state"])
def champion_model(
    context: dg.AssetExecutionContext, mlflow_registry: MlflowResource
) -> dg.MaterializeResult:
    """The registry's ``champion`` alias, moved to the best candidate trained in this run (it
    only runs when every candidate in the run passed its blocking ``beats_champion`` check).
    Scoring always loads ``models:/<name>@champion``; the history of champions is kept as a
    registered-model tag, so a rollback knows the previous one."""
    candidates: dict[str, tuple[str, float]] = {}
    for key in CANDIDATES:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is None or event.asset_materialization is None or event.run_id != context.run_id:
            continue
        meta = event.asset_materialization.metadata
        candidates[key] = (str(meta["model_version"].value), float(meta["ap"].value))
    if not candidates:
        raise dg.Failure(
            f"no candidate ({', '.join(CANDIDATES)}) was trained in this run; "
            "materialize one together with champion_model"
        )
    chosen, why = promotion.choose(candidates)
    version = candidates[chosen][0]
    previous = _current_champion(mlflow_registry)
    mlflow_registry.promote(version, why)
    champ = mlflow_registry.version(version)
    context.log.info(f"champion -> version {version}: {why}")
    return dg.MaterializeResult(
        metadata={
            "model_name": mlflow_registry.model_name,
            "champion_version": version,
            "champion_asset": chosen,
            "reason": why,
            "previous_champion": previous.version if previous else "none",
            "min_expected_loss": champ.threshold,
            "feed_semantics": champ.semantics,
            "feature_set_version": champ.feature_set_version,
        }
    )
