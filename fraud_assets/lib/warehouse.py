"""The warehouse: keyed, idempotent writes and pruned reads, on SQLite or PostgreSQL.

One interface (``Warehouse``) over two dialects (``SqliteDialect``, ``PostgresDialect``).
SQLite (a local file, WAL mode so the web app can read while runs write) is the embedded
default; PostgreSQL bulk-loads through ``COPY`` into a temporary table, then upserts, and
takes its connections from a ``psycopg_pool`` pool. Several tables can be written in one
transaction (``write``), so a batch and its bookkeeping land together or not at all.

Tables carry a schema version in ``schema_migrations``: when a table's declared schema gains
columns, ``ensure_table`` adds them (``ALTER TABLE … ADD COLUMN``) and records the new
version, so upgrading never breaks an existing database. Identifiers are always quoted,
never formatted into SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import io
import re
import sqlite3
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIGRATIONS_TABLE = "schema_migrations"
#: Bound parameters per statement, within both SQLite's (32,766) and PostgreSQL's (65,535).
MAX_PARAMETERS = 30_000


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def schema_version(schema: dict[str, pl.DataType]) -> str:
    """A stable fingerprint of a table's declared columns and types."""
    text = ";".join(f"{c}:{t}" for c, t in schema.items())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TableWrite:
    """One keyed write, for ``Warehouse.write``."""

    table: str
    frame: pl.DataFrame
    key: str = "trans_num"
    update: bool = True
    replace: bool = False


@dataclass(frozen=True)
class NewRows:
    """Rows to insert where their key is not stored yet (the keys that were new come back)."""

    table: str
    columns: tuple[str, ...]
    key: str
    rows: list[tuple]

    @classmethod
    def of(cls, table: str, columns: Sequence[str], rows: list[tuple], key: str) -> NewRows:
        return cls(*_checked_names(table, tuple(columns), key), rows)

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)

    @property
    def on_conflict(self) -> str:
        return f'ON CONFLICT ("{self.key}") DO NOTHING RETURNING "{self.key}"'


@functools.cache
def _checked_names(table: str, columns: tuple[str, ...], key: str) -> tuple:
    """``table``, ``columns`` and ``key`` once each is checked as an identifier (a write
    path names the same ones every time, so each set is checked once)."""
    return _check_ident(table), tuple(map(_check_ident, columns)), _check_ident(key)


