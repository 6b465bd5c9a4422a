"""Bond modes are accepted by name or number, like the kernel; anything else is an error."""

import pytest

from harness.errors import ConfigError
from harness.tech.bond import BOND_MODES, mode_name, mode_number


@pytest.mark.parametrize(("given", "number"), [("active-backup", 1), ("1", 1), (4, 4),
                                                ("802.3ad", 4), ("Balance-RR", 0)])
def test_mode_names_and_numbers_map_to_the_kernel_numbering(given, number):
    assert mode_number(given) == number
    assert mode_name(given) == BOND_MODES[number]


@pytest.mark.parametrize("bad", ["active-bakup", "7", "lacp", ""])
def test_unknown_mode_is_an_error_listing_every_valid_mode(bad):
    with pytest.raises(ConfigError) as info:
        mode_number(bad)
    assert "unknown bond mode" in info.value.problem
    assert all(name in info.value.fix for name in BOND_MODES)
