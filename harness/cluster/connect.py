"""Which Dask cluster a suite runs on, its client, and the checks made before any trial.

``--cluster`` takes:

- ``ssh://host1,host2,...``: Dask's ``SSHCluster``; the scheduler runs on the first host
  and one worker on every host named (the first included), each started over SSH with
  the same Python as here (``REDLAB_REMOTE_PYTHON`` says another);
- ``tcp://scheduler:8786``: a scheduler already running, whose workers were started with
  ``dask worker tcp://scheduler:8786 --nthreads 1 --resources lab=1``;
- ``local://N``: N worker processes on this machine (a ``LocalCluster``), for a machine
  with the cores for N trials at once, and for RedLab's own test.

Every worker must be able to run ``redlab run``: a host that cannot be reached, a worker
without the ``lab`` resource or without RedLab set up is one clear error that names it and
the set-up command, raised before any trial starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, LabError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

RESOURCE = "lab"  # one per worker, one per trial: a worker runs one trial at a time
SETUP = "scripts/bootstrap setup"  # the README's set-up command, run on each worker
SCHEDULER_PORT = 8786
CONNECT_S = 15.0     # reaching a scheduler or an SSH host
WORKERS_UP_S = 60.0  # a new cluster's workers connected
WORKER_COMMAND = (f"dask worker tcp://SCHEDULER:{SCHEDULER_PORT} --nthreads 1"
                  f" --resources {RESOURCE}=1")


@dataclass(frozen=True)
class ClusterSpec:
    kind: str                   # ssh, tcp or local
    hosts: tuple[str, ...] = ()  # ssh: the scheduler's host first
    address: str = ""           # tcp: the scheduler
    workers: int = 0            # local: how many worker processes

    def describe(self) -> str:
        return {"ssh": f"ssh://{','.join(self.hosts)}", "tcp": self.address,
                "local": f"local://{self.workers}"}[self.kind]


def parse(text: str) -> ClusterSpec:
    scheme, sep, rest = text.partition("://")
    fix = ("write --cluster ssh://host1,host2 (SSH to each), tcp://scheduler:8786 (a running"
           " scheduler) or local://2 (worker processes on this machine)")
    if not sep or not rest:
        raise ConfigError(f"--cluster {text!r} names no cluster", fix)
    if scheme == "ssh":
        hosts = tuple(h.strip() for h in rest.split(",") if h.strip())
        if not hosts:
            raise ConfigError(f"--cluster {text!r} names no host", fix)
        return ClusterSpec("ssh", hosts=hosts)
    if scheme == "tcp":
        host, _, port = rest.partition(":")
        if not host or (port and not port.isdigit()):
            raise ConfigError(f"--cluster {text!r} is not tcp://host:port", fix)
        return ClusterSpec("tcp", address=f"tcp://{host}:{port or SCHEDULER_PORT}")
    if scheme == "local":
        if not rest.isdigit() or int(rest) < 1:
            raise ConfigError(f"--cluster {text!r}: local:// takes a number of workers", fix)
        return ClusterSpec("local", workers=int(rest))
    raise ConfigError(f"--cluster {text!r}: {scheme!r} is not ssh, tcp or local", fix)


@contextlib.contextmanager
def client_for(spec: ClusterSpec) -> Iterator[Client]:
    """A client of the cluster ``spec`` names, its workers checked; a cluster RedLab
    started (ssh, local) is closed with the block."""
    from distributed import Client, LocalCluster

    quiet_dask(logging.WARNING)  # its INFO lines (each worker, each key) are not the user's
    with contextlib.ExitStack() as stack:
        if spec.kind == "tcp":
            try:
                client = stack.enter_context(Client(spec.address, timeout=CONNECT_S))
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {spec.address}: {exc}",
                    f"start one there (dask scheduler), and on each worker machine, after"
                    f" {SETUP}: {WORKER_COMMAND}") from None
        else:
            if spec.kind == "ssh":
                cluster = stack.enter_context(_ssh_cluster(spec.hosts))
            else:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=spec.workers, threads_per_worker=1, processes=True,
                    resources={RESOURCE: 1}, dashboard_address=":0"))
            client = stack.enter_context(Client(cluster, timeout=CONNECT_S))
            wanted = len(spec.hosts) or spec.workers
            try:
                client.wait_for_workers(wanted, timeout=WORKERS_UP_S)
            except TimeoutError:
                raise LabError(
                    f"only {len(client.scheduler_info()['workers'])} of {wanted} Dask"
                    f" worker(s) of {spec.describe()} connected in {WORKERS_UP_S:.0f} s",
                    f"check each host's worker can start (after {SETUP}) and reach the"
                    " scheduler") from None
        check_workers(client)
        yield client


def quiet_dask(level: int) -> None:
    """Dask's loggers at ``level`` (it sets some of its own, which do not inherit)."""
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(level)


