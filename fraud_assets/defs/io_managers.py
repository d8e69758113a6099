"""The IO manager for frames kept as Parquet in object storage (the training data, the
labelled live rows). Tables are written by their assets themselves, in one transaction with
whatever else they write (``lib/ingest.py``, ``lib/live_scoring.py``)."""

import dagster as dg
import polars as pl

from fraud_assets.defs.resources import ObjectStoreResource


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
