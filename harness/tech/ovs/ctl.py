"""Running Open vSwitch's command-line tools: ovs-vsctl, ovs-appctl (and ovs-ctl).

One wrapper for every request the harness makes to ovsdb-server or ovs-vswitchd: a
deadline on each call, and a LabError that says which request failed and what to try,
instead of a CalledProcessError or a hang.  (Not to be confused with the ``ovs-ctl``
script that starts and stops the daemons; :func:`run` runs that one too.)
"""

from __future__ import annotations

import subprocess

from harness import timeouts
from harness.errors import LabError

# A non-zero exit of ovs-vsctl: the database refused the request, and says why.
DATABASE_FIX = "read the Open vSwitch message above; ovs-vswitchd.conf.db(5)"
# A non-zero exit of ovs-appctl lacp/show or bond/show: no daemon, or no such LACP LAG.
LAG_FIX = "is ovs-vswitchd running and the LAG configured with lacp?"


def run(argv: list[str], what: str, *, timeout: float = timeouts.OVS_COMMAND,
        fix: str = DATABASE_FIX) -> str:
    """``argv``'s standard output; LabError (naming ``what``) if it fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed", "apt-get install openvswitch-switch"
                       " (scripts/bootstrap setup does it)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: {argv[0]} did not answer within {timeout:g} s",
                       "is ovs-vswitchd running? `redlab clean`, then retry") from None
    except OSError as exc:
        raise LabError(f"{what}: {' '.join(argv)} failed: {exc}",
                       "is ovs-vswitchd running?") from None
    if done.returncode != 0:
        raise LabError(f"{what} failed: {' '.join(argv)}: {done.stderr.strip()}", fix)
    return done.stdout


def _tool(name: str, args: tuple[str, ...], what: str, fix: str) -> str:
    # The tool gives up first, with its own message; the extra second only catches a
    # tool that hangs anyway.
    return run([name, f"--timeout={timeouts.OVS_COMMAND:g}", *args], what,
               timeout=timeouts.OVS_COMMAND + 1, fix=fix)


def vsctl(*args: str, what: str = "ovs-vsctl") -> str:
    """``ovs-vsctl args``: a request to the database (ovsdb-server)."""
    return _tool("ovs-vsctl", args, what, DATABASE_FIX)


def appctl(*args: str, what: str = "ovs-appctl", fix: str = LAG_FIX) -> str:
    """``ovs-appctl args``: a request to the running ovs-vswitchd."""
    return _tool("ovs-appctl", args, what, fix)
