"""`devserve serve` run as a real program (devserve/serving.py behind the CLI).

Each test starts ``python -m devserve serve`` as a subprocess on 127.0.0.1 port 0
(read back from the banner) and checks what a user sees: the banner and log
lines, the options applied to what is served, SIGINT/SIGTERM with requests in
flight, busy ports, connection limits. Only loopback addresses are ever sent to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devserve import config as settings
from devserve import limits
from devserve._net import lan_addresses, url_host
from devserve.cli import app
from tests.support import (
    devserve_env,
    devserve_process,
    read_to_end,
    self_signed_certificate,
    stop_and_read,
)

runner = CliRunner()


def serve_process(
    *args: str, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`devserve serve ARGS...` as a subprocess (see tests.support.devserve_process)."""
    return devserve_process("serve", *args, env=env)


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_get(url: str, target: bytes) -> bytes:
    host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.0\r\n\r\n")
        return read_to_end(sock, 10)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from devserve")
    (root / "About.html").write_text("<h1>about</h1>")
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "guide.html").write_text("guide")
    (root / ".env").write_text("SECRET=1")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_text("Contact: x")
    return root


def test_real_run_logs_plain_lines_and_stops_with_a_summary(site: Path) -> None:
    with serve_process(str(site), "--port", "0") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "hello.txt")[2] == b"hello from devserve"
        curl = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url + "missing"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.stdout == "404"
        log = stop_and_read(process)
    assert "\x1b" not in log  # NO_COLOR and a pipe: plain text
    line = re.search(r"^\d\d:\d\d:\d\d 127\.0\.0\.1 GET /hello\.txt 200 (\d+) B [\d.]+ ms file$",
                     log, re.M)  # fmt: skip
    assert line, log
    assert re.search(r"^\S+ 127\.0\.0\.1 GET /missing 404 ", log, re.M)
    assert re.search(r"^stopped: 2 requests, [\d.]+ \w?i?B sent, 0 errors in [\d.]+ s$", log, re.M)
    assert "Traceback" not in log


def test_coloured_log_uses_the_theme_when_forced(site: Path) -> None:
    env = {"FORCE_COLOR": "1", "NO_COLOR": ""}
    with serve_process(str(site), "--port", "0", env=env) as (process, url):
        fetch(url + "hello.txt")
        fetch(url + "nope")
        log = stop_and_read(process)
    assert "\x1b[32m200\x1b[0m" in log  # 2xx: devserve.status.2xx (green)
    assert "\x1b[33m404\x1b[0m" in log  # 4xx: devserve.status.4xx (yellow)


def test_network_strings_are_scrubbed(site: Path) -> None:
    env = {"FORCE_COLOR": "1", "NO_COLOR": ""}
    with serve_process(str(site), "--port", "0", env=env) as (process, url):
        raw_get(url, b"/\x1b]0;pwned\x07[red]x\x9b")
        log = stop_and_read(process)
    assert "\x07" not in log
    assert "\x1b]0;" not in log
    assert "\x9b" not in log
    assert "/\\x1b]0;pwned\\x07[red]x" in log  # escaped, and the markup printed literally


def test_json_log_format(site: Path) -> None:
    """JSON lines on standard output (so `| jq` works), each with an event and a zoned time."""
    args = ("--port", "0", "--log-format", "json")
    with devserve_process("serve", str(site), *args, log="stdout") as (process, url):
        fetch(url + "hello.txt")
        raw_get(url, b"/\x1bbad")
        log = stop_and_read(process, "stdout")
        assert process.stderr is not None
        assert process.stderr.read() == ""  # nothing for a person to read meanwhile
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d|Z)", r["time"]) for r in records
    )
    assert {r["event"] for r in records} == {"request", "stopped"}  # listening was read already
    requests = [r for r in records if r["event"] == "request"]
    assert requests[0]["path"] == "/hello.txt"
    assert requests[0]["status"] == 200
    assert requests[0]["served"] == "file"
    assert requests[0]["bytes"] > 19
    assert requests[1]["path"] == "/\x1bbad"  # JSON escapes it: \u001b on the wire
    assert "\\u001b" in log
    assert records[-1]["event"] == "stopped"
    assert records[-1]["requests"] == 2


def test_404_suggests_the_closest_path(site: Path) -> None:
    with serve_process(str(site), "--port", "0") as (process, url):
        status, _, body = fetch(url + "about.html")
        assert status == 404
        assert b'Did you mean <a href="./About.html">/About.html</a>?' in body
        assert fetch(url + "docs/guide.htm")[0] == 404  # docs/guide serves guide.html
        log = stop_and_read(process)
    assert "GET /about.html 404" in log
    assert "did you mean /About.html" in log
    assert "did you mean /docs/guide.html" in log