class Dialect(ABC):
    """What differs between databases: connections, types, bulk load, placeholders."""

    name: str
    #: Placeholder for one bound parameter.
    mark: str

    @abstractmethod
    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A connection in a transaction: committed on success, rolled back on error."""

    @abstractmethod
    def sql_type(self, dtype: pl.DataType) -> str: ...

    @abstractmethod
    def table(self, name: str) -> str:
        """The quoted, schema-qualified table name."""

    @abstractmethod
    def existing_columns(self, conn: Any, table: str) -> list[str] | None:
        """The table's columns, or None when it does not exist."""

    @abstractmethod
    def ensure_schema(self, conn: Any) -> None: ...

    @abstractmethod
    def load(self, conn: Any, table: str, frame: pl.DataFrame, key: str, update: bool) -> int:
        """Upsert ``frame`` within ``conn``'s transaction; return rows inserted or updated."""

    def decode(self, frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """Rows as the driver returned them, cast to ``schema``."""
        return frame.cast(schema)

    def encode(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Values as the driver takes them as parameters."""
        return frame

    def encode_value(self, value: object) -> object:
        """One Python value as the driver takes it (as ``encode`` does a column)."""
        return value

    def insert_returning(self, conn: Any, ins: NewRows) -> set[str]:
        """Insert ``ins``' rows in multi-row statements; the keys that were new."""
        width = len(ins.columns)
        row = "(" + ", ".join(self.mark for _ in range(width)) + ")"
        step = max(1, MAX_PARAMETERS // width)
        head = f"INSERT INTO {self.table(ins.table)} ({ins.column_list})"
        new: set[str] = set()
        for start in range(0, len(ins.rows), step):
            chunk = ins.rows[start : start + step]
            values = ", ".join(row for _ in chunk)
            params = [self.encode_value(v) for r in chunk for v in r]
            statement = f"{head} VALUES {values} {ins.on_conflict}"
            new |= {r[0] for r in conn.execute(statement, params)}
        return new

    async def insert_returning_async(self, ins: NewRows) -> set[str]:
        """``insert_returning`` in a transaction of its own, from an event loop (in a thread:
        SQLite has no asynchronous driver)."""

        def insert() -> set[str]:
            with self.connect() as conn:
                return self.insert_returning(conn, ins)

        return await asyncio.to_thread(insert)

    async def aclose(self) -> None:  # noqa: B027 - only pooled dialects hold anything
        """Release the running event loop's connections, if it holds any."""

    def in_list(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        marks = ", ".join(self.mark for _ in values) or "NULL"
        return f'"{_check_ident(column)}" IN ({marks})', list(values)

    def close(self) -> None:  # noqa: B027 - only pooled dialects hold anything to release
        """Release pooled connections."""


class SqliteDialect(Dialect):
    name, mark = "sqlite", "?"

    def __init__(self, url: str) -> None:
        self.path = Path(url.removeprefix("sqlite:///")).expanduser()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            with conn:
                yield conn
        finally:
            conn.close()

    def sql_type(self, dtype: pl.DataType) -> str:
        if dtype == pl.String or isinstance(dtype, pl.Datetime):
            return "TEXT"
        if dtype == pl.Float64:
            return "REAL"
        if dtype == pl.Boolean or dtype.is_integer():
            return "INTEGER"
        raise TypeError(f"no SQL type for {dtype}")

    def table(self, name: str) -> str:
        return f'"{_check_ident(name)}"'

    def existing_columns(self, conn: sqlite3.Connection, table: str) -> list[str] | None:
        rows = conn.execute(f"PRAGMA table_info({self.table(table)})").fetchall()
        return [r[1] for r in rows] or None

    def ensure_schema(self, conn: sqlite3.Connection) -> None:
        return None

    def encode(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M:%S%.3f"),
            pl.col(pl.Boolean).cast(pl.Int8),
        )

    def encode_value(self, value: object) -> object:
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
        if isinstance(value, bool):
            return int(value)
        return value

    def load(
        self, conn: sqlite3.Connection, table: str, frame: pl.DataFrame, key: str, update: bool
    ) -> int:
        cols = [_check_ident(c) for c in frame.columns]
        conv = self.encode(frame)
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in cols)
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != key)
        conflict = f"DO UPDATE SET {sets}" if update and sets else "DO NOTHING"
        before = conn.total_changes
        conn.executemany(
            f"INSERT INTO {self.table(table)} ({quoted}) VALUES ({marks}) "
            f'ON CONFLICT ("{_check_ident(key)}") {conflict}',
            conv.iter_rows(),
        )
        return conn.total_changes - before

    def decode(self, frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        return frame.with_columns(
            pl.col(c).str.to_datetime(time_unit="ms")
            for c, t in schema.items()
            if isinstance(t, pl.Datetime) and frame.schema[c] == pl.String
        ).cast(schema)


def _json_value(value: object) -> object:
    """A value as ``_as_json`` sends it: a float JSON cannot hold (NaN, ±inf) as its text."""
    if type(value) is float and value - value != 0.0:
        return str(value)
    return value


class PostgresDialect(Dialect):
    name, mark = "postgresql", "%s"
    _pools: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, url: str, schema: str, pool_size: int = 4) -> None:
        self.url = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
        self.schema = _check_ident(schema)
        self.pool_size = pool_size
        #: Asynchronous pools, one per event loop (a pool belongs to the loop it opened on).
        self._async_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _pool(self):  # noqa: ANN202
        from psycopg_pool import ConnectionPool

        with self._lock:
            pool = self._pools.get(self.url)
            if pool is None:
                pool = ConnectionPool(
                    self.url,
                    min_size=0,
                    max_size=self.pool_size,
                    kwargs={"connect_timeout": 10},
                    check=ConnectionPool.check_connection,
                    open=True,
                )
                self._pools[self.url] = pool
            return pool

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        with self._pool().connection(timeout=30) as conn, conn.transaction():
            yield conn

    def sql_type(self, dtype: pl.DataType) -> str:
        if dtype == pl.String:
            return "TEXT"
        if dtype == pl.Float64:
            return "DOUBLE PRECISION"
        if dtype == pl.Boolean:
            return "BOOLEAN"
        if isinstance(dtype, pl.Datetime):
            return "TIMESTAMP"
        if dtype.is_integer():
            return "BIGINT"
        raise TypeError(f"no SQL type for {dtype}")

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{_check_ident(name)}"'

    def existing_columns(self, conn: Any, table: str) -> list[str] | None:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, _check_ident(table)),
        ).fetchall()
        return [r[0] for r in rows] or None

    def ensure_schema(self, conn: Any) -> None:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (self.schema,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    def insert_returning(self, conn: Any, ins: NewRows) -> set[str]:
        """One statement whatever the number of rows: they travel as one JSON parameter
        (``_as_json``), which costs psycopg far less than binding each value (and parsing a
        many-row statement's placeholders) would."""
        return {r[0] for r in conn.execute(*self._as_json(ins)).fetchall()}

    async def insert_returning_async(self, ins: NewRows) -> set[str]:
        """``insert_returning`` on the running loop's own pool: the loop goes on serving while
        the statement and its commit wait on the server. The one statement is its own
        transaction (the pool's connections commit each statement)."""
        pool = await self._async_pool()
        async with pool.connection(timeout=30) as conn:
            cursor = await conn.execute(*self._as_json(ins))
            return {r[0] for r in await cursor.fetchall()}

    def _as_json(self, ins: NewRows) -> tuple[str, list[str]]:
        """The statement and its one parameter: the rows as a JSON array of objects, read by
        ``json_populate_recordset`` with the table's own column types, so every value
        arrives as its column's input function reads it (a float's shortest exact text, a
        time in ISO 8601; NaN and infinities as text, which JSON has no number for)."""
        table, columns = self.table(ins.table), ins.column_list
        statement = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM json_populate_recordset(NULL::{table}, %s) {ins.on_conflict}"
        )
        names = ins.columns
        doc = [dict(zip(names, map(_json_value, r), strict=True)) for r in ins.rows]
        return statement, [orjson.dumps(doc).decode()]

    async def _async_pool(self):  # noqa: ANN202
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                # each statement its own transaction: one round trip, no BEGIN and COMMIT
                kwargs={"connect_timeout": 10, "autocommit": True},
                open=False,
            )
            self._async_pools[loop] = pool
            await pool.open()
        return pool

    async def aclose(self) -> None:
        pool = self._async_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def load(self, conn: Any, table: str, frame: pl.DataFrame, key: str, update: bool) -> int:
        cols = [_check_ident(c) for c in frame.columns]
        buf = io.BytesIO()
        frame.write_csv(
            buf, include_header=False, null_value="", datetime_format="%Y-%m-%d %H:%M:%S%.3f"
        )
        quoted = ", ".join(f'"{c}"' for c in cols)
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in cols if c != key)
        conflict = f"DO UPDATE SET {sets}" if update and sets else "DO NOTHING"
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS _incoming")
            cur.execute(
                f"CREATE TEMP TABLE _incoming (LIKE {self.table(table)} INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            with cur.copy(f"COPY _incoming ({quoted}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())
            cur.execute(
                f"INSERT INTO {self.table(table)} ({quoted}) SELECT {quoted} FROM _incoming "
                f'ON CONFLICT ("{_check_ident(key)}") {conflict}'
            )
            written = cur.rowcount
            cur.execute("DROP TABLE _incoming")
        return written

    def close(self) -> None:
        with self._lock:
            pool = self._pools.pop(self.url, None)
        if pool is not None:
            pool.close()


class Warehouse:
    """A connection string plus the operations the platform needs.

    ``url`` is ``postgresql://…`` for PostgreSQL, or ``sqlite:///path`` / a plain path for SQLite.
    """

    def __init__(self, url: str, schema: str = "public", pool_size: int = 4) -> None:
        self.url = url
        self.schema = _check_ident(schema)
        self.postgres = url.startswith(("postgresql://", "postgres://", "postgresql+"))
        self.dialect: Dialect = (
            PostgresDialect(url, schema, pool_size) if self.postgres else SqliteDialect(url)
        )

    # -- DDL and migrations ----------------------------------------------------------------
    def ensure_table(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        key: str = "trans_num",
        indexes: Sequence[str] = (),
    ) -> None:
        """Create the table (and its indexes) when missing; when its declared schema has new
        columns, add them and record the new schema version in ``schema_migrations``. A table
        that already has every column is left alone, so a role that may only read and write
        rows can call this."""
        version = schema_version(schema)
        d = self.dialect
        with d.connect() as conn:
            existing = d.existing_columns(conn, table)
            if existing is not None and set(schema) <= set(existing):
                return
            d.ensure_schema(conn)
            if existing is None:
                self._create(conn, table, schema, key, indexes)
            else:
                self._migrate(conn, table, schema, existing, indexes)
            self._record(conn, table, version, schema)

    def _create(self, conn: Any, table: str, schema: dict, key: str, indexes: Sequence[str]):  # noqa: ANN202
        d = self.dialect
        body = ", ".join(
            f'"{_check_ident(c)}" {d.sql_type(t)}' + (" NOT NULL" if c == key else "")
            for c, t in schema.items()
        )
        conn.execute(f'CREATE TABLE IF NOT EXISTS {d.table(table)} ({body}, PRIMARY KEY ("{key}"))')
        self._index(conn, table, indexes)

    def _index(self, conn: Any, table: str, indexes: Sequence[str]) -> None:
        for col in indexes:
            name = _check_ident(f"{table}_{col}_idx")
            conn.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON {self.dialect.table(table)} '
                f'("{_check_ident(col)}")'
            )

    def _migrate(
        self, conn: Any, table: str, schema: dict, existing: list[str], indexes: Sequence[str]
    ) -> None:
        for col, dtype in schema.items():
            if col not in existing:
                conn.execute(
                    f"ALTER TABLE {self.dialect.table(table)} ADD COLUMN "
                    f'"{_check_ident(col)}" {self.dialect.sql_type(dtype)}'
                )
        self._index(conn, table, indexes)

    def _migrations_table(self, conn: Any) -> str:
        d = self.dialect
        if d.existing_columns(conn, MIGRATIONS_TABLE) is None:
            d.ensure_schema(conn)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {d.table(MIGRATIONS_TABLE)} "
                '("table_name" TEXT PRIMARY KEY, "version" TEXT, "columns" TEXT, '
                '"applied_at" TEXT)'
            )
        return d.table(MIGRATIONS_TABLE)

    def _record(self, conn: Any, table: str, version: str, schema: dict) -> None:
        name, m = self._migrations_table(conn), self.dialect.mark
        at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        conn.execute(
            f'INSERT INTO {name} ("table_name", "version", "columns", "applied_at") '
            f'VALUES ({m}, {m}, {m}, {m}) ON CONFLICT ("table_name") DO UPDATE SET '
            '"version" = EXCLUDED."version", "columns" = EXCLUDED."columns", '
            '"applied_at" = EXCLUDED."applied_at"',
            (table, version, ",".join(schema), at),
        )

    def schema_versions(self) -> dict[str, str]:
        """Every table's recorded schema version."""
        d = self.dialect
        with d.connect() as conn:
            if d.existing_columns(conn, MIGRATIONS_TABLE) is None:
                return {}
            rows = conn.execute(
                f'SELECT "table_name", "version" FROM {d.table(MIGRATIONS_TABLE)}'
            ).fetchall()
        return dict(rows)

    def table_exists(self, table: str) -> bool:
        with self.dialect.connect() as conn:
            return self.dialect.existing_columns(conn, table) is not None

    # -- writes ----------------------------------------------------------------------------
    def write(self, writes: Iterable[TableWrite]) -> dict[str, int]:
        """Several keyed writes in one transaction: all land, or none does. Returns rows
        inserted or updated per table (``update=False`` counts only new rows)."""
        out: dict[str, int] = {}
        with self.dialect.connect() as conn:
            for w in writes:
                if w.replace:
                    conn.execute(f"DELETE FROM {self.dialect.table(w.table)}")
                frame = w.frame.unique(subset=[w.key], keep="last", maintain_order=True)
                written = (
                    self.dialect.load(conn, w.table, frame, w.key, w.update) if frame.height else 0
                )
                out[w.table] = out.get(w.table, 0) + written
        return out

    def insert_new(self, table: str, frame: pl.DataFrame, key: str = "trans_num") -> set[str]:
        """Insert the rows whose ``key`` is not stored yet, in one statement and one
        transaction (a group commit), and return the keys that were new; a row whose key is
        stored already changes nothing."""
        frame = frame.unique(subset=[key], keep="first", maintain_order=True)
        return self.insert_new_rows(table, frame.columns, frame.rows(), key)

    def insert_new_rows(
        self, table: str, columns: Sequence[str], rows: list[tuple], key: str = "trans_num"
    ) -> set[str]:
        """``insert_new`` of rows of Python values in ``columns``' order, with distinct keys
        (no frame to build: what a small batch of the decision service can afford)."""
        if not rows:
            return set()
        with self.dialect.connect() as conn:
            return self.dialect.insert_returning(conn, NewRows.of(table, columns, rows, key))

    async def insert_new_rows_async(
        self, table: str, columns: Sequence[str], rows: list[tuple], key: str = "trans_num"
    ) -> set[str]:
        """``insert_new_rows`` for an event loop, which goes on while the write waits. On
        PostgreSQL the loop gets a connection pool of its own: ``aclose`` it before the loop
        ends (its background tasks would keep the loop from closing)."""
        if not rows:
            return set()
        return await self.dialect.insert_returning_async(NewRows.of(table, columns, rows, key))

    async def aclose(self) -> None:
        """Release what the running event loop holds (``insert_new_rows_async``'s pool)."""
        await self.dialect.aclose()

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
        empties the table first, in the same transaction. Returns rows inserted or updated.
        """
        if frame.height == 0 and not replace:
            return 0
        return self.write([TableWrite(table, frame, key, update, replace)])[table]

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
        its list of values, on one connection. Returns a frame cast to ``schema``; empty if
        the table is missing."""
        cols = [_check_ident(c) for c in (columns or schema)]
        out_schema = {c: schema[c] for c in cols}
        d = self.dialect
        query = f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {d.table(table)}"
        params: list[Any] = []
        clauses = []
        for col, values in (where or {}).items():
            clause, values = d.in_list(col, list(values))
            clauses.append(clause)
            params += values
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        if order_by:
            query += f' ORDER BY "{_check_ident(order_by)}" DESC'
        if limit:
            query += f" LIMIT {int(limit)}"
        with d.connect() as conn:
            if d.existing_columns(conn, table) is None:
                return pl.DataFrame(schema=out_schema)
            rows = conn.execute(query, params).fetchall()
        return self._frame(rows, out_schema)

    def read_since(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        column: str,
        since: dt.datetime,
        columns: Iterable[str] | None = None,
    ) -> pl.DataFrame:
        """Rows whose datetime ``column`` is at or after ``since`` (an index keeps it cheap)."""
        cols = [_check_ident(c) for c in (columns or schema)]
        if not self.table_exists(table):
            return pl.DataFrame(schema={c: schema[c] for c in cols})
        bound = since if self.postgres else since.strftime("%Y-%m-%d %H:%M:%S.000")
        select = ", ".join(f'"{c}"' for c in cols)
        return self.query(
            f'SELECT {select} FROM {{t:{table}}} WHERE "{_check_ident(column)}" >= ?',
            {c: schema[c] for c in cols},
            [bound],
        )

    def query(
        self, sql: str, schema: dict[str, pl.DataType], params: Sequence[Any] = ()
    ) -> pl.DataFrame:
        """Run a read-only SQL statement written for this dialect (``{t:name}`` stands for
        the quoted table ``name``; ``?`` for a parameter) and cast the rows to ``schema``."""
        d = self.dialect
        text = re.sub(r"\{t:([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: d.table(m.group(1)), sql)
        text = text.replace("?", d.mark)
        with d.connect() as conn:
            rows = conn.execute(text, list(params)).fetchall()
        return self._frame(rows, schema)

    def _frame(self, rows: list[tuple], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        raw = {
            c: (pl.String if isinstance(t, pl.Datetime) and not self.postgres else t)
            for c, t in schema.items()
        }
        return self.dialect.decode(
            pl.DataFrame(rows, schema=raw, orient="row", strict=False), schema
        )

    def count(self, table: str) -> int:
        with self.dialect.connect() as conn:
            if self.dialect.existing_columns(conn, table) is None:
                return 0
            return conn.execute(f"SELECT count(*) FROM {self.dialect.table(table)}").fetchone()[0]

    def close(self) -> None:
        self.dialect.close()
