"""Payloads as the transactions API sends them: the real sample, good and hostile bodies, and
bad rows with the reason each must be refused for."""

import datetime as dt
import json

# A real response body from shared/API.md, as the JSON string `response.json()` returns.
REAL_INNER = (
    '{"columns":["cc_num","merchant","category","amt","first","last","gender","street","city",'
    '"state","zip","lat","long","city_pop","job","dob","trans_num","merch_lat","merch_long",'
    '"is_fraud","current_time"],"index":[301199],"data":[[4497913965512794052,"fraud_Berge, '
    'Kautzer and Harris","personal_care",60.16,"Scott","Edwards","M","838 Amy Street Suite 107",'
    '"Pembroke","NC",28372,34.6902,-79.1834,14783,"Hospital doctor","1955-11-07",'
    '"3cb54a489fb351f73a7db98f6c7bb1ad",34.38451,-78.621062,0,1730134684025]]}'
)


REAL_BODY = json.dumps(REAL_INNER).encode()  # on the wire it is JSON-encoded once more


ARRIVED = dt.datetime(2024, 10, 28, 16, 58, 5)


COLUMNS = json.loads(REAL_INNER)["columns"]


GOOD_ROW = json.loads(REAL_INNER)["data"][0]


def body_of(rows: list[list], columns: list = COLUMNS) -> bytes:
    return json.dumps(
        json.dumps({"columns": columns, "index": [0] * len(rows), "data": rows})
    ).encode()


def with_value(column: str, value: object, trans_num: str | None = None) -> list:
    row = list(GOOD_ROW)
    row[COLUMNS.index(column)] = value
    if trans_num:
        row[COLUMNS.index("trans_num")] = trans_num
    return row


HOSTILE_BODIES = {
    "columns-is-an-object": json.dumps(json.dumps({"columns": {"a": 1}, "data": []})).encode(),
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "data-is-a-string": json.dumps(json.dumps({"columns": COLUMNS, "data": "x"})).encode(),
    "not-json": b"\xff\xfe garbage",
    "bare-number": b"42",
    "repeated-column": json.dumps(json.dumps({"columns": ["a", "a"], "data": []})).encode(),
}


BAD_ROWS = {
    "trans_num-300-chars": (with_value("trans_num", "a" * 300), "trans_num"),
    "trans_num-with-NUL": (with_value("trans_num", "ab\x00cd"), "trans_num"),
    "trans_num-path": (with_value("trans_num", "../../etc/passwd"), "trans_num"),
    "NUL-in-a-string": (with_value("city", "Pem\x00broke"), "NUL"),
    "huge-string": (with_value("street", "x" * 5000), "longer than"),
    "amount-inf": (with_value("amt", float("inf")), "finite"),
    "amount-1e300": (with_value("amt", 1e300), "outside"),
    "amount-negative": (with_value("amt", -1.0), "outside"),
    "amount-true": (with_value("amt", True), "finite number"),
    "zip-1.7": (with_value("zip", 1.7), "whole number"),
    "is_fraud-7": (with_value("is_fraud", 7), "outside 0..1"),
    "gender-Z": (with_value("gender", "Z"), "gender must be one of F, M"),
    "category-unknown": (with_value("category", "casino"), "category"),
    "dob-not-a-date": (with_value("dob", "1955-13-45"), "real YYYY-MM-DD"),
    "year-10000": (with_value("current_time", 253_402_300_800_001), "between 1970 and 9999"),
    "current_time-1938": (with_value("current_time", -1_000_000_000_000), "between 1970"),
    "current_time-far-from-arrival": (with_value("current_time", 1_600_000_000_000), "more than"),
    "lat-out-of-range": (with_value("lat", 123.0), "outside"),
    "cc_num-letters": (with_value("cc_num", "4000abc"), "cc_num"),
    "city_pop-text": (with_value("city_pop", "many"), "whole number"),
    "lone-surrogate": (with_value("first", "Sc\ud800tt"), "cannot be encoded as UTF-8"),
    "escape-character": (with_value("street", "838 \x1b[31mAmy"), "control character"),
    "newline": (with_value("job", "doctor\nrm -rf"), "control character"),
    "bidi-override": (with_value("merchant", "fraud_\u202eevil"), "control character"),
    "line-separator": (with_value("city", "Pem\u2028broke"), "control character"),
    "cc_num-arabic-indic-digits": (with_value("cc_num", "\u0664\u0664\u0669" * 4), "0-9"),
    "cc_num-fullwidth-digits": (with_value("cc_num", "\uff14" * 16), "0-9"),
    "dob-arabic-indic-digits": (with_value("dob", "\u0661\u0669\u0665\u0665-11-07"), "dob"),
    "dob-1899": (with_value("dob", "1899-12-31"), "before 1900"),
    "dob-after-the-transaction": (with_value("dob", "2024-10-29"), "after the transaction"),
}
