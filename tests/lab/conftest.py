"""Everything under tests/lab builds a real lab: marked `lab` here, so that a new file
cannot slip into the quick loop (`pytest tests/unit`, or `-m "not lab"`) by forgetting it."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.lab)
