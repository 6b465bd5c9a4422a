"""Traffic and probes that run inside the lab, and the figures computed from them."""
