"""IO managers: Parquet in object storage, and keyed tables in the warehouse."""

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import ObjectStoreResource, WarehouseResource
from fraud_assets.lib.lake import hour_key
from fraud_assets.lib.schema import TABLE_SCHEMAS

PARTITION_COLUMN = "batch_hour"


def _key(context: dg.OutputContext | dg.InputContext) -> str:
    path = "/".join(context.asset_key.path)
    if context.has_asset_partitions:
        return f"assets/{path}/{context.asset_partition_key}.parquet"
    return f"assets/{path}.parquet"


class ParquetIOManager(dg.ConfigurableIOManager):
    """Polars frames as Parquet files, on whatever store ``store`` points at (S3 or local).

    An input may set ``columns`` in its metadata to read only those columns.
    """

    store: ObjectStoreResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        key = _key(context)
        store = self.store.store()
        store.put_parquet(key, obj)
        context.add_output_metadata({"uri": dg.MetadataValue.path(store.uri(key))})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        columns = (context.definition_metadata or {}).get("columns")
        return self.store.store().get_parquet(_key(context), columns=columns)


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Keyed tables named after their assets, with hourly partitions in ``batch_hour``.

    Writes upsert on ``trans_num``, so a re-run never duplicates a row. Assets whose metadata
    sets ``on_conflict: ignore`` keep the first copy of a row instead of replacing it; with
    ``lake_prefix``, each written hour is also copied whole to object storage as Parquet under
    a Hive-style key (``<prefix>/hour=YYYY-MM-DD-HH/part.parquet``), rewritten on every write,
    so the lake copy always equals the table.
    """

    warehouse: WarehouseResource
    store: ObjectStoreResource

    def _table(self, context: dg.OutputContext | dg.InputContext) -> tuple[str, dict]:
        table = context.asset_key.path[-1]
        if table not in TABLE_SCHEMAS:
            raise dg.Failure(f"no warehouse table schema for asset {table!r}")
        return table, TABLE_SCHEMAS[table]

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        table, schema = self._table(context)
        wh = self.warehouse.warehouse()
        extra = (context.definition_metadata or {}).get("indexes", [])
        wh.ensure_table(table, schema, indexes=[PARTITION_COLUMN, "cc_num", *extra])
        update = (context.definition_metadata or {}).get("on_conflict", "update") != "ignore"
        written = wh.upsert(table, obj.select(list(schema)).cast(schema), update=update)
        metadata = {"table": f"{self.warehouse.db_schema}.{table}", "rows_written": written}
        prefix = (context.definition_metadata or {}).get("lake_prefix")
        if prefix and context.has_asset_partitions:
            store = self.store.store()
            for hour in context.asset_partition_keys:
                rows = wh.read(table, schema, where={PARTITION_COLUMN: [hour]})
                store.put_parquet(hour_key(prefix, hour), rows)
            metadata["lake"] = dg.MetadataValue.path(store.uri(prefix))
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        table, schema = self._table(context)
        columns = (context.definition_metadata or {}).get("columns")
        where = (
            {PARTITION_COLUMN: list(context.asset_partition_keys)}
            if context.has_asset_partitions
            else None
        )
        return self.warehouse.warehouse().read(table, schema, columns=columns, where=where)
