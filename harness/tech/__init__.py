"""Redundancy technologies: kernel bonds (and, later, OVS LAGs, MC-LAG, VRRP)."""
