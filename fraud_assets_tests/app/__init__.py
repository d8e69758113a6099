"""Tests of the analysts' web app (``app_gradio``)."""
