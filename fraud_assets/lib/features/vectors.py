"""``Vec``: a column of a few rows held in numpy, with polars' null semantics and the handful of
expression methods the feature formulas use.

The profile features are written once, as formulas over columns (``profile._formulas``). Given
``pl.col`` they build the polars expressions that training and batch scoring run; given a
``Vec`` getter they compute the same values on numpy arrays, which is what a small batch of the
decision service can afford (a polars query costs about a millisecond however few its rows).
Null behaves as in polars: it propagates through arithmetic, comparisons and ``clip``, and only
``fill_null`` replaces it; NaN is a value, as in polars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

_DTYPES: dict[type[pl.DataType], np.dtype] = {
    pl.Float64: np.dtype(np.float64),
    pl.Int8: np.dtype(np.int8),
    pl.Int32: np.dtype(np.int32),
    pl.Int64: np.dtype(np.int64),
}


def _log1p(x: float) -> float:
    try:
        return math.log1p(x)
    except ValueError:  # x <= -1: what the C function gives
        return -math.inf if x == -1 else math.nan


@dataclass(frozen=True)
class Vec:
    """Values (anything where ``null``) and a null mask, of one length."""

    values: np.ndarray
    null: np.ndarray

    @classmethod
    def of(cls, values: list[object], dtype: type = np.float64) -> Vec:
        """From Python values, None as null."""
        null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        filled = [0 if v is None else v for v in values]
        return cls(np.asarray(filled, dtype=dtype), null)

    def _binary(self, other: object, op: np.ufunc, reverse: bool = False) -> Vec:
        if isinstance(other, Vec):
            values, null = other.values, self.null | other.null
        else:
            values, null = other, self.null
        with np.errstate(all="ignore"):
            out = op(values, self.values) if reverse else op(self.values, values)
        return Vec(out, null)

    def __add__(self, other: object) -> Vec:
        return self._binary(other, np.add)

    def __radd__(self, other: object) -> Vec:
        return self._binary(other, np.add, reverse=True)

    def __sub__(self, other: object) -> Vec:
        return self._binary(other, np.subtract)

    def __rsub__(self, other: object) -> Vec:
        return self._binary(other, np.subtract, reverse=True)

    def __mul__(self, other: object) -> Vec:
        return self._binary(other, np.multiply)

    def __rmul__(self, other: object) -> Vec:
        return self._binary(other, np.multiply, reverse=True)

    def __truediv__(self, other: object) -> Vec:
        return self._binary(other, np.true_divide)

    def __rtruediv__(self, other: object) -> Vec:
        return self._binary(other, np.true_divide, reverse=True)

    def __eq__(self, other: object) -> Vec:  # type: ignore[override]
        return self._binary(other, np.equal)

    def __hash__(self) -> int:  # pragma: no cover - a column is no dictionary key
        raise TypeError("a Vec is not hashable")

    def pow(self, exponent: float) -> Vec:
        return self._binary(exponent, np.power)

    def sqrt(self) -> Vec:
        with np.errstate(all="ignore"):
            return Vec(np.sqrt(self.values), self.null)

    def log1p(self) -> Vec:
        """The C library's ``log1p``, as polars calls it (numpy's own can differ in the last
        bit)."""
        return Vec(np.fromiter(map(_log1p, self.values.tolist()), np.float64), self.null)

    def clip(self, lower_bound: float | None = None, upper_bound: float | None = None) -> Vec:
        """As polars' ``clip``: NaN stays NaN, null stays null."""
        out = self.values
        if lower_bound is not None:
            out = np.where(out < lower_bound, lower_bound, out)
        if upper_bound is not None:
            out = np.where(out > upper_bound, upper_bound, out)
        return Vec(out, self.null)

    def fill_null(self, value: float) -> Vec:
        return Vec(np.where(self.null, value, self.values), np.zeros_like(self.null))

    def cast(self, dtype: pl.DataType | type[pl.DataType]) -> Vec:
        kind = dtype if isinstance(dtype, type) else type(dtype)
        return Vec(self.values.astype(_DTYPES[kind]), self.null)

    def alias(self, _name: str) -> Vec:
        return self

    def to_float(self) -> np.ndarray:
        """As ``FeatureSet.matrix`` reads a column: float64, null as NaN."""
        return np.where(self.null, np.nan, self.values.astype(np.float64))

    def to_list(self) -> list[object]:
        """Python values, null as None (as polars' ``to_list``)."""
        return [None if n else v for v, n in zip(self.values.tolist(), self.null, strict=True)]
