"""Training assets through dg.materialize: real HTTP download, MLflow store and registry, the
card state, and the promotion gate. Each gate test trains on a platform of its own."""

import hashlib

import dagster as dg
import numpy as np
import polars as pl
import pytest
import skops.io

from fraud_assets.definitions import defs
from fraud_assets.lib import registry
from fraud_assets.lib.card_state import PROFILES_TABLE
from fraud_assets.lib.features.profile import PROFILE_SCHEMA
from fraud_assets.lib.model import build_pipeline, default_params
from fraud_assets_tests.helpers.platform import TRAINING_ASSETS, Platform, make_platform

ALL_TRAINING = (*TRAINING_ASSETS, "hgb_model")
TRAIN = [defs.get_assets_def(k) for k in ALL_TRAINING]
WEAK_RF = {"n_estimators": 1, "max_depth": 1, "max_features": 0.05, "n_jobs": 1}
STRONG_RF = {"n_estimators": 30, "n_jobs": 2}


def _registry(platform: Platform) -> tuple[str, str]:
    res = platform.resources["mlflow_registry"]
    return res.tracking_uri, res.model_name


def _train(platform: Platform, rf: dict | None = None, hgb: dict | None = None, **kw):  # noqa: ANN003
    ops = {}
    if rf is not None:
        ops["rf_model"] = {"config": rf}
    if hgb is not None:
        ops["hgb_model"] = {"config": hgb}
    selection = [*TRAINING_ASSETS[:3], *ops, "champion_model"]
    return dg.materialize(
        TRAIN, selection=selection, resources=platform.resources, run_config={"ops": ops}, **kw
    )


@pytest.fixture
def weak_champion(tmp_path, standin_url):
    """A platform whose champion is a one-split stump, let through lowered first-model bars."""
    with pytest.MonkeyPatch.context() as mp:
        platform = make_platform(mp, tmp_path, standin_url)
        lenient = {**WEAK_RF, "min_ap": 0.0, "min_roc_auc": 0.0}
        assert _train(platform, rf=lenient).success
        yield platform


def test_raw_training_data_keeps_the_original_bytes_in_object_storage(trained, dataset) -> None:
    store = trained.resources["object_store"].store()
    assert store.get_bytes("raw/training/fraudTrain.csv") == dataset.train_csv.read_bytes()
    frame = store.get_parquet("assets/raw_training_data.parquet")
    assert frame.height == dataset.train_csv.read_text().count("\n") - 1


def test_card_state_holds_one_profile_per_card_and_category(trained, dataset) -> None:
    wh = trained.resources["warehouse"].warehouse()
    profiles = wh.read(PROFILES_TABLE, PROFILE_SCHEMA)
    train_rows = pl.read_csv(dataset.train_csv, infer_schema_length=0)
    assert profiles.filter(pl.col("category") == "*").height == train_rows["cc_num"].n_unique()
    assert profiles["profile_key"].is_unique().all()
    card_total = profiles.filter(pl.col("category") == "*")["n"].sum()
    assert card_total == train_rows.height


def test_first_model_is_logged_registered_tagged_and_made_champion(trained) -> None:
    uri, name = _registry(trained)
    champ = registry.get_champion(uri, name)
    assert champ is not None and champ.version == "1"
    assert champ.semantics == "arrival" and champ.feature_set_version == "arrival-v1"
    assert champ.decision.min_expected_loss == 5.0 and 0 < champ.calibration.odds_factor < 1
    assert champ.metrics["val_ap"] > 0.5 and champ.tags["gate_passed"] == "True"
    assert registry.champion_history(uri, name)[-1]["version"] == "1"


def test_models_are_stored_in_a_format_that_runs_no_code_and_cached_per_version(
    trained, tmp_path
) -> None:
    uri, name = _registry(trained)
    cache = tmp_path / "cache"
    pipeline = registry.cached_pipeline(cache, uri, name, "1")
    cached = cache / name / "1" / registry.MODEL_FILE
    assert cached.is_file() and hasattr(pipeline, "predict_proba")
    assert registry.load_model_file(cached) is not None  # loads again with no registry at all


