"""The devserve command line: configuration, errors, help, completion, a real run."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from devserve import __version__, serving
from devserve.cli import COMPLETION_FILES, app, completion_script

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[serving.ServeConfig]:
    """Replace the core entry point: the CLI's job ends at building the config."""
    configs: list[serving.ServeConfig] = []

    def fake_serve(config: serving.ServeConfig, on_ready: Callable[..., None]) -> None:
        configs.append(config)

    monkeypatch.setattr(serving, "serve", fake_serve)
    return configs


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"devserve {__version__}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], serving.ServeConfig(Path("."), None, "127.0.0.1", "HTTP/1.1", False)),
        (["site"], serving.ServeConfig(Path("site"), None, "127.0.0.1", "HTTP/1.1", False)),
        (
            ["site", "-p", "0", "-b", "::1", "--protocol", "HTTP/1.0", "-q"],
            serving.ServeConfig(Path("site"), 0, "::1", "HTTP/1.0", True),
        ),
        (
            ["--port", "9000", "--bind", "0.0.0.0", "--quiet"],
            serving.ServeConfig(Path("."), 9000, "0.0.0.0", "HTTP/1.1", True),
        ),
    ],
)
def test_serve_builds_exact_config(
    captured: list[serving.ServeConfig], args: list[str], expected: serving.ServeConfig
) -> None:
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    assert captured == [expected]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "/definitely/not/here"], "directory not found: /definitely/not/here"),
        (["serve", str(ROOT / "README.md")], "not a directory"),
        (["serve", ".", "--port", "70000"], "port out of range: 70000"),
        (["serve", ".", "--port", "-1"], "port out of range: -1"),
        (["serve", ".", "--protocol", "HTTP/2"], "unsupported protocol 'HTTP/2'"),
        (["serve", ".", "--bind", "256.1.1.1", "--port", "0"], "cannot bind 256.1.1.1"),
        (["serve", ".", "--bind", "192.0.2.1", "--port", "0"], "not available on this machine"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_option_type_is_usage_error() -> None:
    result = runner.invoke(app, ["serve", "--port", "eighty"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def _walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, [*path, name])


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    seen = 0
    for path, command in _walk(root, []):
        seen += 1
        assert command.help, f"command {path} has no help"
        for param in command.params:
            if isinstance(param, typer.core.TyperOption):
                assert param.help, f"option {param.name} of {path} has no help"
        for flag in ("-h", "--help"):
            result = runner.invoke(app, [*path, flag])
            assert result.exit_code == 0
            assert "Usage" in result.output
    assert seen >= 2


@pytest.mark.parametrize("shell", sorted(COMPLETION_FILES))
def test_static_completion_scripts_are_current(shell: str) -> None:
    shipped = (ROOT / "completions" / COMPLETION_FILES[shell]).read_text()
    assert shipped == completion_script(shell), (
        "completions/ is out of date: run "
        "python -c 'from devserve.cli import write_completions; write_completions()'"
    )


def _devserve_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}
    env.pop("FORCE_COLOR", None)
    return env


def test_completion_request_completes_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserve"],
        env=_devserve_env(
            _DEVSERVE_COMPLETE="complete_bash", COMP_WORDS="devserve se", COMP_CWORD="1"
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "serve" in result.stdout.split()


@contextlib.contextmanager
def devserve_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `python -m devserve serve ...`, yield it and the URL it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devserve", "serve", *args],
        env=_devserve_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            found = re.search(r"http://\S+", line)
            if found:
                url = found[0]
                break
        assert url, "devserve did not print its URL"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_real_run_serves_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from devserve")
    with devserve_process(str(tmp_path), "--port", "0") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "hello.txt", timeout=10) as response:
            assert response.read() == b"hello from devserve"
        curl = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url + "missing"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.stdout == "404"
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert process.stderr is not None
        log = process.stderr.read()
    assert '"GET /hello.txt HTTP/1.1" 200' in log
    assert "Traceback" not in log


def test_sigterm_also_stops_cleanly(tmp_path: Path) -> None:
    with devserve_process(str(tmp_path), "--port", "0", "--quiet") as (process, _):
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_explicit_busy_port_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devserve", "serve", str(tmp_path), "--port", str(busy)],
            env=_devserve_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"port {busy} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_default_port_moves_to_the_next(tmp_path: Path) -> None:
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already taken by someone else: just as busy
            holder.bind(("127.0.0.1", serving.DEFAULT_PORT))
            holder.listen()
        with devserve_process(str(tmp_path), "--quiet") as (process, url):
            port = int(url.rsplit(":", 1)[1].strip("/"))
            assert serving.DEFAULT_PORT < port < serving.DEFAULT_PORT + serving.PORT_SEARCH
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
    finally:
        holder.close()


def test_python_dash_m_devserve_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserve", "--version"],
        env=_devserve_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == f"devserve {__version__}"
