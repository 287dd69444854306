"""The load test from bench/ as a test: 1,000 keep-alive and 200 slow connections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_normal_client_is_answered_under_load() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--seconds", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    totals = json.loads(result.stdout)
    assert totals["errors"] == 0, totals["error_kinds"]
    assert totals["normal_failures"] == 0
    assert totals["normal_requests"] >= 10
    assert totals["normal_max_s"] < 1.0
    assert totals["requests"] > 5000  # the 1,000 keep-alive clients were really served
    assert totals["peak_sockets"] >= 1000  # ... all at once
    # Between requests, kept-alive connections wait in the event loop, not in threads.
    assert totals["peak_threads"] < 100
    assert result.returncode == 0
