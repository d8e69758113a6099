"""Helpers the test modules share (never imported from one test module by another)."""