def _ssh_cluster(hosts: tuple[str, ...]) -> Any:
    from distributed import SSHCluster

    python = os.environ.get("REDLAB_REMOTE_PYTHON", sys.executable)
    for host in dict.fromkeys(hosts):
        _check_ssh_host(host, python)
    try:
        # host keys: the user's known_hosts, which the ssh check above has just used
        return SSHCluster([hosts[0], *hosts],
                          worker_options={"nthreads": 1, "resources": {RESOURCE: 1}},
                          scheduler_options={"port": 0, "dashboard_address": ":0"},
                          remote_python=python)
    except Exception as exc:  # asyncssh's, dask's: whichever, the hosts are named
        raise LabError(f"could not start Dask over SSH on {', '.join(hosts)}: {exc}",
                       "check `ssh HOST true` works without a password and that"
                       f" {SETUP} has run on each host") from None


def _check_ssh_host(host: str, python: str) -> None:
    """``host`` answers SSH without a password and has RedLab's Python with Dask."""
    if shutil.which("ssh") is None:
        raise ConfigError("--cluster ssh:// needs the ssh client, which is not installed",
                          "apt install openssh-client")
    probe = f"{python} -c 'import harness, distributed'"
    try:
        done = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o",
                               f"ConnectTimeout={int(CONNECT_S)}", host, probe],
                              capture_output=True, text=True, timeout=CONNECT_S + 10)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"cluster host {host} did not answer SSH in {CONNECT_S:.0f} s",
                          f"check that {host} is up and reachable: ssh {host} true") from None
    if done.returncode == 255:  # ssh's own failure: name resolution, refused, auth
        raise ConfigError(f"cannot reach cluster host {host} over SSH: "
                          f"{done.stderr.strip().splitlines()[-1:] or ['no answer']}",
                          f"check `ssh {host} true` works without a password (a key in"
                          " ssh-agent or ~/.ssh)")
    if done.returncode != 0:
        raise ConfigError(f"cluster host {host} has no RedLab at {python}:"
                          f" {done.stderr.strip()[-300:]}",
                          f"run {SETUP} on {host} (the same folder as here, or set"
                          " REDLAB_REMOTE_PYTHON to its .venv/bin/python)")


def worker_facts() -> dict[str, Any]:
    """Run on each worker: what it is, and whether it can run a trial."""
    missing = [name for name in ("harness", "distributed")
               if importlib.util.find_spec(name) is None]
    missing += [tool for tool in ("setpriv", "redlab-probe", "redlab-netns", "iperf3")
                if shutil.which(tool, path=_tool_path()) is None]
    return {"host": platform.node(), "python": sys.executable, "missing": missing}


def _tool_path() -> str:
    """PATH with the Python environment's bin (redlab-probe lives there)."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def check_workers(client: Client) -> dict[str, dict[str, Any]]:
    """Every worker's facts, once each is known to run trials; else one error naming it."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        raise ConfigError("the Dask cluster has no worker",
                          f"start workers (after {SETUP} on each): {WORKER_COMMAND}")
    for address, info in workers.items():
        if info.get("resources", {}).get(RESOURCE, 0) < 1:
            raise ConfigError(
                f"Dask worker {address} (host {info.get('host', '?')}) offers no"
                f" {RESOURCE!r} resource, so no trial would ever run on it",
                f"start workers with --nthreads 1 --resources {RESOURCE}=1: {WORKER_COMMAND}")
    facts = client.run(worker_facts, on_error="return")
    for address, fact in facts.items():
        host = workers.get(address, {}).get("host", address)
        if isinstance(fact, BaseException):
            raise ConfigError(f"Dask worker {address} (host {host}) cannot run RedLab: {fact}",
                              f"run {SETUP} on {host}, and start its worker from RedLab's"
                              " Python environment")
        if fact["missing"]:
            raise ConfigError(f"Dask worker {address} (host {fact['host']}) lacks"
                              f" {', '.join(fact['missing'])}",
                              f"run {SETUP} on {fact['host']}")
    log.info("cluster: %d worker(s) on %s", len(facts),
             ", ".join(sorted({f["host"] for f in facts.values()})))
    return facts
