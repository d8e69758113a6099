"""A seeded generator of card transactions in the public fraudTrain/fraudTest layout.

It is our own simple simulation, not a copy of any public generator. Legitimate spending
follows each cardholder's daily rhythm; a few cards are compromised and then see a burst of
night-time, high-amount purchases in risky categories over one to three days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lib.schema import CATEGORIES, TRAINING_CSV_COLUMNS

_FIRST_F = [
    "Mary",
    "Jennifer",
    "Linda",
    "Susan",
    "Karen",
    "Nancy",
    "Lisa",
    "Sandra",
    "Amanda",
    "Emily",
    "Rachel",
    "Laura",
    "Kimberly",
    "Ashley",
    "Megan",
    "Julie",
    "Heather",
]
_FIRST_M = [
    "James",
    "John",
    "Robert",
    "Michael",
    "David",
    "William",
    "Richard",
    "Thomas",
    "Daniel",
    "Paul",
    "Mark",
    "Steven",
    "Kevin",
    "Brian",
    "Jeff",
    "Scott",
    "Eric",
]
_LAST = [
    "Smith",
    "Johnson",
    "Brown",
    "Miller",
    "Davis",
    "Wilson",
    "Moore",
    "Taylor",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Lopez",
    "Hill",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Carter",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Evans",
]
_STREET_NAMES = ["Oak", "Pine", "Maple", "Cedar", "Elm", "Lake", "Hill", "Park", "Ridge", "Mill"]
_STREET_KINDS = ["Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way"]
_JOBS = [
    "Nurse",
    "Teacher",
    "Accountant",
    "Electrician",
    "Hospital doctor",
    "Chemist",
    "Mechanical engineer",
    "Retail manager",
    "Solicitor",
    "Architect",
    "Designer",
    "Pharmacist",
    "Surveyor",
    "Librarian",
    "Programmer, systems",
    "Police officer",
]
# (city, state, zip, lat, long, population)
_CITIES = [
    ("Columbia", "SC", 29209, 33.9659, -80.9355, 333497),
    ("Pembroke", "NC", 28372, 34.6902, -79.1834, 14783),
    ("Springfield", "IL", 62701, 39.7990, -89.6440, 116250),
    ("Dayton", "OH", 45402, 39.7589, -84.1916, 140407),
    ("Boise", "ID", 83702, 43.6150, -116.2023, 228959),
    ("Fresno", "CA", 93721, 36.7378, -119.7871, 542107),
    ("Burlington", "VT", 5401, 44.4759, -73.2121, 44743),
    ("Tulsa", "OK", 74103, 36.1540, -95.9928, 413066),
    ("Duluth", "MN", 55802, 46.7867, -92.1005, 86697),
    ("Mobile", "AL", 36602, 30.6954, -88.0399, 187041),
    ("Laramie", "WY", 82070, 41.3114, -105.5911, 32711),
    ("Harrisburg", "PA", 17101, 40.2732, -76.8867, 50099),
    ("Billings", "MT", 59101, 45.7833, -108.5007, 117116),
    ("Bangor", "ME", 4401, 44.8016, -68.7712, 31753),
    ("El Paso", "TX", 79901, 31.7619, -106.4850, 678815),
    ("Athens", "GA", 30601, 33.9519, -83.3576, 127315),
]
_CORP = [
    "{a} and Sons",
    "{a} Inc",
    "{a}, {b} and {c}",
    "{a}-{b}",
    "{a} LLC",
    "{a} Group",
    "{a} Ltd",
    "{a} PLC",
    "{a}, {b} and {c}",
]

# Per-category legitimate spending: (share of purchases, lognormal mean, lognormal sigma).
_LEGIT = {
    "gas_transport": (0.10, 4.0, 0.5),
    "grocery_pos": (0.10, 4.3, 0.5),
    "home": (0.09, 3.8, 0.9),
    "shopping_pos": (0.09, 3.7, 1.0),
    "kids_pets": (0.09, 3.6, 0.9),
    "shopping_net": (0.08, 3.6, 1.0),
    "entertainment": (0.07, 3.7, 0.9),
    "food_dining": (0.07, 3.5, 0.8),
    "personal_care": (0.07, 3.2, 0.9),
    "health_fitness": (0.07, 3.6, 0.7),
    "misc_pos": (0.06, 3.5, 1.0),
    "misc_net": (0.05, 3.4, 1.0),
    "grocery_net": (0.04, 3.9, 0.4),
    "travel": (0.02, 3.4, 1.6),
}
# Fraud favours a few categories, with typical amount ranges (low, high) in dollars.
_FRAUD = {
    "shopping_net": (0.28, 700.0, 1380.0),
    "misc_net": (0.16, 600.0, 1050.0),
    "grocery_pos": (0.26, 250.0, 390.0),
    "shopping_pos": (0.10, 600.0, 1200.0),
    "gas_transport": (0.08, 5.0, 25.0),
    "misc_pos": (0.04, 150.0, 400.0),
    "home": (0.03, 200.0, 350.0),
    "entertainment": (0.03, 300.0, 600.0),
    "food_dining": (0.02, 90.0, 130.0),
}
# Legitimate hour-of-day profile: low at night, busy through the day.
_HOUR_W = np.array([2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 9, 8, 8, 8, 8, 8, 8, 7, 6, 5, 3, 2], float)
_FRAUD_HOUR_W = np.array(
    [9, 9, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10, 10], float
)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate: how many cards, over which dates, and how much fraud."""

    n_cards: int = 200
    start: dt.date = dt.date(2020, 1, 1)
    end: dt.date = dt.date(2020, 3, 1)
    tx_per_card_per_day: float = 2.0
    compromises_per_card_year: float = 0.5
    n_merchants: int = 300
    seed: int = 42
    #: Fraud's categories and amounts, ``category -> (share, low $, high $)``; default: the
    #: module's pattern. Another pattern makes data a model trained elsewhere fails on.
    fraud_profile: tuple[tuple[str, float, float, float], ...] | None = None


