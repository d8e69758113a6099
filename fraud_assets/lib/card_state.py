"""The keyed card state in the warehouse: a micro-batch reads only its own cards.

- ``card_profiles``: each card's profile (arrival feeds), one row per card and per card and
  category, indexed on ``cc_num``; frozen at the end of the training data.
- ``card_history``: the training rows an event-time feed's history features read, indexed on
  ``cc_num``; live rows of event-time feeds are read from ``live_transactions`` and the
  decision log beside them, so the state grows as live rows are scored and decided.
- ``card_state_meta``: one row naming the state's current version, replaced with the state in
  the same transaction, so a long-lived process knows when to drop what it cached
  (``CachedState``).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import polars as pl

from fraud_assets.lib.decision_log import DECISION_LOG_SCHEMA, LOG_TABLE
from fraud_assets.lib.features import INPUT_COLUMNS, FeatureSet
from fraud_assets.lib.features.profile import PROFILE_SCHEMA
from fraud_assets.lib.schema import CARD_HISTORY_SCHEMA, LIVE_TRANSACTIONS_SCHEMA
from fraud_assets.lib.serving import by_card, vector_states_of
from fraud_assets.lib.warehouse import TableWrite, Warehouse

PROFILES_TABLE = "card_profiles"
HISTORY_TABLE = "card_history"
META_TABLE = "card_state_meta"
META_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "version": pl.String(),
    "feature_set_version": pl.String(),
    "written_at": pl.Datetime("ms"),
}


def write_state(warehouse: Warehouse, fs: FeatureSet, state: pl.DataFrame) -> int:
    """Replace the stored card state for ``fs`` with ``state`` (``fs.build_state``) and its
    version, atomically."""
    warehouse.ensure_table(META_TABLE, META_SCHEMA, key="name")
    meta = pl.DataFrame(
        [
            {
                "name": "card_state",
                "version": uuid.uuid4().hex,
                "feature_set_version": fs.version,
                "written_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            }
        ],
        schema=META_SCHEMA,
    )
    if fs.uses_profiles:
        warehouse.ensure_table(
            PROFILES_TABLE, PROFILE_SCHEMA, key="profile_key", indexes=["cc_num"]
        )
        data = TableWrite(PROFILES_TABLE, state, key="profile_key", replace=True)
    else:
        warehouse.ensure_table(HISTORY_TABLE, CARD_HISTORY_SCHEMA, indexes=["cc_num"])
        data = TableWrite(HISTORY_TABLE, state.cast(CARD_HISTORY_SCHEMA), replace=True)
    written = warehouse.write([data, TableWrite(META_TABLE, meta, key="name")])
    return written[data.table]


def state_version(warehouse: Warehouse) -> str | None:
    """The stored card state's version (None before the first ``write_state``)."""
    rows = warehouse.read(
        META_TABLE, META_SCHEMA, columns=["version"], where={"name": ["card_state"]}
    )
    return rows["version"][0] if rows.height else None


@dataclass(frozen=True)
class WarehouseState:
    """``CardStateSource`` over the warehouse tables, read by card."""

    warehouse: Warehouse

    def state_for(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        static = self.static_state(fs, cards)
        if fs.uses_profiles:
            return static
        return pl.concat([static, self.online_history(fs, cards)], how="vertical_relaxed")

    def vector_states(self, fs: FeatureSet, cards: list[str]) -> dict[str, object]:
        return vector_states_of(fs, self.static_frames(fs, cards))

    def holds(self, fs: FeatureSet, cards: list[str]) -> bool:
        return False  # every read is the database's

    def static_state(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        """What ``card_state`` wrote for ``cards``: it changes only when that is written."""
        if fs.uses_profiles:
            return self.warehouse.read(PROFILES_TABLE, PROFILE_SCHEMA, where={"cc_num": cards})
        return self.warehouse.read(HISTORY_TABLE, CARD_HISTORY_SCHEMA, where={"cc_num": cards})

    def static_frames(self, fs: FeatureSet, cards: list[str]) -> dict[str, pl.DataFrame]:
        return by_card(self.static_state(fs, cards), cards)

    def online_history(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        """The cards' live rows of an event-time feed: polled ones, and those decided by the
        decision service or the stream consumer (the decision log)."""
        if fs.uses_profiles:
            return pl.DataFrame(schema=CARD_HISTORY_SCHEMA)
        live = self.warehouse.read(
            "live_transactions",
            LIVE_TRANSACTIONS_SCHEMA,
            columns=list(INPUT_COLUMNS),
            where={"cc_num": cards, "event_time_source": ["payload"]},
        )
        decided = self.warehouse.read(
            LOG_TABLE,
            DECISION_LOG_SCHEMA,
            columns=list(INPUT_COLUMNS),
            where={"cc_num": cards, "event_time_source": ["payload"]},
        )
        return pl.concat([live, decided], how="vertical_relaxed").unique(
            "trans_num", keep="first", maintain_order=True
        )


class CachedState:
    """``CardStateSource`` for long-lived processes: the static card state (what ``card_state``
    wrote) kept per card in a bounded in-process cache, dropped whenever ``card_state`` is
    written again (``check`` compares versions), and the online part read fresh each time."""

    def __init__(self, source: WarehouseState, max_cards: int = 100_000) -> None:
        self.source, self.max_cards = source, max_cards
        self._cards: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._version: str | None = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def check(self) -> str | None:
        """Read the stored state's version; a new one empties the cache. Returns it."""
        version = state_version(self.source.warehouse)
        with self._lock:
            if version != self._version:
                self._cards.clear()
                self._version = version
        return version

    def state_for(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        static = pl.concat(list(self.static_frames(fs, cards).values()), how="vertical_relaxed")
        if fs.uses_profiles:
            return static
        return pl.concat([static, self.source.online_history(fs, cards)], how="vertical_relaxed")

    def static_frames(self, fs: FeatureSet, cards: list[str]) -> dict[str, pl.DataFrame]:
        """Each card's static state (an empty frame for a card with none), from the cache."""
        return {c: entry.frame for c, entry in self._entries(fs, cards).items()}

    def vector_states(self, fs: FeatureSet, cards: list[str]) -> dict[str, object]:
        """Each card's static state as the fast path reads it (``fs.vector_state``), made once
        per card and cached beside its frame."""
        out = {}
        for c, entry in self._entries(fs, cards).items():
            if entry.vectors is None:
                entry.vectors = fs.vector_state(entry.frame)
            out[c] = entry.vectors
        return out

    def holds(self, fs: FeatureSet, cards: list[str]) -> bool:
        """Whether every card's static state is cached."""
        with self._lock:
            return all((fs.version, c) in self._cards for c in cards)

    def _entries(self, fs: FeatureSet, cards: list[str]) -> dict[str, _Entry]:
        with self._lock:
            found = {c: self._cards.get((fs.version, c)) for c in cards}
            for c, entry in found.items():
                if entry is not None:
                    self._cards.move_to_end((fs.version, c))
        missing = [c for c, entry in found.items() if entry is None]
        self.hits += len(cards) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = self.source.static_frames(fs, missing)
            with self._lock:
                for c in missing:  # a card with no state is cached too, as an empty frame
                    found[c] = self._cards[(fs.version, c)] = _Entry(fetched[c])
                while len(self._cards) > self.max_cards:
                    self._cards.popitem(last=False)
        return found  # type: ignore[return-value]


@dataclass
class _Entry:
    """A card's cached static state: its frame, and the fast path's form of it once made."""

    frame: pl.DataFrame
    vectors: object = None
