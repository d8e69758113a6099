"""The warehouse: idempotent, keyed writes and column-pruned reads, on SQLite or PostgreSQL.

SQLite (a local file, WAL mode so the web app can read while runs write) is the embedded
default. PostgreSQL bulk-loads through ``COPY`` into a temporary table, then upserts.
Identifiers are always quoted, never formatted into SQL.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import polars as pl

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def _sql_type(dtype: pl.DataType, postgres: bool) -> str:
    if dtype == pl.String:
        return "TEXT"
    if dtype == pl.Float64:
        return "DOUBLE PRECISION" if postgres else "REAL"
    if dtype == pl.Boolean:
        return "BOOLEAN" if postgres else "INTEGER"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP" if postgres else "TEXT"
    if dtype.is_integer():
        return "BIGINT" if postgres else "INTEGER"
    raise TypeError(f"no SQL type for {dtype}")


class Warehouse:
    """A connection string plus the operations the platform needs.

    ``url`` is ``postgresql://…`` for PostgreSQL, or ``sqlite:///path`` / a plain path for SQLite.
    """

    def __init__(self, url: str, schema: str = "public") -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://", "postgresql+"))
        self.schema = _check_ident(schema)
        if not self.postgres:
            self.path = Path(url.removeprefix("sqlite:///")).expanduser()

    # -- connections -----------------------------------------------------------------------
    def _pg(self):  # noqa: ANN202
        import psycopg

        return psycopg.connect(
            re.sub(r"^postgresql\+\w+://", "postgresql://", self.url), connect_timeout=10
        )

    def _sqlite(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _table(self, table: str):  # noqa: ANN202 - a psycopg Composable or a quoted str
        _check_ident(table)
        if self.postgres:
            from psycopg import sql

            return sql.Identifier(self.schema, table)
        return f'"{table}"'

    # -- DDL -------------------------------------------------------------------------------
    def ensure_table(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        key: str = "trans_num",
        indexes: Sequence[str] = (),
    ) -> None:
        """Create the table (and its schema and indexes) when missing."""
        cols = [(_check_ident(c), _sql_type(t, self.postgres)) for c, t in schema.items()]
        if self.postgres:
            from psycopg import sql

            with self._pg() as conn:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                body = sql.SQL(", ").join(
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(c), sql.SQL(t), sql.SQL(" NOT NULL" if c == key else "")
                    )
                    for c, t in cols
                )
                conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
                        self._table(table), body, sql.Identifier(key)
                    )
                )
                for col in indexes:
                    conn.execute(
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                            sql.Identifier(f"{table}_{col}_idx"),
                            self._table(table),
                            sql.Identifier(_check_ident(col)),
                        )
                    )
        else:
            with closing(self._sqlite()) as conn, conn:
                body = ", ".join(f'"{c}" {t}' + (" NOT NULL" if c == key else "") for c, t in cols)
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table(table)} "
                    f'({body}, PRIMARY KEY ("{_check_ident(key)}"))'
                )
                for col in indexes:
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "{table}_{_check_ident(col)}_idx" '
                        f'ON {self._table(table)} ("{col}")'
                    )

    def table_exists(self, table: str) -> bool:
        if self.postgres:
            with self._pg() as conn:
                row = conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{table}"',))
                return row.fetchone()[0] is not None
        with closing(self._sqlite()) as conn:
            cur = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (_check_ident(table),)
            )
            return cur.fetchone() is not None

    # -- writes ----------------------------------------------------------------------------
    def upsert(
        self,
        table: str,
        frame: pl.DataFrame,
        key: str = "trans_num",
        update: bool = True,
        replace: bool = False,
    ) -> int:
        """Write rows keyed by ``key`` in one transaction.

        ``update=True`` replaces existing rows with the same key; ``update=False`` keeps the
        first one. Either way a repeated write leaves no duplicate keys. ``replace=True``
        empties the table first, in the same transaction. Returns rows sent.
        """
        if frame.height == 0 and not replace:
            return 0
        frame = frame.unique(subset=[key], keep="last", maintain_order=True)
        cols = [_check_ident(c) for c in frame.columns]
        if self.postgres:
            self._pg_upsert(table, frame, cols, key, update, replace)
        else:
            self._sqlite_upsert(table, frame, cols, key, update, replace)
        return frame.height

    def _pg_upsert(
        self,
        table: str,
        frame: pl.DataFrame,
        cols: list[str],
        key: str,
        update: bool,
        replace: bool = False,
    ) -> None:
        from psycopg import sql

        buf = io.BytesIO()
        frame.write_csv(
            buf, include_header=False, null_value="", datetime_format="%Y-%m-%d %H:%M:%S%.3f"
        )
        ident_cols = sql.SQL(", ").join(map(sql.Identifier, cols))
        conflict = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                    for c in cols
                    if c != key
                )
            )
            if update
            else sql.SQL("DO NOTHING")
        )
        with self._pg() as conn, conn.cursor() as cur:
            if replace:
                cur.execute(sql.SQL("DELETE FROM {}").format(self._table(table)))
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE _incoming (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP"
                ).format(self._table(table))
            )
            with cur.copy(
                sql.SQL("COPY _incoming ({}) FROM STDIN (FORMAT csv)").format(ident_cols)
            ) as copy:
                copy.write(buf.getvalue())
            cur.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM _incoming ON CONFLICT ({}) {}").format(
                    self._table(table), ident_cols, ident_cols, sql.Identifier(key), conflict
                )
            )

    def _sqlite_upsert(
        self,
        table: str,
        frame: pl.DataFrame,
        cols: list[str],
        key: str,
        update: bool,
        replace: bool = False,
    ) -> None:
        conv = frame.with_columns(
            pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M:%S%.3f"),
            pl.col(pl.Boolean).cast(pl.Int8),
        )
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in cols)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != key)
        conflict = f"DO UPDATE SET {sets}" if update else "DO NOTHING"
        stmt = (
            f"INSERT INTO {self._table(table)} ({quoted}) VALUES ({marks}) "
            f'ON CONFLICT ("{key}") {conflict}'
        )
        with closing(self._sqlite()) as conn, conn:
            if replace:
                conn.execute(f"DELETE FROM {self._table(table)}")
            conn.executemany(stmt, conv.iter_rows())

    # -- reads -----------------------------------------------------------------------------
    def read(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        columns: Iterable[str] | None = None,
        where: dict[str, Sequence[Any]] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Select ``columns`` (all of ``schema`` by default) where each ``where`` column is in
        its list of values. Returns a frame cast to ``schema``; empty if the table is missing."""
        cols = [_check_ident(c) for c in (columns or schema)]
        out_schema = {c: schema[c] for c in cols}
        if not self.table_exists(table):
            return pl.DataFrame(schema=out_schema)
        where = where or {}
        if self.postgres:
            rows = self._pg_select(table, cols, where, order_by, limit)
        else:
            rows = self._sqlite_select(table, cols, where, order_by, limit)
        raw_schema = {
            c: (pl.String if isinstance(t, pl.Datetime) and not self.postgres else t)
            for c, t in out_schema.items()
        }
        frame = pl.DataFrame(rows, schema=raw_schema, orient="row", strict=False)
        return frame.with_columns(
            pl.col(c).str.to_datetime(time_unit="ms") if not self.postgres else pl.col(c)
            for c, t in out_schema.items()
            if isinstance(t, pl.Datetime)
        ).cast(out_schema)

    def _pg_select(self, table, cols, where, order_by, limit):  # noqa: ANN001, ANN202
        from psycopg import sql

        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), self._table(table)
        )
        params: list[Any] = []
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
                sql.SQL("{} = ANY(%s)").format(sql.Identifier(_check_ident(c))) for c in where
            )
            params = [list(v) for v in where.values()]
        if order_by:
            query += sql.SQL(" ORDER BY {} DESC").format(sql.Identifier(_check_ident(order_by)))
        if limit:
            query += sql.SQL(" LIMIT {}").format(sql.Literal(int(limit)))
        with self._pg() as conn:
            return conn.execute(query, params).fetchall()

    def _sqlite_select(self, table, cols, where, order_by, limit):  # noqa: ANN001, ANN202
        query = f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {self._table(table)}"
        params: list[Any] = []
        clauses = []
        for c, values in where.items():
            values = list(values)
            clauses.append(f'"{_check_ident(c)}" IN ({", ".join("?" for _ in values) or "NULL"})')
            params += values
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        if order_by:
            query += f' ORDER BY "{_check_ident(order_by)}" DESC'
        if limit:
            query += f" LIMIT {int(limit)}"
        with closing(self._sqlite()) as conn:
            return conn.execute(query, params).fetchall()

    def count(self, table: str) -> int:
        if not self.table_exists(table):
            return 0
        if self.postgres:
            from psycopg import sql

            with self._pg() as conn:
                q = sql.SQL("SELECT count(*) FROM {}").format(self._table(table))
                return conn.execute(q).fetchone()[0]
        with closing(self._sqlite()) as conn:
            return conn.execute(f"SELECT count(*) FROM {self._table(table)}").fetchone()[0]
