"""--reload end to end in a real headless browser (Debian's chromium, driven by Playwright).

Each test starts ``devserve serve --reload`` as a subprocess on port 0 (the URL is
read from its log), opens pages in a fresh Chromium profile, changes files on disk
and waits, with deadlines, for the pages to show it. Playwright's own browser
downloads are never used: ``executable_path`` points at ``/usr/bin/chromium``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.support import CHROMIUM, CHROMIUM_ARGS, self_signed_certificate

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
# Milliseconds a page may take to show a change (the watcher needs about 100).
SHOWN = 10_000

STYLE = "h1 { color: rgb(255, 0, 0) } body { min-height: 5000px }"


def page_html(title: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<link rel="stylesheet" href="style.css"><title>t</title></head>'
        f"<body><h1>{title}</h1></body></html>"
    )


class Devserve:
    """``devserve serve --reload`` in a subprocess; its log is collected as it comes."""

    def __init__(
        self,
        directory: Path,
        *args: str,
        command: str = "serve",
        env: dict[str, str] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devserve", command, str(directory), "--reload", *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self.wait_for_line(r"Local:\s+(https?://\S+)")[1]

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matches {pattern!r}:\n{''.join(self.lines)}")
                self._changed.wait(left)

    @property
    def port(self) -> str:
        return self.url.rstrip("/").rsplit(":", 1)[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            assert self.process.wait(10) == 0
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(page_html("one"))
    (root / "style.css").write_text(STYLE)
    (root / "notes.txt").write_text("notes")
    return root


@pytest.fixture
def server(site: Path) -> Iterator[Devserve]:
    running = Devserve(site, "--port", "0")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile for every test
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


def open_page(browser: BrowserContext, url: str) -> Page:
    """A new tab on ``url``, once its page is connected to the server's event stream."""
    page = browser.new_page()
    page.goto(url)
    wait_until_listening(page)
    return page


def wait_until_listening(page: Page) -> None:
    page.wait_for_function("() => window.__devserveReload && window.__devserveReload.connected")


