"""``Vec``: a column of a few rows as a Python list, with polars' null semantics and the handful
of expression methods the feature formulas use.

The profile features are written once, as formulas over columns (``profile._formulas``). Given
``pl.col`` they build the polars expressions that training and batch scoring run; given a
``Vec`` getter they compute the same values row by row in Python floats, which is what a small
batch of the decision service can afford (a polars query costs about a millisecond however few
its rows, and a numpy call a few microseconds however few its values). Python's float
arithmetic is the same IEEE double arithmetic, and ``log1p``, ``pow`` and ``sqrt`` are the C
library's, as polars calls them, so the values are the same bit for bit (the parity tests).
Null (``None``) behaves as in polars: it propagates through arithmetic, comparisons and
``clip``, and only ``fill_null`` replaces it; NaN is a value, as in polars.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np
import polars as pl

_NAN, _INF = math.nan, math.inf
#: What each dtype's values are in Python.
_KINDS: dict[object, type] = {
    pl.Float64: float,
    pl.Int8: int,
    pl.Int32: int,
    pl.Int64: int,
    "float64": float,
    "int8": int,
    "int32": int,
    "int64": int,
}


def _log1p(x: float) -> float:
    try:
        return math.log1p(x)
    except ValueError:  # x <= -1: what the C function gives
        return -_INF if x == -1 else _NAN


def _div(a: float, b: float) -> float:
    """IEEE division, as numpy and polars divide: x/0 is ±inf, 0/0 and nan/0 are NaN."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return _NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)


def _pow(a: float, b: float) -> float:
    """``a ** b`` as polars and numpy compute it: a square is ``a * a`` (the C library's
    ``pow`` differs from it in the last bit on some values), any other power the C library's
    ``pow`` (where Python raises, the IEEE value)."""
    if b == 2.0:
        return a * a
    try:
        return math.pow(a, b)
    except OverflowError:
        return _INF if a > 0 or (b.is_integer() and b % 2 == 0) else -_INF
    except ValueError:
        return _NAN


def _sqrt(a: float) -> float:
    try:
        return math.sqrt(a)
    except ValueError:  # negative: NaN, as the C function gives
        return _NAN


class Vec:
    """Values of one column, None where null."""

    __slots__ = ("values",)

    def __init__(self, values: list) -> None:
        self.values = values

    @classmethod
    def of(cls, values: list[object], dtype: object = pl.Float64) -> Vec:
        """From Python values, None as null, as ``dtype`` holds them."""
        kind = _KINDS[dtype]
        return cls([None if v is None else kind(v) for v in values])

    def _binary(self, other: object, op: Callable[[float, float], float], reverse: bool) -> Vec:
        a = self.values
        b = other.values if isinstance(other, Vec) else [other] * len(a)
        if reverse:
            a, b = b, a
        pairs = zip(a, b, strict=True)
        return Vec([None if x is None or y is None else op(x, y) for x, y in pairs])

    def __add__(self, other: object) -> Vec:
        return self._binary(other, operator.add, False)

    def __radd__(self, other: object) -> Vec:
        return self._binary(other, operator.add, True)

    def __sub__(self, other: object) -> Vec:
        return self._binary(other, operator.sub, False)

    def __rsub__(self, other: object) -> Vec:
        return self._binary(other, operator.sub, True)

    def __mul__(self, other: object) -> Vec:
        return self._binary(other, operator.mul, False)

    def __rmul__(self, other: object) -> Vec:
        return self._binary(other, operator.mul, True)

    def __truediv__(self, other: object) -> Vec:
        return self._binary(other, _div, False)

    def __rtruediv__(self, other: object) -> Vec:
        return self._binary(other, _div, True)

    def __eq__(self, other: object) -> Vec:  # type: ignore[override]
        return self._binary(other, operator.eq, False)

    def __hash__(self) -> int:  # pragma: no cover - a column is no dictionary key
        raise TypeError("a Vec is not hashable")

    def pow(self, exponent: float) -> Vec:
        return self._binary(float(exponent), _pow, False)

    def sqrt(self) -> Vec:
        return Vec([None if v is None else _sqrt(v) for v in self.values])

    def log1p(self) -> Vec:
        return Vec([None if v is None else _log1p(v) for v in self.values])

    def clip(self, lower_bound: float | None = None, upper_bound: float | None = None) -> Vec:
        """As polars' ``clip``: NaN stays NaN, null stays null."""
        out = self.values
        if lower_bound is not None:
            lo = float(lower_bound)
            out = [None if v is None else (lo if v < lo else v) for v in out]
        if upper_bound is not None:
            hi = float(upper_bound)
            out = [None if v is None else (hi if v > hi else v) for v in out]
        return Vec(out)

    def fill_null(self, value: float) -> Vec:
        return Vec([value if v is None else v for v in self.values])

    def cast(self, dtype: pl.DataType | type[pl.DataType]) -> Vec:
        kind = _KINDS[dtype if isinstance(dtype, type) else type(dtype)]
        return Vec([None if v is None else kind(v) for v in self.values])

    def alias(self, _name: str) -> Vec:
        return self

    @staticmethod
    def matrix(columns: list[Vec]) -> np.ndarray:
        """The columns side by side, as ``FeatureSet.matrix`` reads them: float64, null as
        NaN (one array built, not one a column)."""
        rows = zip(*(c.values for c in columns), strict=True)
        width = len(columns)
        out = np.array([[_NAN if v is None else v for v in row] for row in rows], np.float64)
        return out.reshape(-1, width)

    def to_list(self) -> list[object]:
        """Python values, null as None (as polars' ``to_list``)."""
        return list(self.values)