def _choice(rng: np.random.Generator, items: list, n: int) -> np.ndarray:
    return np.asarray(items, dtype=object)[rng.integers(0, len(items), n)]


def _cards(rng: np.random.Generator, n: int) -> pl.DataFrame:
    city_idx = rng.integers(0, len(_CITIES), n)
    cities = [_CITIES[i] for i in city_idx]
    gender = np.where(rng.random(n) < 0.5, "F", "M")
    first = np.where(gender == "F", _choice(rng, _FIRST_F, n), _choice(rng, _FIRST_M, n))
    digits = [int(d) for d in rng.choice([15, 16, 16, 16, 19], n)]
    cc = [
        str(rng.integers(10 ** (d - 7), 10 ** (d - 6))) + f"{rng.integers(0, 10**6):06d}"
        for d in digits
    ]
    birth = dt.date(1935, 1, 1) + np.array(
        [dt.timedelta(days=int(x)) for x in rng.integers(0, 365 * 68, n)]
    )
    return pl.DataFrame(
        {
            "cc_num": cc,
            "first": first,
            "last": _choice(rng, _LAST, n),
            "gender": gender,
            "street": [
                f"{rng.integers(1, 9999)} {s} {k}"
                for s, k in zip(
                    _choice(rng, _STREET_NAMES, n), _choice(rng, _STREET_KINDS, n), strict=False
                )
            ],
            "city": [c[0] for c in cities],
            "state": [c[1] for c in cities],
            "zip": [c[2] for c in cities],
            "lat": [round(c[3] + rng.normal(0, 0.05), 4) for c in cities],
            "long": [round(c[4] + rng.normal(0, 0.05), 4) for c in cities],
            "city_pop": [c[5] for c in cities],
            "job": _choice(rng, _JOBS, n),
            "dob": [d.isoformat() for d in birth],
            "activity": rng.gamma(4.0, 0.25, n),
        }
    ).unique("cc_num", keep="first", maintain_order=True)


