"""The single-point-of-failure audit: every element of a topology failed in turn.

units: what can fail (every cable, bond member NIC, switch or router, and daemon), read
from the topology model; graph: what the topology's shape predicts for each (networkx);
plan: the short scenario each unit is measured with; verdict: what the measurement says,
beside the prediction, and where the two disagree. ``redlab audit`` (harness.cli_audit)
runs them.
"""
