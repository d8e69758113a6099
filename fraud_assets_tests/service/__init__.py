"""Tests of the decision service (``decision_api``)."""
