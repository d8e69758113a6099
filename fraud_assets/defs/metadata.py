"""How assets describe what they wrote in Dagster's metadata: column schemas and plots."""

import base64

import dagster as dg
import polars as pl


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    """``dagster/column_schema`` of a frame."""
    return dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in frame.schema.items()])


def image(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG plot, shown inline in the asset's metadata."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
