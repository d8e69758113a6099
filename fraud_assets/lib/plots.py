"""Small matplotlib figures rendered to PNG bytes, for metadata and the web app."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pr_curve_png(precision: np.ndarray, recall: np.ndarray, ap: float) -> bytes:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(recall, precision)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title=f"Precision-recall (AP {ap:.3f})",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    return _png(fig)


def importances_png(importances: dict[str, float], top: int = 15) -> bytes:
    items = sorted(importances.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = plt.subplots(figsize=(4.5, 0.25 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(title="Feature importance", xlabel="mean decrease in impurity")
    return _png(fig)


def reliability_png(bins: list[tuple[float, float, int]], ece: float) -> bytes:
    """Observed fraud rate against mean predicted probability, per quantile bin."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    pred = [b[0] for b in bins]
    seen = [b[1] for b in bins]
    top = max([*pred, *seen, 1e-3]) * 1.1
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    ax.plot(pred, seen, marker="o", label="model")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed fraud rate",
        title=f"Reliability (ECE {ece:.4f})",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


def performance_png(daily) -> bytes:  # noqa: ANN001 - a polars frame of live_performance rows
    """Precision, recall and flag rate by day, one line per model version."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (version,), part in daily.sort("day").group_by("model_version", maintain_order=True):
        days = part["day"].to_list()
        for metric, style in (("precision", "-"), ("recall", "--"), ("flag_rate", ":")):
            values = [v if v is not None else float("nan") for v in part[metric].to_list()]
            ax.plot(days, values, style, marker="o", label=f"v{version} {metric}")
    ax.set(title="Live performance by day", ylim=(0, 1.02), xlabel="arrival day")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)
