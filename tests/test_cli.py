"""The devserve command line: the config it builds, its errors, help and completion.

`devserve serve` run as a real process (signals, logs, ports, options served)
is tested in test_serving_process.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from devserve import __version__, serving
from devserve import config as settings
from devserve._auth import User
from devserve.cli import COMPLETION_FILES, app, completion_script
from tests.support import devserve_env, run_main

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


Config = serving.ServeConfig


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], Config()),
        (["site"], Config(directory=Path("site"))),
        (
            ["site", "-p", "0", "-b", "::1", "--protocol", "HTTP/1.0", "-q"],
            Config(directory=Path("site"), port=0, bind="::1", protocol="HTTP/1.0", quiet=True),
        ),
        (["--port", "9000", "--lan"], Config(port=9000, lan=True)),
        (
            ["--open", "--cors", "--spa", "--no-listing", "--show-hidden", "--follow-symlinks"],
            Config(
                open_browser=True,
                cors=True,
                spa=True,
                listing=False,
                show_hidden=True,
                follow_symlinks=True,
            ),
        ),
        (
            ["-H", "X-One: 1", "--header", "X-Two:two words "],
            Config(headers=(("X-One", "1"), ("X-Two", "two words"))),
        ),
        (
            ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-password-file", "p.txt"],
            Config(tls_cert=Path("c.pem"), tls_key=Path("k.pem"), tls_password_file=Path("p.txt")),
        ),
        (["--log-format", "json"], Config(log_format="json")),
        (
            ["--idle-timeout", "5", "--max-connections", "10"],
            Config(idle_timeout=5.0, max_connections=10),
        ),
        (["--log-format", "plain", "--quiet"], Config(log_format="plain", quiet=True)),
        (["--auth", "alice:s3cret:x"], Config(auth=(User("alice", "s3cret:x"),))),
        (["--tls", "auto"], Config(tls_auto=True)),
        (
            ["--lan", "--tls", "auto", "--auth", "a:b"],
            Config(lan=True, tls_auto=True, auth=(User("a", "b"),)),
        ),
    ],
)
def test_serve_builds_exact_config(
    captured: list[serving.ServeConfig], args: list[str], expected: serving.ServeConfig
) -> None:
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    assert captured == [expected]


USERS_FILE = "# people\nalice:s3cret\nbob:hunter2 x\n"


@pytest.mark.parametrize("command", ["serve", "cgi"])
def test_auth_from_the_environment_or_a_file(
    captured: list[serving.ServeConfig], tmp_path: Path, command: str
) -> None:
    users = tmp_path / "users.txt"
    users.write_text(USERS_FILE)
    cgi = CGI() if command == "cgi" else None
    from_env = runner.invoke(app, [command], env={"DEVSERVE_AUTH": "carol:pw"})
    from_file = runner.invoke(app, [command, "--auth-file", str(users)], env={"DEVSERVE_AUTH": ""})
    assert (from_env.exit_code, from_file.exit_code) == (0, 0), from_env.output + from_file.output
    assert captured == [
        Config(cgi=cgi, auth=(User("carol", "pw"),)),
        Config(cgi=cgi, auth=(User("alice", "s3cret"), User("bob", "hunter2 x"))),
    ]


def test_help_shows_no_password() -> None:
    result = runner.invoke(app, ["serve", "-h"], env={"DEVSERVE_AUTH": "carol:topsecret"})
    assert result.exit_code == 0
    assert "DEVSERVE_AUTH" in result.output
    assert "topsecret" not in result.output
    assert "--auth-file" in result.output
    assert "--tls" in result.output


CGI = settings.CGIConfig


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], Config(cgi=CGI())),
        (["site"], Config(directory=Path("site"), cgi=CGI())),
        (
            ["--cgi-dir", "/scripts/", "--cgi-dir", "/more", "--timeout", "2.5"],
            Config(cgi=CGI(directories=("/scripts", "/more"), timeout=2.5)),
        ),
        (
            ["--env", "A=1", "--env", "B=x=y", "--pass-env", "HOME", "--max-body", "10"],
            Config(cgi=CGI(env=(("A", "1"), ("B", "x=y")), pass_env=("HOME",), max_body=10)),
        ),
        (
            ["site", "-p", "0", "--reload", "--cors", "-H", "X-A: 1", "--log-format", "plain"],
            Config(
                directory=Path("site"),
                port=0,
                reload=settings.ReloadConfig(),
                cors=True,
                headers=(("X-A", "1"),),
                log_format="plain",
                cgi=CGI(),
            ),
        ),
    ],
)
def test_cgi_builds_exact_config(
    captured: list[serving.ServeConfig], args: list[str], expected: serving.ServeConfig
) -> None:
    result = runner.invoke(app, ["cgi", *args])
    assert result.exit_code == 0, result.output
    assert captured == [expected]


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["serve", "/definitely/not/here"], "directory not found: /definitely/not/here", 2),
        (["serve", str(ROOT / "README.md")], "not a directory", 2),
        (["serve", ".", "--port", "70000"], "--port: expected a port number from 0 to 65535", 2),
        (["serve", ".", "--port", "-1"], "--port: expected a port number", 2),
        (["serve", ".", "--port", "eighty"], "not 'eighty'", 2),
        (["serve", ".", "--idle-timeout", "0"], "--idle-timeout: expected a number of seconds", 2),
        (["serve", ".", "--max-connections", "0"], "--max-connections: expected a whole", 2),
        (["serve", ".", "--protocol", "HTTP/2"], "--protocol: 'HTTP/2' is not one of", 2),
        (["cgi", ".", "--max-body", "10 parsecs"], "--max-body: expected a size", 2),
        (["cgi", ".", "--timeout", "soon"], "--timeout: expected a number of seconds", 2),
        (["serve", ".", "--lan", "--bind", "127.0.0.1"], "use either --lan or --bind", 2),
        (["serve", ".", "--header", "NoColon"], "malformed --header 'NoColon'", 2),
        (["serve", ".", "--header", "Connection: close"], "'Connection' is not allowed", 2),
        (["serve", ".", "--header", "content-length: 5"], "'content-length' is not allowed", 2),
        (["serve", ".", "--header", "Bad Name: x"], "is not a header name", 2),
        (["serve", ".", "--header", ": x"], "malformed --header", 2),
        (["serve", ".", "--tls-cert", "/nope/cert.pem"], "cannot read TLS certificate", 2),
        (["serve", ".", "--tls-key", str(ROOT / "README.md")], "need --tls-cert", 2),
        (["serve", ".", "--tls-cert", str(ROOT / "README.md")], "is not a PEM certificate", 2),
        (["serve", ".", "--auth", "nocolon-topsecret"], "--auth: expected USER:PASSWORD", 2),
        (["serve", ".", "--auth", ":topsecret"], "--auth: the user name is empty", 2),
        (["serve", ".", "--auth", "alice:"], "--auth: the password is empty", 2),
        (["serve", ".", "--auth", "al\x1bice:topsecret"], "--auth: control characters", 2),
        (["cgi", ".", "--auth", "nocolon-topsecret"], "--auth: expected USER:PASSWORD", 2),
        (["serve", ".", "--auth-file", "/nope/users.txt"], "cannot read --auth-file", 2),
        (
            ["serve", ".", "--auth", "a:topsecret", "--auth-file", "x"],
            "use either --auth (or DEVSERVE_AUTH) or --auth-file, not both",
            2,
        ),
        (["serve", ".", "--tls", "manual"], "--tls: 'manual' is not one of 'auto'", 2),
        (["serve", ".", "--tls"], "--tls", 2),
        (
            ["serve", ".", "--tls", "auto", "--tls-cert", "c.pem"],
            "use either --tls auto or --tls-cert, not both",
            2,
        ),
        (["serve", ".", "--bind", "256.1.1.1", "--port", "0"], "cannot bind 256.1.1.1", 1),
        (["serve", ".", "--bind", "192.0.2.99", "--port", "0"], "not available on this machine", 1),
    ],
)
def test_bad_input_is_one_line_status_2_and_a_failure_to_run_status_1(
    args: list[str], message: str, status: int
) -> None:
    """Through the real entry point (`main`), exactly as a shell runs it."""
    status_seen, output = run_main(args)
    assert status_seen == status, output
    assert output.startswith("devserve: error: "), output
    assert message in output
    assert "Traceback" not in output
    assert "topsecret" not in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--bogus"], "no such option: --bogus; see 'devserve serve -h'"),
        (["serve", "--cros"], "no such option: --cros (did you mean --cors?)"),
        (["chek"], "no such command 'chek' (did you mean 'check'?)"),
        (["check", "--format", "xml"], "--format: 'xml' is not one of"),
    ],
)
def test_usage_errors_name_no_framework_types(args: list[str], message: str) -> None:
    status, output = run_main(args)
    assert status == 2
    assert output.startswith(f"devserve: error: {message}"), output
    for framework_word in ("Usage:", "Try '", "Invalid value", "valid int", "float range", "x>="):
        assert framework_word not in output


def test_auth_file_errors_name_the_line_not_its_text(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("alice:ok\nbob-topsecret\n")
    status, output = run_main(["serve", str(tmp_path), "--auth-file", str(users)])
    assert status == 2
    assert output == f"devserve: error: --auth-file {users} line 2: expected user:password\n"


def test_help_names_no_framework_types() -> None:
    for command in ("serve", "cgi", "check"):
        text = runner.invoke(app, [command, "-h"]).output
        for framework_word in ("<int>", "<float", "<path>", "INTEGER", "FLOAT", "RANGE", "x>="):
            assert framework_word not in text, (command, framework_word)


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


def test_completion_request_completes_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserve"],
        env=devserve_env(
            _DEVSERVE_COMPLETE="complete_bash", COMP_WORDS="devserve se", COMP_CWORD="1"
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "serve" in result.stdout.split()


def test_python_dash_m_devserve_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devserve", "--version"],
        env=devserve_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == f"devserve {__version__}"
