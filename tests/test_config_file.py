"""Settings from devserve.toml / [tool.devserve] and DEVSERVE_* variables, and their order:
flags, then the environment, then the file, then the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve import config_file
from devserve.config import BadInput
from tests.support import devserve_process, run_main, stop_and_read

KNOWN = {
    "serve": frozenset({"directory", "port", "reload", "max_connections", "watch"}),
    "cgi": frozenset({"directory", "port", "timeout"}),
}


def test_devserve_toml_comes_first(tmp_path: Path) -> None:
    (tmp_path / "devserve.toml").write_text("port = 1\n")
    (tmp_path / "pyproject.toml").write_text("[tool.devserve]\nport = 2\n")
    found = config_file.find(tmp_path)
    assert found is not None and found[0].name == "devserve.toml" and found[1] == {"port": 1}


def test_pyproject_needs_a_tool_devserve_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert config_file.find(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[tool.devserve]\nreload = true\n")
    assert config_file.find(tmp_path) == (tmp_path / "pyproject.toml", {"reload": True})


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "devserve.toml").write_text("port = \n")
    with pytest.raises(BadInput, match=r"devserve\.toml: "):
        config_file.find(tmp_path)


def test_settings_go_to_the_commands_that_have_them(tmp_path: Path) -> None:
    path = tmp_path / "devserve.toml"
    table = {
        "port": 3000,
        "max-connections": 10,
        "watch": ["src", "/abs"],
        "directory": "site",
        "cgi": {"timeout": 5, "port": 3001},
    }
    assert config_file.defaults_by_command(path, table, KNOWN) == {
        "serve": {
            "port": 3000,
            "max_connections": 10,
            "watch": [str(tmp_path / "src"), "/abs"],
            "directory": str(tmp_path / "site"),
        },
        "cgi": {"port": 3001, "directory": str(tmp_path / "site"), "timeout": 5},
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"prot": 1}, "unknown setting 'prot'"),
        ({"cgi": {"reload": True}}, "[cgi] has no setting 'reload'"),
        ({"serve": 3}, "[serve] must be a table"),
    ],
)
def test_mistakes_are_errors(tmp_path: Path, table: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_file.defaults_by_command(tmp_path / "devserve.toml", table, KNOWN)


def settings(args: list[str]) -> dict[str, str]:
    status, output = run_main([*args, "--show-settings"])
    assert status == 0, output
    shown = {}
    for line in output.splitlines():
        if not line.startswith("#"):
            key, _, rest = line.partition(" = ")
            shown[key] = rest
    return shown


def test_flags_beat_the_environment_beat_the_file_beat_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "devserve.toml").write_text(
        'directory = "site"\nport = 3000\nidle-timeout = 7\nmax-connections = 50\n'
        'protocol = "HTTP/1.0"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEVSERVE_PORT", "4000")
    monkeypatch.setenv("DEVSERVE_IDLE_TIMEOUT", "8")
    monkeypatch.setenv("PORT", "5000")  # DEVSERVE_PORT is more specific
    shown = settings(["serve", "--idle-timeout", "9"])
    assert shown["idle-timeout"] == "9.0  # command line"
    assert shown["port"] == "4000  # environment: DEVSERVE_PORT"
    assert shown["max-connections"] == f"50  # {tmp_path / 'devserve.toml'}"
    assert shown["protocol"] == f'"HTTP/1.0"  # {tmp_path / "devserve.toml"}'
    assert shown["directory"] == f'"{tmp_path / "site"}"  # {tmp_path / "devserve.toml"}'
    assert shown["reload"] == "false  # default"
    monkeypatch.delenv("DEVSERVE_PORT")
    assert settings(["serve"])["port"] == "5000  # environment: PORT"


def test_bad_values_from_the_file_or_environment_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "devserve.toml").write_text("prot = 1\n")
    status, output = run_main(["serve"])
    assert (status, output) == (
        2,
        f"devserve: error: {tmp_path}/devserve.toml: unknown setting 'prot'\n",
    )
    (tmp_path / "devserve.toml").write_text("max-connections = 0\n")
    status, output = run_main(["serve"])
    assert status == 2 and "--max-connections: expected a whole number" in output
    (tmp_path / "devserve.toml").unlink()
    monkeypatch.setenv("DEVSERVE_RELOAD", "maybe")
    status, output = run_main(["serve"])
    assert status == 2 and output.startswith("devserve: error: --reload"), output


def test_a_hosting_platforms_port_is_used(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hi")
    with devserve_process("serve", str(tmp_path), env={"PORT": "0"}) as (process, url):
        assert not url.endswith(":8000/")  # 0: any free port, as PORT said
        stop_and_read(process)


def test_show_settings_never_shows_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "users.txt").write_text("alice:topsecret\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEVSERVE_AUTH", "carol:topsecret")
    shown = settings(["serve", "--tls", "auto"])
    assert shown["auth"] == '"***"  # environment: DEVSERVE_AUTH'
    assert shown["tls"] == '"auto"  # command line'
    status, output = run_main(["serve", "--auth", "dave:topsecret", "--show-settings"])
    assert status == 0
    assert 'auth = "***"  # command line' in output.splitlines()
    assert "topsecret" not in output
    monkeypatch.delenv("DEVSERVE_AUTH")
    # --auth-file in the settings file is relative to the file's folder
    (tmp_path / "devserve.toml").write_text('auth-file = "users.txt"\n')
    shown = settings(["serve"])
    assert shown["auth-file"] == f'"{tmp_path / "users.txt"}"  # {tmp_path / "devserve.toml"}'
