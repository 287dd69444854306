"""The host options on the command line: the exact configuration, and a real run."""

from __future__ import annotations

import dataclasses
import http.client
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devserve import serving
from devserve.cli import COMPLETION_FILES, app, completion_script
from tests.support import ROOT, devserve_process, stop_and_read

runner = CliRunner()
Config = serving.ServeConfig


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
        ([], Config(host_files=True, clean_urls=False, not_found_page=None)),
        (["--clean-urls"], Config(clean_urls=True)),
        (["--no-host-files"], Config(host_files=False)),
        (["--404", "errors/missing.html"], Config(not_found_page="errors/missing.html")),
        (
            ["site", "--clean-urls", "--no-host-files", "--404", "404.html", "--spa"],
            Config(
                directory=Path("site"),
                clean_urls=True,
                host_files=False,
                not_found_page="404.html",
                spa=True,
            ),
        ),
    ],
)
def test_host_options_build_the_exact_config(
    captured: list[serving.ServeConfig], command: str, args: list[str], expected: Config
) -> None:
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 0, result.output
    if command == "cgi":
        expected = dataclasses.replace(expected, cgi=serving.CGIConfig())
    assert captured == [expected]


@pytest.mark.parametrize(
    "page", ["/etc/passwd", "../outside.html", "errors/../../x.html", "", "errors/"]
)
def test_a_404_page_outside_the_folder_is_refused(
    captured: list[serving.ServeConfig], page: str
) -> None:
    result = runner.invoke(app, ["serve", "--404", page])
    assert result.exit_code == 1
    assert "devserve: error: --404 must name a file inside the served folder" in result.output
    assert captured == []


def test_a_missing_404_page_is_an_error_at_start_up(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path), "--port", "0", "--404", "nope.html"])
    assert result.exit_code == 1
    assert "--404 page not found" in result.output


def test_the_options_have_help() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--clean-urls", "--no-host-files", "--404 FILE"):
        assert option in result.output


@pytest.mark.parametrize("shell", sorted(COMPLETION_FILES))
def test_the_shipped_completions_are_still_current(shell: str) -> None:
    shipped = (ROOT / "completions" / COMPLETION_FILES[shell]).read_text()
    assert shipped == completion_script(shell)


def test_a_real_run_previews_the_host(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "about.html").write_text("<h1>about</h1>")
    (site / "404.html").write_text("<h1>lost</h1>")
    (site / "_redirects").write_text("/old /about 301\n/bad /x 999\n")
    (site / "_headers").write_text("/*\n  X-Frame-Options: DENY\n")
    with devserve_process("serve", str(site), "--port", "0", "--clean-urls") as (process, url):
        parts = urllib.parse.urlsplit(url)
        answers = {}
        for target in ("/old?x=1", "/about.html", "/about", "/nowhere", "/_redirects"):
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
            connection.request("GET", target)
            response = connection.getresponse()
            answers[target] = (
                response.status,
                response.getheader("Location"),
                response.getheader("X-Frame-Options"),
                response.read(),
            )
            connection.close()
        log = stop_and_read(process)
    assert answers == {
        "/old?x=1": (301, "/about?x=1", None, b""),
        "/about.html": (308, "/about", None, b""),
        "/about": (200, None, "DENY", b"<h1>about</h1>"),
        "/nowhere": (404, None, "DENY", b"<h1>lost</h1>"),
        "/_redirects": (404, None, "DENY", b"<h1>lost</h1>"),
    }
    lines = log.splitlines()
    warning = next(i for i, line in enumerate(lines) if "_redirects line 2 ignored" in line)
    first_request = next(i for i, line in enumerate(lines) if "GET /old" in line)
    assert warning < first_request  # said at start-up, before any request
    assert "status 999" in lines[warning]
    assert "_redirects line 1" in lines[first_request]  # the log names the rule
