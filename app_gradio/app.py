"""The Gradio app: headline numbers and the latest flagged transactions, refreshed by itself."""

from __future__ import annotations

import os

import gradio as gr

from app_gradio.data import latest_flagged, load_scored, summarize

REFRESH_SECONDS = float(os.environ.get("FRAUD_APP_REFRESH_SECONDS", "10"))


def dashboard() -> tuple[str, object]:
    """Summary markdown and the latest flagged rows (as pandas, for gr.Dataframe)."""
    scored = load_scored()
    return summarize(scored).markdown(), latest_flagged(scored).to_pandas()


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Fraud detection", analytics_enabled=False) as app:
        gr.Markdown("# Card fraud detection")
        with gr.Tab("Dashboard"):
            kpis = gr.Markdown(elem_id="kpis")
            table = gr.Dataframe(
                label="Latest flagged transactions", elem_id="flagged", interactive=False
            )
            refresh = gr.Button("Refresh", elem_id="refresh")
        refresh.click(dashboard, outputs=[kpis, table], api_name="dashboard")
        app.load(dashboard, outputs=[kpis, table])
        gr.Timer(REFRESH_SECONDS).tick(dashboard, outputs=[kpis, table])
    return app
