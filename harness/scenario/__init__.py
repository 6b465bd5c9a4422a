"""Scenarios: data files in scenarios/ that say what to break, when, and what to measure."""
