"""Training assets through dg.materialize: real HTTP download, MLflow store and registry."""

import dagster as dg

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets.lib.features import FEATURE_SET_VERSION
from fraud_assets_tests.conftest import Platform


def _registry(platform: Platform) -> tuple[str, str]:
    res = platform.resources["mlflow_registry"]
    return res.tracking_uri, res.model_name


def test_raw_training_data_keeps_the_original_bytes_in_object_storage(trained, dataset) -> None:
    store = trained.resources["object_store"].store()
    assert store.get_bytes("raw/training/fraudTrain.csv") == dataset.train_csv.read_bytes()
    frame = store.get_parquet("assets/raw_training_data.parquet")
    assert frame.height == dataset.train_csv.read_text().count("\n") - 1


def test_first_model_is_logged_registered_and_made_champion(trained) -> None:
    uri, name = _registry(trained)
    champ = registry.get_champion(uri, name)
    assert champ is not None and champ.version == "1"
    assert 0 < champ.threshold <= 1 and champ.feature_set_version == FEATURE_SET_VERSION
    assert champ.metrics["val_ap"] > 0.5
    pipeline, _ = registry.load_champion(uri, name)
    assert hasattr(pipeline, "predict_proba")


def test_champion_gate_promotes_only_a_model_at_least_as_good(trained) -> None:
    uri, name = _registry(trained)
    assets = [defs.get_assets_def(k) for k in ("raw_training_data", "rf_model", "champion_model")]
    selection = ["rf_model", "champion_model"]
    weak = {
        "ops": {
            "rf_model": {
                "config": {"n_estimators": 1, "max_depth": 1, "max_features": 0.05, "n_jobs": 1}
            }
        }
    }
    result = dg.materialize(
        assets,
        selection=selection,
        resources=trained.resources,
        run_config=weak,
        raise_on_error=False,
    )
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [False]
    assert registry.get_champion(uri, name).version == "1"  # the weak model was not promoted

    strong = {"ops": {"rf_model": {"config": {"n_estimators": 30, "n_jobs": 2}}}}
    result = dg.materialize(
        assets, selection=selection, resources=trained.resources, run_config=strong
    )
    assert result.success and result.get_asset_check_evaluations()[0].passed
    assert registry.get_champion(uri, name).version == "3"


def _versions(result: dg.ExecuteInProcessResult, key: str) -> tuple[str, float]:
    meta = result.asset_materializations_for_node(key)[0].metadata
    return str(meta["model_version"].value), float(meta["ap"].value)


ALL_TRAINING = ("raw_training_data", "rf_model", "hgb_model", "champion_model")


def test_weak_challenger_fails_the_same_gate_and_is_not_promoted(trained) -> None:
    uri, name = _registry(trained)
    before = registry.get_champion(uri, name).version
    assets = [defs.get_assets_def(k) for k in ALL_TRAINING]
    weak = {"ops": {"hgb_model": {"config": {"max_iter": 1, "max_leaf_nodes": 2}}}}
    result = dg.materialize(
        assets,
        selection=["hgb_model", "champion_model"],
        resources=trained.resources,
        run_config=weak,
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.asset_key == dg.AssetKey("hgb_model") and not check.passed
    assert "vs champion AP" in check.metadata["reason"].value
    assert registry.get_champion(uri, name).version == before


def test_better_of_two_passing_candidates_becomes_champion_and_says_why(trained) -> None:
    uri, name = _registry(trained)
    assets = [defs.get_assets_def(k) for k in ALL_TRAINING]
    config = {
        "ops": {
            "rf_model": {"config": {"n_estimators": 30, "n_jobs": 2}},
            "hgb_model": {"config": {"max_iter": 60}},
        }
    }
    result = dg.materialize(
        assets,
        selection=["rf_model", "hgb_model", "champion_model"],
        resources=trained.resources,
        run_config=config,
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    rf, hgb = _versions(result, "rf_model"), _versions(result, "hgb_model")
    best_key, (best_version, _) = max(
        [("rf_model", rf), ("hgb_model", hgb)], key=lambda item: item[1][1]
    )
    champ_meta = result.asset_materializations_for_node("champion_model")[0].metadata
    assert registry.get_champion(uri, name).version == best_version
    assert champ_meta["champion_asset"].value == best_key
    assert f"{best_key} version {best_version}" in champ_meta["reason"].value
    assert registry.get_version(uri, name, hgb[0]).metrics["val_ap"] == hgb[1]
