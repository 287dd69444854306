"""The --proxy options on the command line: the exact configuration, and bad values."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devserve import serving
from devserve._proxy import ProxyRoute
from devserve.cli import app
from devserve.config import ProxyConfig
from tests.support import run_main

runner = CliRunner()
Config = serving.ServeConfig

API = ProxyRoute("/api", "http://127.0.0.1:5000", "http", "127.0.0.1", 5000, None)
STRIPPED = ProxyRoute("/ws/", "https://[::1]:8443/", "https", "::1", 8443, "/")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[serving.ServeConfig]:
    """Replace the core entry point: the CLI's job ends at building the config."""
    configs: list[serving.ServeConfig] = []

    def fake_serve(config: serving.ServeConfig, on_ready: Callable[..., None]) -> None:
        configs.append(config)

    monkeypatch.setattr(serving, "serve", fake_serve)
    return configs


@pytest.mark.parametrize("command", ["serve", "cgi"])
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], Config(proxy=None)),
        (
            ["--proxy", "/api=http://127.0.0.1:5000"],
            Config(proxy=ProxyConfig(routes=(API,))),
        ),
        (
            ["--proxy", "/api=http://127.0.0.1:5000", "--proxy", "/ws/=https://[::1]:8443/"],
            Config(proxy=ProxyConfig(routes=(API, STRIPPED))),
        ),
        (
            [
                "site",
                "--proxy",
                "/api=http://127.0.0.1:5000",
                "--proxy-keep-host",
                "--proxy-timeout",
                "2.5",
                "--proxy-ca",
                "ca.pem",
                "--reload",
            ],
            Config(
                directory=Path("site"),
                reload=serving.ReloadConfig(),
                proxy=ProxyConfig(routes=(API,), keep_host=True, timeout=2.5, ca=Path("ca.pem")),
            ),
        ),
    ],
)
def test_proxy_options_build_the_exact_config(
    captured: list[serving.ServeConfig], command: str, args: list[str], expected: Config
) -> None:
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 0, result.output
    if command == "cgi":
        expected = dataclasses.replace(expected, cgi=serving.CGIConfig())
    assert captured == [expected]


@pytest.mark.parametrize("command", ["serve", "cgi"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--proxy", "/api"], "--proxy '/api': expected PREFIX=URL"),
        (["--proxy", "api=http://h"], "--proxy 'api=http://h': the prefix must start with /"),
        (["--proxy", "/api=ftp://h"], "only http:// and https:// backends can be proxied"),
        (["--proxy", "/api=file:///etc"], "only http:// and https:// backends can be proxied"),
        (["--proxy", "/api=http://h/?x=1"], "cannot have a query or a fragment"),
        (["--proxy", "/api=http://h/#x"], "cannot have a query or a fragment"),
        (["--proxy", "/api=http://h:99999"], "bad port"),
        (["--proxy", "/a b=http://h"], "a character a URL path cannot"),
        (
            ["--proxy", "/api=http://a", "--proxy", "/api/=http://b/"],
            "--proxy: the prefix is given twice: /api and /api/",
        ),
        (["--proxy-keep-host"], "need --proxy"),
        (["--proxy-timeout", "5"], "need --proxy"),
        (["--proxy-ca", "ca.pem"], "need --proxy"),
        (["--proxy", "/a=http://h", "--proxy-timeout", "0"], "--proxy-timeout: expected a number"),
        (["--proxy", "/a=http://h", "--proxy-timeout", "soon"], "--proxy-timeout: expected"),
    ],
)
def test_bad_proxy_values_are_one_line_and_status_2(
    command: str, args: list[str], message: str
) -> None:
    """Through the real entry point (`main`), exactly as a shell runs it."""
    status, output = run_main([command, ".", *args])
    assert status == 2, output
    assert output.startswith("devserve: error: "), output
    assert message in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_help_shows_the_proxy_options() -> None:
    text = runner.invoke(app, ["serve", "-h"]).output
    for option in ("--proxy PREFIX=URL", "--proxy-keep-host", "--proxy-timeout", "--proxy-ca"):
        assert option in text


def test_routes_print_as_they_were_given() -> None:
    from devserve._proxy import parse_route

    assert str(parse_route("/api/=http://127.0.0.1:5000/v1")) == "/api/=http://127.0.0.1:5000/v1"
