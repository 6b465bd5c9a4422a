"""The two streams CI runs the lab tests in (tests/lab/streams.py): every name the split
relies on must exist, or a renamed test would silently change stream (and a test that
boots its own guest would land beside the shared one)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.lab import streams

LAB = REPO / "tests" / "lab"


def test_every_host_module_and_named_test_exists():
    modules = {p.stem for p in LAB.glob("test_*.py")}
    assert modules >= streams.HOST_MODULES, streams.HOST_MODULES - modules
    text = {m: (LAB / f"{m}.py").read_text() for m in modules}
    for name in streams.GUEST_TESTS:
        assert any(f"def {name}(" in t for t in text.values()), name
    for name in streams.EARLY_RUNS:
        assert any(f"def {name.partition('[')[0]}(" in t for t in text.values()), name


def test_lab_tests_split_by_where_their_runs_go_and_the_rest_need_no_stream():
    assert streams.stream("tests/lab/test_vrrp_gateway.py::test_a_crashed_keepalived") \
        == streams.HOST
    assert streams.stream("tests/lab/test_vrrp_gateway.py::"
                          "test_the_same_gateway_fails_over_inside_user_mode_linux[x]") \
        == streams.GUEST
    assert streams.stream("tests/lab/test_lag.py::test_a_cut_member") == streams.GUEST
    early = next(iter(streams.EARLY_RUNS))
    assert streams.stream(f"tests/lab/test_lag.py::{early}") == streams.HOST
    assert streams.stream("tests/unit/test_phase.py::test_x") is None
    assert streams.stream("tests/lab/sub/test_x.py::test_y") is None


def test_every_private_guest_test_is_in_the_host_stream():
    for path in LAB.glob("test_*.py"):
        if "private_guest" in path.read_text():
            assert path.stem in streams.HOST_MODULES, path.name
