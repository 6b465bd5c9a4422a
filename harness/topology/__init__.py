"""Topologies: pure data (topologies/*.py), validated, then instantiated with Mininet."""
