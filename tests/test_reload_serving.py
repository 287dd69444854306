"""--reload in the server: injected pages, their headers, CGI replies, the log, the CLI.

Servers run in-process (`serving.create_server`, port 0 read back) and are spoken
to with ``http.client``; the ``devserve`` command runs as a subprocess where the
watcher and the log matter.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devserve import serving
from devserve.cli import app
from devserve.reload import inject as reload_inject
from devserve.reload.hub import ReloadHub
from tests.support import Collector, port_of, read_to_end, running_devserve

ROOT = Path(__file__).resolve().parent.parent
PAGE = "<!doctype html><html><head><title>t</title></head><body><h1>home</h1></body></html>"
MARK = b"<script data-devserve-reload>"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


@dataclass
class Running:
    port: int
    hub: ReloadHub | None
    log: Collector

    def wait_for_warnings(self, count: int, timeout: float = 5.0) -> list[str]:
        """The warnings logged, once there are ``count`` (the log follows the response)."""
        deadline = time.monotonic() + timeout
        while len(self.log.warnings()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.log.warnings()

    def get(self, path: str, method: str = "GET", **headers: str) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.getheaders(), response.read())
        finally:
            connection.close()


@contextlib.contextmanager
def running(config: serving.ServeConfig) -> Iterator[Running]:
    with running_devserve(config) as (server, log, _):
        yield Running(port_of(server), server.context.site.hub, log)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs" / "empty").mkdir(parents=True)
    (root / "index.html").write_text(PAGE)
    (root / "docs" / "guide.html").write_text("<body>guide</body>")
    (root / "style.css").write_text("h1 { color: red }")
    (root / "app.js").write_text("console.log('</body>')")
    (root / "notes.txt").write_text("plain notes")
    (root / "utf16.html").write_bytes("\ufeff<body>héllo ✓</body>".encode("utf-16-le"))
    return root


@pytest.fixture
def live(site: Path) -> Iterator[Running]:
    config = serving.ServeConfig(
        directory=site, reload=serving.ReloadConfig(), headers=(("X-Extra", "yes"),), spa=True
    )
    with running(config) as server:
        yield server


def snippet_config(body: bytes) -> dict[str, object]:
    found = re.search(rb"\)\((\{[^}]*\})\);\n</script>", body)
    assert found is not None, body[-300:]
    return dict(json.loads(found[1]))


def test_an_injected_page_is_complete_uncached_and_whole(live: Running, site: Path) -> None:
    reply = live.get("/")
    assert reply.status == 200
    assert reply.header("Content-Length") == str(len(reply.body))
    assert reply.header("Content-Type") == "text/html"
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("ETag") is None
    assert reply.header("Last-Modified") is None
    assert reply.header("Accept-Ranges") is None
    assert reply.header("X-Extra") == "yes"  # --header still applies
    before, _, after = PAGE.partition("</body>")
    assert reply.body.startswith(before.encode() + MARK)
    assert reply.body.endswith(b"</script></body>" + after.encode())
    assert live.hub is not None
    assert snippet_config(reply.body) == {"root": "./", "server": live.hub.server_id, "seq": 0}


def test_ranges_and_validators_do_not_apply_to_injected_pages(live: Running) -> None:
    whole = live.get("/index.html").body
    for headers in (
        {"Range": "bytes=0-9"},
        {"If-None-Match": "*"},
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {"Range": "bytes=0-9", "If-Range": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ):
        reply = live.get("/index.html", **headers)
        assert (reply.status, reply.body) == (200, whole), headers
    head = live.get("/index.html", "HEAD")
    assert head.header("Content-Length") == str(len(whole))
    assert head.body == b""


def test_the_page_carries_the_change_count_and_its_way_back_to_the_root(live: Running) -> None:
    assert live.hub is not None
    live.hub.publish(css_only=False)
    assert snippet_config(live.get("/docs/guide.html").body) == {
        "root": "../",
        "server": live.hub.server_id,
        "seq": 1,
    }
    spa_route = live.get("/a/b/c")  # a --spa route, answered with index.html
    assert snippet_config(spa_route.body)["root"] == "../../"


def test_other_files_are_untouched(live: Running, site: Path) -> None:
    for name in ("style.css", "app.js", "notes.txt"):
        reply = live.get("/" + name)
        assert reply.body == (site / name).read_bytes()
        assert reply.header("ETag") is not None
        assert reply.header("Cache-Control") == "no-cache"


def test_only_page_loads_get_the_script(live: Running) -> None:
    fetched = live.get("/index.html", **{"Sec-Fetch-Dest": "empty"})  # fetch(), htmx...
    assert fetched.body == PAGE.encode()
    assert fetched.header("ETag") is not None
    for destination in ("document", "iframe"):
        assert MARK in live.get("/index.html", **{"Sec-Fetch-Dest": destination}).body


def test_keep_alive_responses_do_not_inherit_each_others_headers(live: Running) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    seen = []
    for path in ("/index.html", "/style.css", "/index.html", "/missing.css"):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        seen.append((response.getheader("Cache-Control"), response.getheader("ETag") is None))
    connection.close()  # a 404 keeps the connection open too
    assert seen == [
        ("no-store", True),
        ("no-cache", False),
        ("no-store", True),
        ("no-store", True),  # the 404 page has the script too
    ]


def test_listings_and_error_pages_get_the_script(live: Running) -> None:
    listing = live.get("/docs/empty/")
    assert listing.status == 200
    assert MARK in listing.body
    assert b"Directory listing for /docs/empty/" in listing.body
    assert listing.header("Content-Length") == str(len(listing.body))
    assert snippet_config(listing.body)["root"] == "../../"

    missing = live.get("/docs/missing.css")  # an asset: a 404 even under --spa
    assert missing.status == 404
    assert MARK in missing.body
    assert missing.header("Content-Length") == str(len(missing.body))
    assert missing.header("Cache-Control") == "no-store"
    assert b"Error code: 404" in missing.body
    head = live.get("/docs/missing.css", "HEAD")
    assert head.status == 404
    assert head.body == b""


def test_utf16_pages_are_injected_in_utf16(live: Running) -> None:
    reply = live.get("/utf16.html")
    text = reply.body.decode("utf-16")  # the BOM is kept and read
    assert text.startswith("<body>héllo ✓<script data-devserve-reload>")
    assert text.endswith("</script></body>")
    assert reply.header("Content-Length") == str(len(reply.body))


def test_a_page_that_cannot_be_injected_is_said_once(live: Running) -> None:
    page = {"Sec-Fetch-Dest": "document"}
    live.get("/notes.txt", **page)
    live.get("/notes.txt", **page)
    live.get("/notes.txt?again=1", **page)
    live.get("/style.css")  # not a page load: nothing to say
    live.get("/app.js", **{"Sec-Fetch-Dest": "script"})
    assert live.wait_for_warnings(1) == [
        "live reload: /notes.txt has no reload script (not HTML: text/plain); "
        "it will not refresh by itself"
    ]


def test_pages_too_large_to_inject_are_served_as_they_are(
    live: Running, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload_inject, "MAX_INJECT_SIZE", 1 << 20)
    big = b"<body>" + b"x" * (1 << 20) + b"</body>"
    (site / "big.html").write_bytes(big)
    reply = live.get("/big.html", **{"Sec-Fetch-Dest": "document"})
    assert reply.body == big
    assert reply.header("ETag") is not None
    assert live.wait_for_warnings(1) == [
        "live reload: /big.html has no reload script (larger than 1 MiB); "
        "it will not refresh by itself"
    ]


def test_without_reload_no_byte_changes(site: Path) -> None:
    with running(serving.ServeConfig(directory=site)) as plain:
        assert plain.hub is None
        page = plain.get("/index.html")
        assert page.body == PAGE.encode()
        assert page.header("ETag") is not None
        assert page.header("Accept-Ranges") == "bytes"
        assert page.header("Cache-Control") == "no-cache"
        assert plain.get("/index.html", Range="bytes=0-4").body == PAGE.encode()[:5]
        assert MARK not in plain.get("/docs/empty/").body
        assert MARK not in plain.get("/nope.css").body
        assert plain.get("/__devserve__/events").status == 404
        assert plain.get("/__devserve__/worker.js").status == 404
        plain.get("/notes.txt", **{"Sec-Fetch-Dest": "document"})
        assert plain.log.warnings() == []


# ----------------------------------------------------------------------------- CGI replies

CGI_SCRIPTS = {
    # no Content-Length: streamed, the gateway chunks it
    "page.sh": "printf 'Content-Type: text/html; charset=utf-8\\n\\n<body>from cgi</body>'",
    # its own length and validators describe the uninjected body: they must go
    "sized.sh": 'printf \'Content-Type: text/html\\nContent-Length: 21\\nETag: "v1"\\n'
    "Cache-Control: max-age=600\\nX-Kept: 1\\n\\n<body>sized page</body>'",
    "slow.sh": "printf 'Content-Type: text/html\\n\\n<body>'; sleep 0.2; printf '<p>late</p></bo'; "
    "sleep 0.2; printf 'dy></html>'",
    "plain.sh": "printf 'Content-Type: text/plain\\n\\nnot a page'",
    "gzip.sh": "printf 'Content-Type: text/html\\nContent-Encoding: gzip\\n\\nxx'",
    "utf16.sh": "printf 'Content-Type: text/html; charset=utf-16\\n\\nxx'",
    "moved.sh": "printf 'Location: /index.html\\n\\n'",
}


@pytest.fixture
def cgi_site(public_tmp: Path) -> Path:
    root = public_tmp  # scripts run as nobody when the tests run as root
    (root / "cgi-bin").mkdir()
    (root / "index.html").write_text(PAGE)
    for name, body in CGI_SCRIPTS.items():
        script = root / "cgi-bin" / name
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(0o755)
    (root / "cgi-bin").chmod(0o755)
    return root


@pytest.fixture
def live_cgi(cgi_site: Path) -> Iterator[Running]:
    config = serving.ServeConfig(
        directory=cgi_site, reload=serving.ReloadConfig(), cgi=serving.CGIConfig(timeout=10)
    )
    with running(config) as server:
        yield server


def test_cgi_html_is_injected_as_it_streams(live_cgi: Running) -> None:
    reply = live_cgi.get("/cgi-bin/page.sh")
    assert reply.status == 200
    assert reply.body.startswith(b"<body>from cgi" + MARK)
    assert reply.body.endswith(b"</script></body>")
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Cache-Control") == "no-store"

    slow = live_cgi.get("/cgi-bin/slow.sh")
    assert slow.body.startswith(b"<body><p>late</p>" + MARK)
    assert slow.body.endswith(b"</script></body></html>")


def test_cgi_length_and_validators_are_dropped_when_injected(live_cgi: Running) -> None:
    reply = live_cgi.get("/cgi-bin/sized.sh")
    assert reply.body.startswith(b"<body>sized page" + MARK)
    assert reply.header("ETag") is None
    assert reply.header("Content-Length") is None
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("X-Kept") == "1"
    # HTTP/1.0 has no chunking: the body runs to the close, whole
    raw = _raw_exchange(live_cgi.port, b"GET /cgi-bin/sized.sh HTTP/1.0\r\n\r\n")
    assert raw.partition(b"\r\n\r\n")[2] == reply.body


def test_cgi_replies_that_are_not_pages_are_said_once(live_cgi: Running) -> None:
    page = {"Sec-Fetch-Dest": "document"}
    assert live_cgi.get("/cgi-bin/plain.sh", **page).body == b"not a page"
    live_cgi.get("/cgi-bin/plain.sh", **page)
    assert live_cgi.get("/cgi-bin/gzip.sh", **page).body == b"xx"
    assert live_cgi.get("/cgi-bin/utf16.sh", **page).body == b"xx"
    assert sorted(live_cgi.wait_for_warnings(3)) == [
        "live reload: /cgi-bin/gzip.sh has no reload script (compressed (gzip)); "
        "it will not refresh by itself",
        "live reload: /cgi-bin/plain.sh has no reload script (not HTML: text/plain); "
        "it will not refresh by itself",
        "live reload: /cgi-bin/utf16.sh has no reload script (streamed in utf-16); "
        "it will not refresh by itself",
    ]


def test_cgi_local_redirect_serves_the_injected_file(live_cgi: Running) -> None:
    reply = live_cgi.get("/cgi-bin/moved.sh")
    assert reply.status == 200
    assert MARK in reply.body
    assert reply.header("Content-Length") == str(len(reply.body))


def _raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_to_end(sock, timeout=10)


# ----------------------------------------------------------------------------- the CLI

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[serving.ServeConfig]:
    configs: list[serving.ServeConfig] = []
    monkeypatch.setattr(serving, "serve", lambda config, log: configs.append(config))
    return configs


@pytest.mark.parametrize("command", ["serve", "cgi"])
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], None),
        (["--no-reload"], None),
        (["--reload"], serving.ReloadConfig()),
        (
            ["--reload", "--watch", "../lib", "--watch", "data", "--ignore", "*.map"],
            serving.ReloadConfig(watch=(Path("../lib"), Path("data")), ignore=("*.map",)),
        ),
    ],
)
def test_cli_builds_the_reload_config(
    captured: list[serving.ServeConfig],
    command: str,
    args: list[str],
    expected: serving.ReloadConfig | None,
) -> None:
    result = runner.invoke(app, [command, *args])
    assert result.exit_code == 0, result.output
    assert [c.reload for c in captured] == [expected]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--watch", "x"], "--watch and --ignore need --reload"),
        (["--ignore", "*.map"], "--watch and --ignore need --reload"),
        (["--reload", "--watch", "/no/such/folder", "--port", "0"], "--watch path not found"),
    ],
)
def test_cli_reload_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["serve", str(tmp_path), *args])
    assert result.exit_code == 2, result.output  # bad usage
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the process

PROBE = textwrap.dedent(
    """
    import json, os, signal, sys, threading, urllib.request
    from pathlib import Path
    from devserve import serving

    class Probe:
        def __call__(self, item): pass
        def stopped(self, summary): pass
        def ready(self, info):
            def visit():
                body = urllib.request.urlopen(info.urls[0], timeout=10).read()
                print(json.dumps({
                    "threads": sorted(t.name for t in threading.enumerate()),
                    "watchfiles": "watchfiles" in sys.modules,
                    "injected": b"devserve-reload" in body,
                }))
                os.kill(os.getpid(), signal.SIGINT)
            threading.Thread(target=visit).start()

    reload = serving.ReloadConfig() if sys.argv[2] == "on" else None
    config = serving.ServeConfig(directory=Path(sys.argv[1]), port=0, reload=reload)
    serving.serve(config, Probe())
    """
)


@pytest.mark.parametrize("reload", ["off", "on"])
def test_no_watcher_runs_without_reload(site: Path, reload: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(site), reload],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    on = reload == "on"
    assert ("devserve-reload-watcher" in seen["threads"]) is on
    assert seen["watchfiles"] is on
    assert seen["injected"] is on


def test_the_log_says_what_changed_and_who_was_told(site: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "devserve", "serve", str(site), "--port", "0", "--reload",
         "--ignore", "*.tmp"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        banner = ""
        while "only this machine" not in banner:  # the banner's last line
            banner += process.stderr.readline()
        assert "Options: live reload" in banner
        (site / "ignored.tmp").write_text("x")
        (site / "index.html").write_text(PAGE.replace("home", "changed"))
        line = process.stderr.readline()
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d changed: index\.html \(no browser is connected to reload\)\n", line
        ), line
        (site / "style.css").write_text("h1 { color: blue }")
        (site / "notes.txt").unlink()
        assert "changed: notes.txt (deleted), style.css" in process.stderr.readline()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        rest = process.stderr.read()
        process.stderr.close()
    assert "ignored.tmp" not in rest
    assert "stopped:" in rest
