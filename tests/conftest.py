"""Fixtures shared by more than one test module."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Its helpers assert; rewritten, their failures say what was compared.
pytest.register_assert_rewrite("tests.check_support")


def pytest_configure(config: pytest.Config) -> None:
    """Servers started by the tests must hear Ctrl-C (SIGINT) even when the suite does not.

    A shell without job control starts background commands (``pytest &``) with
    SIGINT ignored, and an ignored signal stays ignored across exec: every
    server a test starts would then ignore the SIGINT that stops it.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