def test_options_change_what_is_served(site: Path) -> None:
    args = ["--port", "0", "--spa", "--cors", "-H", "X-Extra: yes"]
    with serve_process(str(site), *args) as (process, url):
        status, headers, body = fetch(url + "some/app/route")
        assert (status, body) == (200, b"<h1>home</h1>")
        assert fetch(url + "missing.js")[0] == 404  # assets stay 404 under --spa
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert headers["X-Extra"] == "yes"
        assert headers["Cache-Control"] == "no-cache"
        preflight = subprocess.run(
            ["curl", "-s", "-i", "-X", "OPTIONS", "-H", "Origin: http://x.test",
             "-H", "Access-Control-Request-Headers: x-token", url + "hello.txt"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert preflight.stdout.startswith("HTTP/1.1 204")
        assert "Access-Control-Allow-Headers: x-token" in preflight.stdout
        log = stop_and_read(process)
    # the route was answered by the SPA fallback, and the banner lists the options
    route = r"^\S+ 127\.0\.0\.1 GET /some/app/route 200 \d+ B [\d.]+ ms spa$"
    assert re.search(route, log, re.M), log
    assert "  Options: cors, 1 extra header, spa" in log.splitlines(), log


def test_no_listing(site: Path) -> None:
    with serve_process(str(site), "--port", "0", "--no-listing", "-q") as (process, url):
        assert fetch(url + "docs/")[0] == 404
        assert fetch(url + "docs/guide.html")[0] == 200
        stop_and_read(process)


def test_hidden_files_are_not_served_by_default(site: Path) -> None:
    with serve_process(str(site), "--port", "0", "--quiet") as (process, url):
        assert fetch(url + ".env")[0] == 404
        assert fetch(url + ".well-known/security.txt")[2] == b"Contact: x"
        assert b".env" not in fetch(url + "docs/../")[2]
        stop_and_read(process)
    with serve_process(str(site), "--port", "0", "--show-hidden", "-q") as (process, url):
        assert fetch(url + ".env")[2] == b"SECRET=1"
        stop_and_read(process)


def test_symlinks_out_of_the_root_need_the_flag(site: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("outside")
    (site / "link.txt").symlink_to(tmp_path / "outside.txt")
    with serve_process(str(site), "--port", "0", "-q") as (process, url):
        assert fetch(url + "link.txt")[0] == 404
        stop_and_read(process)
    with serve_process(str(site), "--port", "0", "-q", "--follow-symlinks") as (process, url):
        assert fetch(url + "link.txt")[2] == b"outside"
        stop_and_read(process)


def test_tls(site: Path, tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    cert, key = self_signed_certificate(tmp_path, password="s3cret")
    args = ["--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)]
    with serve_process(str(site), *args, "--tls-password-file", str(password)) as (
        process,
        url,
    ):
        assert url.startswith("https://127.0.0.1:")
        result = subprocess.run(
            ["curl", "-sS", "--cacert", str(cert), url + "hello.txt"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.stdout == "hello from devserve"
        log = stop_and_read(process)
    assert "GET /hello.txt 200" in log
    bad = runner.invoke(app, ["serve", str(site), *args, "--port", "0"])
    assert bad.exit_code == 2  # the key needs its password
    assert "is encrypted: give its password with --tls-password-file" in bad.output


def test_open_launches_the_browser(site: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    with serve_process(str(site), "--port", "0", "--open", env={"BROWSER": str(browser)}) as (
        process,
        url,
    ):
        deadline = time.monotonic() + 10
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_and_read(process)
    assert opened.read_text().strip() == url


def test_open_says_so_when_no_browser_opens(site: Path) -> None:
    args = ("--port", "0", "--open", "--log-format", "plain")
    with serve_process(str(site), *args, env={"BROWSER": "false"}) as (process, url):
        time.sleep(1.0)  # the browser is tried in the background
        log = stop_and_read(process)
    assert f"--open: no browser could be opened; open {url} yourself" in log, log


def binds_every_ipv6_address() -> bool:
    """Whether this machine can bind ``::``, as ``--lan`` tries first (else it binds 0.0.0.0)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


def test_lan_lists_network_urls(site: Path) -> None:
    with serve_process(str(site), "--port", "0", "--lan", "-q") as (process, url):
        assert fetch(url + "hello.txt")[2] == b"hello from devserve"  # loopback, as always
        log = stop_and_read(process)
    # The banner's first URL is local; every address of this machine that is not
    # loopback or link-local follows as Network, with the bound port (the IPv6 ones
    # only when the server could bind "::"), then the warning.
    local = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", url)
    assert local, url
    port = int(local[1])
    addresses = lan_addresses()
    if not binds_every_ipv6_address():
        addresses = [a for a in addresses if ":" not in a]
    network = re.findall(r"^  Network: (\S+)$", log, re.M)
    assert network == [f"http://{url_host(a)}:{port}/" for a in addresses], log
    hint = "  reachable from your network: anyone on it can read these files"
    assert hint in log.splitlines(), log


def test_sigterm_also_stops_cleanly(tmp_path: Path) -> None:
    with serve_process(str(tmp_path), "--port", "0", "--quiet") as (process, _):
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None
        assert "stopped: 0 requests" in process.stderr.read()


def test_in_flight_request_finishes_before_exit(tmp_path: Path) -> None:
    size = 32 * 1024 * 1024  # more than the socket buffers hold: still in flight
    (tmp_path / "big.bin").write_bytes(b"x" * size)
    with serve_process(str(tmp_path), "--port", "0", "-q") as (process, url):
        host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            received = sock.recv(4096)
            process.send_signal(signal.SIGINT)  # mid-download
            time.sleep(0.3)  # the server is stopping while the body is unsent
            received += read_to_end(sock, 10)
        assert process.wait(10) == 0
    assert len(received.partition(b"\r\n\r\n")[2]) == size


def test_explicit_busy_port_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devserve", "serve", str(tmp_path), "--port", str(busy)],
            env=devserve_env(),
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
            holder.bind(("127.0.0.1", settings.DEFAULT_PORT))
            holder.listen()
        with serve_process(str(tmp_path), "--quiet") as (process, url):
            assert fetch(url)[0] == 200
            port = int(url.rsplit(":", 1)[1].strip("/"))
            assert settings.DEFAULT_PORT < port < settings.DEFAULT_PORT + settings.PORT_SEARCH
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
    finally:
        holder.close()


def test_limits_apply_to_the_real_server(site: Path) -> None:
    (site / "big.bin").write_bytes(bytes(32 * 1024 * 1024))
    args = ["--port", "0", "-q", "--idle-timeout", "0.5", "--max-connections", "2"]
    with serve_process(str(site), *args) as (process, url):
        host, port = url.split("//", 1)[1].strip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as idle:
            idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            idle.settimeout(5)
            while idle.recv(65536):  # the rest of the reply, then the server's close
                pass
            assert time.monotonic() - started < 3
        # Two connections the server is busy with: each asked for 32 MiB and reads none.
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        for sock in held:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            # The 503 comes on accept, before any request; until the server has
            # accepted (and counted) both held connections a third may still get in.
            reply = b""
            deadline = time.monotonic() + 10
            while not reply.startswith(b"HTTP/1.1 503") and time.monotonic() < deadline:
                with (
                    socket.create_connection((host, int(port)), timeout=1) as third,
                    contextlib.suppress(TimeoutError),
                ):
                    reply = third.recv(65536)
            assert reply.startswith(b"HTTP/1.1 503")
        finally:
            for sock in held:
                sock.close()
        stop_and_read(process)


def test_fd_limit_is_raised_never_lowered() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits.raise_fd_limit(16) >= soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


def test_descriptor_budget_counts_what_each_kind_of_connection_holds(tmp_path: Path) -> None:
    plain = settings.ServeConfig(directory=tmp_path, max_connections=100)
    scripts = dataclasses.replace(plain, cgi=settings.CGIConfig())
    streams = dataclasses.replace(plain, reload=settings.ReloadConfig())
    assert limits.descriptor_budget(plain) == 100 * 2 + limits.FDS_RESERVED
    assert limits.descriptor_budget(scripts) == 100 * 5 + limits.FDS_RESERVED
    assert limits.descriptor_budget(streams) == 100 * 2 + 25 * 2 + limits.FDS_RESERVED


def test_a_low_open_file_limit_lowers_the_connection_cap_and_says_so(site: Path) -> None:
    """With a hard limit of 400 open files, 1024 connections cannot be honoured."""
    code = (
        "import resource, runpy, sys;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400));"
        f"sys.argv = ['devserve', 'serve', {str(site)!r}, '--port', '0', '--log-format', 'plain'];"
        "runpy.run_module('devserve', run_name='__main__')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=devserve_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, process.kill)  # a missing line must not hang the test
    watchdog.start()
    try:
        assert process.stderr is not None
        lines: list[str] = []
        while not any("open-file limit" in line for line in lines) and len(lines) < 20:
            lines.append(process.stderr.readline())
        url = next(m[0] for line in lines if (m := re.search(r"http://[\d.:]+", line)))
        warning = lines[-1]
        assert "too low for 1024 connections: serving at most" in warning
        assert "ulimit -n 2304" in warning
        fitted = re.search(r"serving at most (\d+)", warning)
        assert fitted is not None
        assert int(fitted[1]) > 1 and int(fitted[1]) * 2 + limits.FDS_RESERVED <= 400
        with urllib.request.urlopen(url + "/hello.txt", timeout=5) as reply:
            assert reply.read() == b"hello from devserve"
    finally:
        watchdog.cancel()
        process.terminate()
        process.communicate(timeout=15)
