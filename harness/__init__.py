"""RedLab: prove network redundancy on real kernels, measure the failover gap."""

__version__ = "0.1.0"
