"""How assets and checks describe what they found in Dagster's metadata: column schemas,
plots, and check results from ``lib/monitoring`` verdicts."""

import base64

import dagster as dg
import polars as pl

from fraud_assets.lib.monitoring import Verdict


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    """``dagster/column_schema`` of a frame."""
    return dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in frame.schema.items()])


def image(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG plot, shown inline in the asset's metadata."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def check_result(
    key: dg.AssetCheckKey, verdict: Verdict, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    """A check's result from a verdict: its reason and figures as metadata."""
    return dg.AssetCheckResult(
        check_name=key.name,
        asset_key=key.asset_key,
        passed=verdict.passed,
        severity=severity,
        metadata={"reason": verdict.reason, **{k: float(v) for k, v in verdict.figures.items()}},
    )
