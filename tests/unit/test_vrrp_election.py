"""When VRRP's election is over (harness.tech.vrrp.plugin.election_over), from the
routers' notifications alone: r1 priority 200, r2 priority 100, advert_int 1 s, so r2's
master down interval is 3 x 1 s + (256 - 100) / 256 s = 3.609 s."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.tech.vrrp.notify import StateChange
from harness.tech.vrrp.options import VrrpOptions
from harness.tech.vrrp.plugin import election_over

S = 1_000_000_000
R2_DOWN = 3.609375  # s


@dataclass
class Router:
    options: VrrpOptions
    changes: list[StateChange] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return self.changes[-1].state if self.changes else None

    def at(self, t_s: float, state: str) -> Router:
        self.changes.append(StateChange(int(t_s * S), "r", "VI_1", state, None))
        return self


def router(priority: int) -> Router:
    return Router(VrrpOptions(interface="eth0", virtual_router_id=51, priority=priority,
                              advert_int=1.0, virtual_ipaddress=["192.0.2.254/24"]))


def elected_pair() -> dict[str, Router]:
    """Both start at 0 s as BACKUP; r1 wins at its own master down interval."""
    return {"r1": router(200).at(0.0, "BACKUP").at(3.2, "MASTER"),
            "r2": router(100).at(0.0, "BACKUP")}


def test_not_over_while_a_backup_that_heard_nothing_could_still_take_over():
    pair = elected_pair()
    # r2 would go MASTER at 3.609 s had it not heard r1: wait that plus one advert_int
    assert election_over(pair, int((R2_DOWN + 0.9) * S)) is None
    assert election_over(pair, int((R2_DOWN + 1.01) * S)) == "r1"


def test_not_over_with_two_masters_or_a_router_without_a_state():
    pair = elected_pair()
    pair["r2"].at(3.609, "MASTER")  # deaf: its timer ran out
    assert election_over(pair, 20 * S) is None
    silent = {"r1": router(200).at(0.0, "BACKUP").at(3.2, "MASTER"), "r2": router(100)}
    assert election_over(silent, 20 * S) is None


def test_a_preempting_router_is_waited_for_until_the_old_master_stepped_down():
    # r2 started first and won; r1 started 2 s later, and preempts at its own timer
    pair = {"r2": router(100).at(0.0, "BACKUP").at(3.6, "MASTER"),
            "r1": router(200).at(2.0, "BACKUP")}
    assert election_over(pair, int(4.7 * S)) is None  # r1's timer has not run out yet
    pair["r1"].at(5.2, "MASTER")
    assert election_over(pair, int(5.5 * S)) is None  # two masters
    pair["r2"].at(5.25, "BACKUP")
    assert election_over(pair, int(5.9 * S)) is None  # changed less than an advert ago
    assert election_over(pair, int(7.0 * S)) == "r1"
