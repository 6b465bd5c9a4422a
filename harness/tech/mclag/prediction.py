"""What the protocols predict for an MC-LAG trial's failure, beside what was measured.

- A cable to a dual-homed server cut, or a leaf dead: carrier loss. The server's bond
  moves its flows at the carrier event and at worst at its next MII check; the leaf
  that lost its half does the same for its own bond, then tells its peer (the agent's
  reaction, tens of ms, is not in the window): ``failover_gap_ms`` within [0, miimon].
- LACPDUs lost, carrier up (a silent failure): the member leaves after 3 missed PDUs,
  and the last one came up to one period before: ``lacp_member_left_ms`` within
  [2, 3] x 1 s (lacp_rate fast) or x 30 s (slow).
- The peer link or the keepalive cut: a leaf declares the path down a peer timeout
  after the last heartbeat it heard, which came up to one heartbeat before the cut:
  ``mclag_detect_ms`` within [peer_timeout - heartbeat, peer_timeout]; the policy acts
  then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.results.prediction import Prediction
from harness.tech.lacp.prediction import missed_pdus, timeout_window


def predict(failure: Mapping[str, Any], params: Mapping[str, Any],
            options: Mapping[str, Any], inter_leaf: Sequence[str]) -> Prediction | None:
    """The window for ``failure`` (trial.json's first), from the topology's parameters,
    the pair's options and the inter-leaf cable ends ("leaf1:pl", ...)."""
    action, describe = failure.get("action"), str(failure.get("describe", ""))
    timeout, heartbeat = options["peer_timeout_ms"], options["heartbeat_ms"]
    if action == "drop_control" and " lacp " in f" {describe} ":
        rate = str(params.get("lacp_rate", "slow"))
        return Prediction("lacp_member_left_ms", *timeout_window(rate), missed_pdus(rate))
    ends = set(re.findall(r"[\w.-]+:[\w.-]+", describe))
    if action == "cut" and ends & set(inter_leaf):
        return Prediction("mclag_detect_ms", timeout - heartbeat, timeout,
                          f"peer timeout {timeout} ms after the last heartbeat (every"
                          f" {heartbeat} ms); then the policy")
    if action in ("cut", "device_down") and "miimon" in params:
        miimon = params["miimon"]
        return Prediction("failover_gap_ms", 0, miimon,
                          f"carrier loss: at once, at worst the next MII check (miimon"
                          f" {miimon} ms); the leaf agent's reaction not included")
    return None
