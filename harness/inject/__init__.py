"""Failure injection: each failure can be applied and restored, and says what it did."""
