"""The generated data every test shares: small but fraud-rich, split in time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fraud_assets.lib.generator import GeneratorConfig

#: Small but fraud-rich: ~120 cards over four months.
SMALL = GeneratorConfig(
    n_cards=120,
    start=dt.date(2020, 1, 1),
    end=dt.date(2020, 5, 1),
    compromises_per_card_year=1.0,
    seed=11,
)


SPLIT = dt.datetime(2020, 4, 10)


@dataclass
class Dataset:
    public: pl.DataFrame  # public CSV layout
    canonical: pl.DataFrame
    train_csv: Path
    test_csv: Path
