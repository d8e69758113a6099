"""The keyed card state in the warehouse: a micro-batch reads only its own cards.

- ``card_profiles``: each card's profile (arrival feeds), one row per card and per card and
  category, indexed on ``cc_num``; frozen at the end of the training data.
- ``card_history``: the training rows an event-time feed's history features read, indexed on
  ``cc_num``; live rows of event-time feeds are read from ``live_transactions`` beside them,
  so the state grows as live rows are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.features import INPUT_COLUMNS, FeatureSet
from fraud_assets.lib.features.profile import PROFILE_SCHEMA
from fraud_assets.lib.schema import CARD_HISTORY_SCHEMA, LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

PROFILES_TABLE = "card_profiles"
HISTORY_TABLE = "card_history"


def write_state(warehouse: Warehouse, fs: FeatureSet, state: pl.DataFrame) -> int:
    """Replace the stored card state for ``fs`` with ``state`` (``fs.build_state``), atomically."""
    if fs.uses_profiles:
        warehouse.ensure_table(
            PROFILES_TABLE, PROFILE_SCHEMA, key="profile_key", indexes=["cc_num"]
        )
        return warehouse.upsert(PROFILES_TABLE, state, key="profile_key", replace=True)
    warehouse.ensure_table(HISTORY_TABLE, CARD_HISTORY_SCHEMA, indexes=["cc_num"])
    return warehouse.upsert(HISTORY_TABLE, state.cast(CARD_HISTORY_SCHEMA), replace=True)


@dataclass(frozen=True)
class WarehouseState:
    """``CardStateSource`` over the warehouse tables, read by card."""

    warehouse: Warehouse

    def state_for(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        if fs.uses_profiles:
            return self.warehouse.read(PROFILES_TABLE, PROFILE_SCHEMA, where={"cc_num": cards})
        training = self.warehouse.read(HISTORY_TABLE, CARD_HISTORY_SCHEMA, where={"cc_num": cards})
        live = self.warehouse.read(
            "live_transactions",
            LIVE_TRANSACTIONS_SCHEMA,
            columns=list(INPUT_COLUMNS),
            where={"cc_num": cards, "event_time_source": ["payload"]},
        )
        return pl.concat([training, live], how="vertical_relaxed")
