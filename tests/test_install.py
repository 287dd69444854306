"""The package installs: a built wheel in a fresh virtualenv gives a working `devserve`."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

import pytest

from devserve import __version__

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheels = list(dist.glob("devserve-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = env_dir / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "-q", str(wheels[0])], check=True, capture_output=True, timeout=600
    )
    devserve = env_dir / "bin" / "devserve"

    version = subprocess.run(
        [str(devserve), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"devserve {__version__}"

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>installed</h1>")
    server = subprocess.Popen(
        [str(devserve), "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    try:
        assert server.stderr is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            found = re.search(r"http://\S+", line)
            url = found[0] if found else ""
        assert url, "the installed devserve did not print its URL"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"<h1>installed</h1>"
    finally:
        server.terminate()
        assert server.wait(10) == 0
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
    # the wheel ships the typing marker and no tests
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheels[0])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "devserve/py.typed" in names
    assert "tests/" not in names