def _merchants(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    by_category: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        a, b, c = _choice(rng, _LAST, 3)
        name = "fraud_" + _CORP[rng.integers(0, len(_CORP))].format(a=a, b=b, c=c)
        by_category[cat].append(name)
    return {c: np.asarray(sorted(set(v)), dtype=object) for c, v in by_category.items()}


def _times(rng: np.random.Generator, days: np.ndarray, hour_w: np.ndarray, start: dt.datetime):
    hours = rng.choice(24, len(days), p=hour_w / hour_w.sum())
    secs = days * 86400 + hours * 3600 + rng.integers(0, 3600, len(days))
    return np.datetime64(start, "s") + secs.astype("timedelta64[s]")


def generate_transactions(config: GeneratorConfig = GeneratorConfig()) -> pl.DataFrame:
    """Generate transactions in the public CSV layout, sorted by time, with a fresh row index."""
    rng = np.random.default_rng(config.seed)
    cards = _cards(rng, config.n_cards)
    merchants = _merchants(rng, config.n_merchants)
    n_days = (config.end - config.start).days
    start = dt.datetime.combine(config.start, dt.time())
    cats = list(_LEGIT)
    cat_p = np.array([_LEGIT[c][0] for c in cats])
    cat_p = cat_p / cat_p.sum()

    # Legitimate purchases: a Poisson count per card-day, spread over the day's hours.
    per_card = rng.poisson(config.tx_per_card_per_day * cards["activity"].to_numpy() * n_days)
    card_idx = np.repeat(np.arange(cards.height), per_card)
    n = card_idx.size
    legit_cat = np.asarray(cats, dtype=object)[rng.choice(len(cats), n, p=cat_p)]
    mu = np.array([_LEGIT[c][1] for c in legit_cat])
    sigma = np.array([_LEGIT[c][2] for c in legit_cat])
    legit = {
        "card": card_idx,
        "category": legit_cat,
        "amt": np.round(np.clip(rng.lognormal(mu, sigma), 1.0, 25000.0), 2),
        "time": _times(rng, rng.integers(0, n_days, n), _HOUR_W, start),
        "is_fraud": np.zeros(n, dtype=np.int8),
    }

    # Fraud bursts: cards are compromised at a steady rate, each time on a random day.
    n_bad = max(1, int(round(cards.height * config.compromises_per_card_year * n_days / 365)))
    bad_cards = rng.choice(cards.height, n_bad, replace=True)
    burst = rng.integers(3, 13, n_bad)
    f_card = np.repeat(bad_cards, burst)
    burst_day = np.repeat(rng.integers(0, max(n_days - 3, 1), n_bad), burst)
    f_day = burst_day + rng.integers(0, 3, f_card.size)
    profile = (
        {c: (share, low, high) for c, share, low, high in config.fraud_profile}
        if config.fraud_profile
        else _FRAUD
    )
    fcats = list(profile)
    fp = np.array([profile[c][0] for c in fcats])
    f_cat = np.asarray(fcats, dtype=object)[rng.choice(len(fcats), f_card.size, p=fp / fp.sum())]
    lo = np.array([profile[c][1] for c in f_cat])
    hi = np.array([profile[c][2] for c in f_cat])
    fraud = {
        "card": f_card,
        "category": f_cat,
        "amt": np.round(rng.uniform(lo, hi), 2),
        "time": _times(rng, np.minimum(f_day, n_days - 1), _FRAUD_HOUR_W, start),
        "is_fraud": np.ones(f_card.size, dtype=np.int8),
    }

    tx = {k: np.concatenate([legit[k], fraud[k]]) for k in legit}
    m = tx["card"].size
    merchant = np.empty(m, dtype=object)
    for cat in CATEGORIES:
        mask = tx["category"] == cat
        merchant[mask] = merchants[cat][rng.integers(0, len(merchants[cat]), mask.sum())]
    words = rng.integers(0, 2**63, (m, 2), dtype=np.int64)
    trans_num = [f"{int(a):016x}{int(b):016x}" for a, b in words]
    card_rows = cards.drop("activity")[tx["card"].tolist()]
    event = pl.Series("event", tx["time"].astype("datetime64[ms]"))
    df = card_rows.with_columns(
        event_time=event,
        merchant=pl.Series(merchant.tolist(), dtype=pl.String),
        category=pl.Series(tx["category"].tolist(), dtype=pl.String),
        amt=pl.Series(tx["amt"]),
        trans_num=pl.Series(trans_num),
        merch_lat=(pl.col("lat") + pl.Series(rng.uniform(-1, 1, m))).round(6),
        merch_long=(pl.col("long") + pl.Series(rng.uniform(-1, 1, m))).round(6),
        is_fraud=pl.Series(tx["is_fraud"]).cast(pl.Int64),
    ).sort("event_time", "trans_num")
    return to_public_layout(df)


def to_public_layout(df: pl.DataFrame) -> pl.DataFrame:
    """Shape a canonical-like frame (with ``event_time``) into the public CSV columns."""
    out = df.with_columns(
        trans_date_trans_time=pl.col("event_time").dt.strftime("%Y-%m-%d %H:%M:%S"),
        # The public files' unix_time lies exactly seven years before the event time.
        unix_time=pl.col("event_time").dt.offset_by("-7y").dt.epoch("s"),
        is_fraud=pl.col("is_fraud").cast(pl.Int64),
    ).with_row_index("")
    return out.select(TRAINING_CSV_COLUMNS).with_columns(pl.col("").cast(pl.Int64))


def write_csv(df: pl.DataFrame, path) -> None:  # noqa: ANN001 - path-like
    """Write a public-layout frame as CSV, gzip-compressed when the name ends in .gz."""
    import gzip

    # The public files name the index column with nothing at all, not with "".
    text = df.write_csv()
    _header, _, body = text.partition("\n")
    text = ",".join(df.columns) + "\n" + body
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
