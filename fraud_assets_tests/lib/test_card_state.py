"""The decision service's card-state cache: read once per card, in the fast path's form,
dropped when ``card_state`` is written again."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from fraud_assets.lib.card_state import CachedState, WarehouseState, write_state
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.serving import FrameState
from fraud_assets.lib.warehouse import Warehouse


def test_the_cache_holds_each_card_once_read_and_forgets_a_rewritten_state(
    tmp_path: Path,
    dataset,  # noqa: ANN001
) -> None:
    fs = for_semantics("arrival")
    history = dataset.canonical
    cards = history["cc_num"].unique().sort().to_list()[:5] + ["0000000000000000"]  # one unseen
    profiles = fs.build_state(history)
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    write_state(wh, fs, profiles)
    state = CachedState(WarehouseState(wh))
    state.check()
    assert not state.holds(fs, cards)  # nothing read yet: deciding them reads the database
    got = state.vector_states(fs, cards)
    assert got == FrameState(profiles).vector_states(fs, cards)  # the same form, whoever reads
    assert got["0000000000000000"] == {}  # a card never seen is cached too, with no profile
    assert state.holds(fs, cards) and (state.hits, state.misses) == (0, len(cards))
    assert state.vector_states(fs, cards[:2]) == {c: got[c] for c in cards[:2]}
    assert (state.hits, state.misses) == (2, len(cards))
    write_state(wh, fs, profiles.with_columns(pl.col("n") + 1))  # card_state materialized again
    state.check()
    assert not state.holds(fs, cards[:1])
    again = state.vector_states(fs, cards[:1])[cards[0]]
    assert again != got[cards[0]]  # read afresh, from the new state