def test_a_tampered_cache_is_never_loaded(trained, tmp_path) -> None:
    uri, name = _registry(trained)
    cache = tmp_path / "cache"
    digest = registry.get_version(uri, name, "1").tags[registry.DIGEST_TAG]
    genuine = registry.cached_pipeline(cache, uri, name, "1", digest)
    cached = cache / name / "1" / registry.MODEL_FILE
    assert sorted(p.name for p in cached.parent.iterdir()) == [registry.MODEL_FILE]  # no pickle
    forged = build_pipeline(default_params("rf", n_estimators=2))  # a valid skops file of
    forged.fit(np.zeros((4, genuine[-1].n_features_in_)), [0, 1, 0, 1])  # another model
    skops.io.dump(forged, cached)  # swapped in by whoever can write the cache
    pipeline = registry.cached_pipeline(cache, uri, name, "1", digest)  # downloaded again
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    x = np.zeros((1, genuine[-1].n_features_in_))
    assert (pipeline.predict_proba(x) == genuine.predict_proba(x)).all()


def test_the_light_champion_lookup_agrees_with_mlflow(trained) -> None:
    uri, name = _registry(trained)
    light, full = registry.champion_pointer(uri, name), registry.get_champion(uri, name)
    assert (light.version, light.tags, light.calibration) == (
        full.version,
        full.tags,
        full.calibration,
    )
    assert registry.champion_pointer(uri, "no_such_model") is None


def test_a_model_file_with_a_foreign_type_is_refused(tmp_path) -> None:
    import skops.io

    path = tmp_path / "evil.skops"
    skops.io.dump({"f": pl.DataFrame}, path)  # any type outside the allow-list
    with pytest.raises(ValueError, match="not allowed"):
        registry.load_model_file(path)


def test_a_weak_candidate_is_not_promoted(trained) -> None:
    uri, name = _registry(trained)
    before = registry.get_champion(uri, name).version
    result = _train(trained, rf=WEAK_RF, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "interval" in check.metadata["reason"].value
    assert registry.get_champion(uri, name).version == before
    version = result.asset_materializations_for_node("rf_model")[0].metadata["model_version"]
    tags = registry.get_version(uri, name, str(version.value)).tags
    assert tags["gate_passed"] == "False" and "interval" in tags["gate_reason"]


def test_a_clearly_better_candidate_replaces_the_champion(weak_champion) -> None:
    uri, name = _registry(weak_champion)
    assert registry.get_champion(uri, name).version == "1"
    result = _train(weak_champion, rf=STRONG_RF)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata["reason"].value
    assert registry.get_champion(uri, name).version == "2"
    meta = result.asset_materializations_for_node("rf_model")[0].metadata
    assert meta["gate_ci_low"].value > 0 and meta["gate_champion_ap"].value < meta["ap"].value
    assert registry.previous_champion(uri, name) == "1"


def test_better_of_two_passing_candidates_becomes_champion_and_says_why(weak_champion) -> None:
    uri, name = _registry(weak_champion)
    result = _train(weak_champion, rf=STRONG_RF, hgb={"max_iter": 60}, raise_on_error=False)
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks), [c.metadata["reason"].value for c in checks]
    assert result.success
    versions = {
        key: result.asset_materializations_for_node(key)[0].metadata
        for key in ("rf_model", "hgb_model")
    }
    best = max(versions, key=lambda k: versions[k]["ap"].value)
    best_version = str(versions[best]["model_version"].value)
    champ_meta = result.asset_materializations_for_node("champion_model")[0].metadata
    assert registry.get_champion(uri, name).version == best_version
    assert champ_meta["champion_asset"].value == best
    assert f"{best} version {best_version}" in champ_meta["reason"].value
