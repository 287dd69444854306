"""Fixtures shared by more than one test module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Its helpers assert; rewritten, their failures say what was compared.
pytest.register_assert_rewrite("tests.check_support")


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp is 0700, which nobody cannot search).

    CGI scripts run as ``nobody`` when the tests run as root, so their tree lives
    here: a 0755 folder straight under /tmp, whose parents nobody can search too.
    """
    base = Path(tempfile.mkdtemp(prefix="devserve-test-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        # A script's child that outlived its request may still be writing here.
        shutil.rmtree(base, ignore_errors=True)