def test_editing_the_html_shows_the_new_content(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    page = open_page(browser, server.url)
    expect(page.locator("h1")).to_have_text("one")
    (site / "index.html").write_text(page_html("two"))
    expect(page.locator("h1")).to_have_text("two", timeout=SHOWN)
    server.wait_for_line(r"reload sent to 1 browser: index\.html")
    # a page without the script is named in the log, once
    page.goto(server.url + "notes.txt")
    page.goto(server.url + "notes.txt")
    server.wait_for_line(r"/notes\.txt has no reload script \(not HTML: text/plain\)")
    assert sum("/notes.txt has no reload script" in line for line in server.lines) == 1


def test_editing_a_stylesheet_swaps_it_in_place(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    page = open_page(browser, server.url)
    h1 = page.locator("h1")
    expect(h1).to_have_css("color", "rgb(255, 0, 0)")
    page.evaluate("() => { window.__marker = 42; window.scrollTo(0, 700); }")
    (site / "style.css").write_text(STYLE.replace("rgb(255, 0, 0)", "rgb(0, 0, 255)"))
    expect(h1).to_have_css("color", "rgb(0, 0, 255)", timeout=SHOWN)
    # no navigation: the page's own state and scroll position survived
    assert page.evaluate("() => [window.__marker, window.scrollY]") == [42, 700]
    assert page.locator("link[rel=stylesheet]").count() == 1  # the old link is gone
    server.wait_for_line(r"stylesheets swapped in 1 browser: style\.css")
    # the page knows the change count moved on: an HTML edit still reloads it
    (site / "index.html").write_text(page_html("after css"))
    expect(h1).to_have_text("after css", timeout=SHOWN)
    assert page.evaluate("() => window.__marker") is None


def test_two_tabs_both_update_over_one_connection(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    first, second = open_page(browser, server.url), open_page(browser, server.url)
    (site / "index.html").write_text(page_html("both"))
    expect(first.locator("h1")).to_have_text("both", timeout=SHOWN)
    expect(second.locator("h1")).to_have_text("both", timeout=SHOWN)
    # one event stream for the browser, shared by its tabs (a SharedWorker)
    server.wait_for_line(r"reload sent to 1 browser: index\.html")


def test_more_tabs_than_the_connection_limit_all_load_and_update(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    # Browsers open at most six HTTP/1.1 connections per host: one stream per tab
    # would leave the seventh tab loading for ever.
    pages = [open_page(browser, server.url) for _ in range(8)]
    (site / "index.html").write_text(page_html("all eight"))
    for page in pages:
        expect(page.locator("h1")).to_have_text("all eight", timeout=SHOWN)


def test_pages_listen_themselves_without_shared_workers(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    browser.add_init_script("delete window.SharedWorker")
    page = open_page(browser, server.url + "index.html")
    (site / "style.css").write_text(STYLE.replace("rgb(255, 0, 0)", "rgb(0, 128, 0)"))
    expect(page.locator("h1")).to_have_css("color", "rgb(0, 128, 0)", timeout=SHOWN)
    (site / "index.html").write_text(page_html("direct"))
    expect(page.locator("h1")).to_have_text("direct", timeout=SHOWN)


def test_a_deleted_page_reloads_to_the_404_and_comes_back(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    (site / "sub").mkdir()
    (site / "sub" / "page.html").write_text(page_html("sub page"))
    page = open_page(browser, server.url + "sub/page.html")
    (site / "sub" / "page.html").unlink()
    expect(page.locator("body")).to_contain_text("Error code: 404", timeout=SHOWN)
    (site / "sub" / "page.html").write_text(page_html("back again"))
    expect(page.locator("h1")).to_have_text("back again", timeout=SHOWN)


def test_a_restarted_server_is_found_again(site: Path, browser: BrowserContext) -> None:
    first = Devserve(site, "--port", "0")
    try:
        page = open_page(browser, first.url)
    finally:
        first.stop()
    # changed while no server runs: the page learns of it from the new server
    (site / "index.html").write_text(page_html("changed while down"))
    second = Devserve(site, "--port", first.port)
    try:
        assert second.url == first.url
        expect(page.locator("h1")).to_have_text("changed while down", timeout=SHOWN)
        wait_until_listening(page)
        (site / "index.html").write_text(page_html("after restart"))
        expect(page.locator("h1")).to_have_text("after restart", timeout=SHOWN)
    finally:
        second.stop()


class PrefixProxy:
    """A reverse proxy serving devserve under /app/, as nginx's
    ``location /app/ { proxy_pass http://127.0.0.1:PORT/; }`` would (one request per connection).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.paths: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/app/"
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _relay(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.split(b" ")
            self.paths.append(target.decode())
            if not target.startswith(b"/app/"):
                client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            fields = [f for f in rest.split(b"\r\n") if not f.lower().startswith(b"connection:")]
            request = b"\r\n".join(
                [b" ".join([method, target[4:], version]), b"Connection: close", *fields]
            )
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(request)
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)

    def close(self) -> None:
        self.listener.close()


def test_behind_a_reverse_proxy_under_a_prefix(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    (site / "docs").mkdir()
    (site / "docs" / "guide.html").write_text(page_html("guide"))
    proxy = PrefixProxy(int(server.port))
    try:
        home = open_page(browser, proxy.url)
        guide = open_page(browser, proxy.url + "docs/guide.html")
        (site / "index.html").write_text(page_html("home, proxied"))
        (site / "docs" / "guide.html").write_text(page_html("guide, proxied"))
        expect(home.locator("h1")).to_have_text("home, proxied", timeout=SHOWN)
        expect(guide.locator("h1")).to_have_text("guide, proxied", timeout=SHOWN)
    finally:
        proxy.close()
    # every request went through the prefix: the script's URLs are relative
    assert "/app/__devserve__/worker.js" in proxy.paths
    assert "/app/__devserve__/events" in proxy.paths
    ours = [path for path in proxy.paths if path != "/favicon.ico"]  # the browser's own
    assert all(path.startswith("/app/") for path in ours), proxy.paths


def spki_hash(cert: Path) -> str:
    """The base64 SHA-256 of a certificate's public key (what Chromium's SPKI list takes)."""
    public = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=public,
        capture_output=True,
        check=True,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_over_https(site: Path, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = Devserve(site, "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert server.url.startswith("https://")
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                # trust this one key, as a development CA (mkcert) would be trusted
                args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"],
            )
            try:
                page = open_page(context, server.url)
                (site / "index.html").write_text(page_html("secure"))
                expect(page.locator("h1")).to_have_text("secure", timeout=SHOWN)
            finally:
                context.close()
    finally:
        server.stop()


@pytest.mark.parametrize("auth", [False, True], ids=["tls auto", "tls auto and auth"])
def test_over_tls_auto(site: Path, tmp_path: Path, auth: bool) -> None:
    """--tls auto as a browser meets it: a certificate it was never told about
    (--ignore-certificate-errors), a secure context, and the live reload working,
    with --auth too: the page, its worker and its event stream all get the password."""
    env = {"DEVSERVE_DATA_DIR": str(tmp_path / "data")}
    if auth:
        env["DEVSERVE_AUTH"] = "alice:correct horse"
    server = Devserve(site, "--port", "0", "--tls", "auto", env=env)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        server.wait_for_line(r"SHA-256: [0-9A-F]{2}(:[0-9A-F]{2}){31}")
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
                http_credentials=(
                    {"username": "alice", "password": "correct horse"} if auth else None
                ),
            )
            try:
                page = open_page(context, server.url)
                assert page.evaluate("() => [location.protocol, window.isSecureContext]") == [
                    "https:",
                    True,
                ]
                (site / "index.html").write_text(page_html("secure"))
                expect(page.locator("h1")).to_have_text("secure", timeout=SHOWN)
                server.wait_for_line(r"reload sent to 1 browser: index\.html")
                (site / "style.css").write_text(STYLE.replace("rgb(255, 0, 0)", "rgb(0, 0, 255)"))
                expect(page.locator("h1")).to_have_css("color", "rgb(0, 0, 255)", timeout=SHOWN)
            finally:
                context.close()
    finally:
        server.stop()
    if auth:
        # the browser asked without the password first, as browsers do, and was answered 401
        assert any(" 401 " in line for line in server.lines), "".join(server.lines)
        assert not any("correct horse" in line for line in server.lines)


def test_a_worker_that_never_answers_is_bypassed(
    server: Devserve, site: Path, browser: BrowserContext
) -> None:
    # a SharedWorker that loads but passes nothing on
    browser.add_init_script(
        "window.SharedWorker = function () {"
        " return {port: {postMessage() {}, onmessage: null}, onerror: null}; }"
    )
    page = open_page(browser, server.url)  # connected within the 3 s fallback delay
    (site / "index.html").write_text(page_html("heard directly"))
    expect(page.locator("h1")).to_have_text("heard directly", timeout=SHOWN)


def test_a_page_that_answered_a_post_is_fetched_again_never_resubmitted(
    public_tmp: Path, browser: BrowserContext
) -> None:
    """A reload of a form's answer must not run the form's script again (no POST twice)."""
    calls = public_tmp / "calls"
    calls.mkdir(mode=0o777)
    calls.chmod(0o777)  # the script runs as nobody when the tests run as root
    (public_tmp / "index.html").write_text(
        "<!doctype html><html><body><form method=post action=cgi-bin/answer.sh>"
        "<input name=q value=1><button>send</button></form></body></html>"
    )
    script = public_tmp / "cgi-bin" / "answer.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text(
        f'#!/bin/sh\necho "$REQUEST_METHOD" >> {calls}/log\n'
        "printf 'Content-Type: text/html\\r\\n\\r\\n<!doctype html><html><body>"
        "<h1>answered</h1></body></html>'\n"
    )
    script.chmod(0o755)
    server = Devserve(public_tmp, "--port", "0", command="cgi")
    try:
        page = open_page(browser, server.url)
        page.click("button")
        expect(page.locator("h1")).to_have_text("answered", timeout=SHOWN)
        wait_until_listening(page)
        (public_tmp / "index.html").write_text("<!doctype html><p>changed</p>")
        deadline = time.monotonic() + SHOWN / 1000
        log = calls / "log"
        while time.monotonic() < deadline and log.read_text().split() != ["POST", "GET"]:
            time.sleep(0.05)
        assert log.read_text().split() == ["POST", "GET"]
        expect(page.locator("h1")).to_have_text("answered")
    finally:
        server.stop()
