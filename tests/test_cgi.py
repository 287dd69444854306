"""Real CGI scripts under ``devserve.server.CGIHTTPRequestHandler``.

Every test writes a fresh script tree (``/bin/sh`` scripts and Python scripts whose
shebang is the system interpreter), serves it with ``ThreadingHTTPServer`` on
127.0.0.1 (port 0, read back) and talks to it with ``http.client`` or raw sockets.

Environment notes:

* The suite runs as root, and the handler (like the stdlib's) then runs scripts as
  user ``nobody``. The tree therefore lives in the ``public_tmp`` folder (conftest)
  with every directory and script ``chmod 0o755`` (pytest's ``tmp_path`` sits below
  a 0700 directory nobody cannot enter).
* Python scripts use ``#!/usr/bin/python3`` (world-executable), not
  ``sys.executable``: the venv interpreter resolves below ``/root`` (mode 0700),
  which ``nobody`` cannot execute.
* The handler's log goes to a collecting ``log_message`` override, not stderr.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import http.server
import json
import os
import pwd
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from devserve import server as devserve_server
from devserve.server import CGIHTTPRequestHandler, ThreadingHTTPServer
from tests.support import LogLines as Log
from tests.support import port_of, raw_exchange, running_server, status_of

TIMEOUT = 10.0
SYSTEM_PYTHON = "/usr/bin/python3"
MIB = 1024 * 1024
BIG = 20 * MIB
NOBODY_UID = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()

# --------------------------------------------------------------------------- scripts

ENV_PY = """#!@PYTHON@
import json, os, sys
body = sys.stdin.buffer.read()
reply = {
    "env": dict(os.environ),
    "argv": sys.argv[1:],
    "stdin": body.decode("latin-1"),
    "uid": os.getuid(),
    "cwd": os.getcwd(),
}
sys.stdout.buffer.write(b"Content-Type: application/json\\r\\n\\r\\n")
sys.stdout.buffer.write(json.dumps(reply).encode("utf-8"))
"""

BIG_PY = """#!@PYTHON@
import sys
block = bytes(range(256)) * 4096
sys.stdout.buffer.write(b"Content-Type: application/octet-stream\\n\\n")
for _ in range(@BLOCKS@):
    sys.stdout.buffer.write(block)
"""

NOEXEC_PY = """#!@PYTHON@
print("Content-Type: text/plain")
print()
print("python without the x bit")
"""

SH_SCRIPTS: dict[str, str] = {
    "cgi-bin/hello.sh": "printf 'Content-Type: text/plain\\n\\nhello from sh\\n'",
    "htbin/hello.sh": "printf 'Content-Type: text/plain\\n\\nhello from htbin\\n'",
    "cgi-bin/status404.sh": (
        "printf 'Status: 404 Not Here\\nContent-Type: text/plain\\n\\nnot here\\n'"
    ),
    "cgi-bin/location.sh": "printf 'Location: http://example.invalid/x\\n\\n'",
    "cgi-bin/moved.sh": (
        "printf 'Status: 301 Moved Permanently\\nLocation: http://example.invalid/moved\\n\\n'"
    ),
    "cgi-bin/notype.sh": "printf 'X-Thing: 1\\n\\nSCRIPT-BODY\\n'",
    "cgi-bin/garbage.sh": (
        "printf 'this is not a header\\nContent-Type: text/plain\\n\\nSCRIPT-BODY\\n'"
    ),
    "cgi-bin/silent.sh": "exit 0",
    "cgi-bin/stderr.sh": (
        "echo 'first complaint' >&2\n"
        "echo 'second complaint' >&2\n"
        "printf 'Content-Type: text/plain\\n\\nok\\n'"
    ),
    "cgi-bin/exit3.sh": "printf 'Content-Type: text/plain\\n\\npartial\\n'\nexit 3",
    "cgi-bin/withlength.sh": "printf 'Content-Type: text/plain\\nContent-Length: 5\\n\\nhello'",
    "cgi-bin/wc.sh": "printf 'Content-Type: text/plain\\n\\n'\nwc -c | tr -d ' \\n'",
    "cgi-bin/ignore.sh": "printf 'Content-Type: text/plain\\nContent-Length: 7\\n\\nignored'",
    "cgi-bin/sub/dir/script.sh": (
        'printf \'Content-Type: text/plain\\n\\n%s|%s|%s\' "$SCRIPT_NAME" "$PATH_INFO" "$(pwd)"'
    ),
    # Each instance registers itself, then waits (bounded) until all 8 are running:
    # a server that ran them one at a time would report fewer than 8.
    "cgi-bin/barrier.sh": (
        ': > "@MARKERS@/barrier/$QUERY_STRING"\n'
        "i=0\n"
        'while [ "$(ls '
        '"@MARKERS@/barrier" | wc -l)" -lt 8 ] && [ $i -lt 100 ]; do\n'
        "  sleep 0.05\n"
        "  i=$((i + 1))\n"
        "done\n"
        'n=$(ls "@MARKERS@/barrier" | wc -l)\n'
        'printf \'Content-Type: text/plain\\n\\n%s %s\' "$QUERY_STRING" "$n"'
    ),
    "cgi-bin/smuggled.sh": (
        ": > '@MARKERS@/smuggled-ran'\nprintf 'Content-Type: text/plain\\n\\nSMUGGLED'"
    ),
    # Outside every CGI directory: if any of these runs, it leaves a marker.
    "secret.sh": ": > '@MARKERS@/secret.sh-ran'\nprintf 'Content-Type: text/plain\\n\\nRAN\\n'",
    "x": ": > '@MARKERS@/x-ran'\nprintf 'Content-Type: text/plain\\n\\nRAN\\n'",
}


@dataclasses.dataclass(frozen=True)
class Tree:
    """A served directory: ``root`` holds cgi-bin/, htbin/ and the outside scripts."""

    root: Path
    markers: Path

    def ran(self) -> list[str]:
        """Names of the outside scripts that ran (their markers)."""
        return sorted(
            p.name
            for p in self.markers.iterdir()
            if p.name.endswith("-ran") and p.name != "smuggled-ran"
        )


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _chmod_dirs(root: Path) -> None:
    for dirpath, _dirnames, _files in os.walk(root):
        if Path(dirpath).name not in ("markers", "barrier"):
            Path(dirpath).chmod(0o755)


@pytest.fixture
def tree(public_tmp: Path) -> Tree:
    root = public_tmp
    markers = root / "markers"
    (markers / "barrier").mkdir(parents=True)
    markers.chmod(0o777)
    (markers / "barrier").chmod(0o777)

    def fill(text: str) -> str:
        return (
            text.replace("@PYTHON@", SYSTEM_PYTHON)
            .replace("@MARKERS@", str(markers))
            .replace("@BLOCKS@", str(BIG // (256 * 4096)))
        )

    for rel, body in SH_SCRIPTS.items():
        _write(root / rel, fill("#!/bin/sh\n" + body + "\n"), 0o755)
    _write(root / "cgi-bin/env.py", fill(ENV_PY), 0o755)
    _write(root / "cgi-bin/big.py", fill(BIG_PY), 0o755)
    _write(root / "cgi-bin/noexec.py", fill(NOEXEC_PY), 0o644)
    _write(
        root / "cgi-bin/noexec.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nx'\n",
        0o644,
    )
    (root / "cgi-bin/adir").mkdir()
    _write(root / "static.txt", "static file\n", 0o644)
    _chmod_dirs(root)
    return Tree(root, markers)


# --------------------------------------------------------------------------- server


def recording_handler(log: Log, protocol: str = "HTTP/1.0") -> type[CGIHTTPRequestHandler]:
    class Handler(CGIHTTPRequestHandler):
        protocol_version = protocol

        def log_message(self, format: str, *args: Any) -> None:
            log.add(format % args)

    return Handler


@dataclasses.dataclass(frozen=True)
class Served:
    port: int
    log: Log
    server: devserve_server.HTTPServer
    root: str


@contextlib.contextmanager
def serve(tree: Tree, protocol: str = "HTTP/1.0") -> Iterator[Served]:
    log = Log()
    handler = recording_handler(log, protocol)
    with running_server(ThreadingHTTPServer, handler, directory=str(tree.root)) as srv:
        yield Served(port_of(srv), log, cast(devserve_server.HTTPServer, srv), str(tree.root))


@pytest.fixture
def served(tree: Tree) -> Iterator[Served]:
    with serve(tree) as s:
        yield s


# --------------------------------------------------------------------------- clients


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.body))

    def env(self) -> dict[str, str]:
        return cast(dict[str, str], self.json()["env"])


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Response:
    """One request on ``conn`` (headers sent exactly as given, repeats allowed)."""
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    if body is not None and not any(n.lower() == "content-length" for n, _ in headers):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, resp.reason, resp.msg, data)


def fetch(
    port: int,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Response:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        return send(conn, method, path, headers, body)
    finally:
        conn.close()


def split_raw(response: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """(status line, headers with lower-case names, body) of a raw response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].encode("latin-1"), headers, body


# =========================================================================== documented API


def test_cgi_directories_default() -> None:
    assert CGIHTTPRequestHandler.cgi_directories == ["/cgi-bin", "/htbin"]


IS_CGI_CASES: list[tuple[str, tuple[str, str] | None]] = [
    ("/cgi-bin/x.sh", ("/cgi-bin", "x.sh")),
    ("/htbin/a/b?q=1", ("/htbin", "a/b?q=1")),
    ("/cgi-bin/", ("/cgi-bin", "")),
    ("/cgi-bin/sub/dir/s.sh/extra/path", ("/cgi-bin", "sub/dir/s.sh/extra/path")),
    ("/cgi-bin/./a/./b", ("/cgi-bin", "a/b")),
    ("/x/../cgi-bin/y", ("/cgi-bin", "y")),
    ("/cgi-bin/env.py?a=1?b=//c", ("/cgi-bin", "env.py?a=1?b=//c")),
    ("/cgi-bin", None),
    ("/cgi-binx/y", None),
    ("/foo/cgi-bin/x", None),
    ("/CGI-BIN/x", None),
    ("/static.txt", None),
    ("/", None),
    ("/cgi-bin/../secret.sh", None),
    ("/cgi-bin/%2e%2e/x", None),
    ("/cgi-bin/sub/../../x", None),
    ("/cgi-bin/..", None),
]


def _bare_handler(cls: type[Any], path: str) -> Any:
    """A handler instance that never ran (no socket): only ``path`` is set."""
    handler = object.__new__(cls)
    handler.path = path
    return handler


@pytest.mark.parametrize(("path", "expected"), IS_CGI_CASES)
def test_is_cgi(path: str, expected: tuple[str, str] | None) -> None:
    handler = cast(CGIHTTPRequestHandler, _bare_handler(CGIHTTPRequestHandler, path))
    assert handler.is_cgi() is (expected is not None)
    if expected is not None:
        assert handler.cgi_info == expected
    if hasattr(http.server, "CGIHTTPRequestHandler"):
        reference = _bare_handler(http.server.CGIHTTPRequestHandler, path)
        assert reference.is_cgi() is (expected is not None), "stdlib disagrees"
        if expected is not None:
            assert reference.cgi_info == expected


def test_is_cgi_honours_subclass_directories() -> None:
    class Scripts(CGIHTTPRequestHandler):
        cgi_directories = ["/scripts/run"]  # noqa: RUF012

    assert cast(Scripts, _bare_handler(Scripts, "/scripts/run/a.sh")).is_cgi()
    assert not cast(Scripts, _bare_handler(Scripts, "/cgi-bin/a.sh")).is_cgi()
    assert not cast(Scripts, _bare_handler(Scripts, "/scripts/a.sh")).is_cgi()


def test_is_python_and_is_executable(tree: Tree) -> None:
    handler = cast(CGIHTTPRequestHandler, _bare_handler(CGIHTTPRequestHandler, "/"))
    assert handler.is_python("/cgi-bin/a.py")
    assert handler.is_python("/cgi-bin/a.PYW")
    assert not handler.is_python("/cgi-bin/a.sh")
    assert not handler.is_python("/cgi-bin/a.py.txt")
    assert not handler.is_python("/cgi-bin/py")
    assert handler.is_executable(str(tree.root / "cgi-bin/hello.sh"))
    assert not handler.is_executable(str(tree.root / "cgi-bin/noexec.sh"))
    only_owner = tree.root / "cgi-bin/owner-x.sh"
    _write(only_owner, "#!/bin/sh\n", 0o100)
    assert handler.is_executable(str(only_owner))
    assert not handler.is_executable(str(tree.root / "cgi-bin/missing.sh"))


def test_post_outside_cgi_directories_is_501(served: Served) -> None:
    for path in ("/static.txt", "/", "/nowhere", "/cgi-bin"):
        resp = fetch(served.port, "POST", path, body=b"data")
        assert resp.status == 501, path
        assert resp.reason == "Can only POST to CGI scripts"
        assert b"Can only POST to CGI scripts" in resp.body


def test_static_files_still_served(served: Served) -> None:
    resp = fetch(served.port, "GET", "/static.txt")
    assert (resp.status, resp.body) == (200, b"static file\n")


def test_get_runs_script(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/hello.sh")
    assert resp.status == 200
    assert resp.header("Content-Type") == "text/plain"
    assert resp.body == b"hello from sh\n"


def test_htbin_is_a_cgi_directory(served: Served) -> None:
    resp = fetch(served.port, "GET", "/htbin/hello.sh")
    assert (resp.status, resp.body) == (200, b"hello from htbin\n")


def test_head_runs_script_without_body(served: Served) -> None:
    resp = fetch(served.port, "HEAD", "/cgi-bin/hello.sh")
    assert resp.status == 200
    assert resp.header("Content-Type") == "text/plain"
    assert resp.body == b""


def test_python_script_runs_as_nobody(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/env.py")
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    reply = resp.json()
    assert reply["uid"] == NOBODY_UID
    assert reply["env"]["REQUEST_METHOD"] == "GET"
    # The script runs in its own directory.
    assert reply["cwd"] == os.path.join(served.root, "cgi-bin")


def test_post_body_reaches_stdin(served: Served) -> None:
    body = b"name=value&x=1&bin=\x00\xff"
    resp = fetch(
        served.port,
        "POST",
        "/cgi-bin/env.py",
        [("Content-Type", "application/x-www-form-urlencoded")],
        body,
    )
    assert resp.status == 200
    reply = resp.json()
    assert reply["stdin"].encode("latin-1") == body
    env = reply["env"]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"


def test_non_executable_script_is_403(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/noexec.sh")
    assert resp.status == 403
    resp = fetch(served.port, "POST", "/cgi-bin/noexec.sh", body=b"x")
    assert resp.status == 403


def test_non_executable_python_script_is_403_where_fork_exists(served: Served) -> None:
    """The documented rule: with fork (POSIX) every script needs its execute bit."""
    resp = fetch(served.port, "GET", "/cgi-bin/noexec.py")
    assert resp.status == 403
    assert resp.reason == "CGI script is not executable ('/cgi-bin/noexec.py')"


def test_without_fork_python_scripts_run_through_the_interpreter(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The venv's interpreter lives below /root (0700), which nobody cannot reach,
    # so point sys.executable at the system interpreter for this test.
    monkeypatch.setattr(sys, "executable", SYSTEM_PYTHON)
    log = Log()
    base = recording_handler(log, "HTTP/1.0")

    class NoFork(base):  # type: ignore[valid-type,misc]
        have_fork = False

    with running_server(ThreadingHTTPServer, NoFork, directory=str(tree.root)) as srv:
        resp = fetch(port_of(srv), "GET", "/cgi-bin/noexec.py")
    assert resp.status == 200
    assert resp.body == b"python without the x bit\n"


def test_missing_script_is_404(served: Served) -> None:
    for path in ("/cgi-bin/missing.sh", "/cgi-bin/sub/dir/missing.sh", "/cgi-bin/nodir/x.sh"):
        assert fetch(served.port, "GET", path).status == 404, path
    assert fetch(served.port, "POST", "/cgi-bin/missing.sh", body=b"x").status == 404


def test_directory_as_script_is_403(served: Served) -> None:
    assert fetch(served.port, "GET", "/cgi-bin/adir").status == 403
    assert fetch(served.port, "GET", "/cgi-bin/adir/").status == 403
    assert fetch(served.port, "POST", "/cgi-bin/sub", body=b"x").status == 403


def test_query_without_equals_becomes_an_argument(served: Served) -> None:
    reply = fetch(served.port, "GET", "/cgi-bin/env.py?hello+world").json()
    assert reply["argv"] == ["hello world"]
    assert reply["env"]["QUERY_STRING"] == "hello+world"
    assert fetch(served.port, "GET", "/cgi-bin/env.py?a=b").json()["argv"] == []


# =========================================================================== meta-variables


def test_meta_variables(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/env.py/some%20where/deep?a=1?b=//c/d&e=%20f")
    assert resp.status == 200
    env = resp.env()
    root = served.root
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": CGIHTTPRequestHandler.server_version
        + " "
        + CGIHTTPRequestHandler.sys_version,
        "SERVER_NAME": served.server.server_name,
        "SERVER_PORT": str(served.port),
        "SERVER_PROTOCOL": "HTTP/1.0",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/cgi-bin/env.py",
        "PATH_INFO": "/some where/deep",
        "PATH_TRANSLATED": os.path.join(root, "some where", "deep"),
        "QUERY_STRING": "a=1?b=//c/d&e=%20f",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": "",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert env.get("CONTENT_TYPE", "") == ""
    assert "AUTH_TYPE" not in env
    assert "REMOTE_USER" not in env


def test_path_info_is_decoded_once(served: Served) -> None:
    # RFC 3875 4.1.5: PATH_INFO is the URL-decoded path -- decoded once. "%2520"
    # is an escaped "%20", so the script must see "%20", not a space.
    env = fetch(served.port, "GET", "/cgi-bin/env.py/a%2520b").env()
    assert env["PATH_INFO"] == "/a%20b"


def test_percent_encoded_question_mark_is_not_a_query(served: Served) -> None:
    # "%3F" is a "?" inside a path segment, not the start of the query: there is
    # no script called "env.py?x=1", so this is 404, and never a run of env.py.
    resp = fetch(served.port, "GET", "/cgi-bin/env.py%3Fx=1")
    assert resp.status == 404


def test_basic_auth_variables(served: Served) -> None:
    credentials = base64.b64encode(b"alice:s3cret:with:colons").decode("ascii")
    env = fetch(
        served.port, "GET", "/cgi-bin/env.py", [("Authorization", f"Basic {credentials}")]
    ).env()
    assert env["AUTH_TYPE"] == "Basic"
    assert env["REMOTE_USER"] == "alice"
    assert "HTTP_AUTHORIZATION" not in env


def test_request_headers_become_http_variables(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    headers = [
        ("User-Agent", "test-agent/1.0"),
        ("Accept", "text/html"),
        ("X-Custom-Thing", "value 1"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("Proxy", "http://evil.invalid:8080"),
        ("X_Underscore", "dropped"),
        ("X-User", "dash"),
        ("X_User", "underscore"),
    ]
    env = fetch(served.port, "GET", "/cgi-bin/env.py", headers).env()
    assert env["HTTP_USER_AGENT"] == "test-agent/1.0"
    assert env["HTTP_ACCEPT"] == "text/html"
    assert env["HTTP_X_CUSTOM_THING"] == "value 1"
    assert env["HTTP_X_MULTI"] == "one, two"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_HOST"] == f"127.0.0.1:{served.port}"
    # httpoxy: a request's Proxy header must never become the script's HTTP_PROXY.
    assert "HTTP_PROXY" not in env
    assert all("evil.invalid" not in value for value in env.values())
    # Names with "_" are dropped (X_User would otherwise pass for X-User).
    assert "HTTP_X_UNDERSCORE" not in env
    assert env["HTTP_X_USER"] == "dash"
    assert all(value != "underscore" for value in env.values())


def test_request_headers_cannot_override_gateway_variables(served: Served) -> None:
    body = b"hello"
    headers = [
        ("Content-Type", "text/plain"),
        ("Server-Name", "evil.invalid"),
        ("Server-Port", "1"),
        ("Path-Info", "/evil"),
        ("Script-Name", "/evil"),
        ("Query-String", "evil=1"),
        ("Remote-Addr", "6.6.6.6"),
        ("Remote-User", "mallory"),
        ("Auth-Type", "Evil"),
        ("Gateway-Interface", "CGI/9.9"),
        ("Request-Method", "DELETE"),
    ]
    env = fetch(served.port, "POST", "/cgi-bin/env.py/real?q=1", headers, body).env()
    assert env["CONTENT_LENGTH"] == "5"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_LENGTH" not in env
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["SERVER_NAME"] == served.server.server_name
    assert env["SERVER_PORT"] == str(served.port)
    assert env["PATH_INFO"] == "/real"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["QUERY_STRING"] == "q=1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "POST"
    assert "REMOTE_USER" not in env
    assert "AUTH_TYPE" not in env
    # They are still visible, under their HTTP_ names.
    assert env["HTTP_SERVER_NAME"] == "evil.invalid"
    assert env["HTTP_PATH_INFO"] == "/evil"


def test_server_environment_does_not_leak_gateway_variables(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_USER", "leaked-user")
    monkeypatch.setenv("AUTH_TYPE", "Leaked")
    monkeypatch.setenv("HTTP_X_LEAKED", "leaked-header")
    monkeypatch.setenv("QUERY_STRING", "leaked=1")
    with serve(tree) as s:
        env = fetch(s.port, "GET", "/cgi-bin/env.py").env()
    assert "REMOTE_USER" not in env
    assert "AUTH_TYPE" not in env
    assert "HTTP_X_LEAKED" not in env
    assert env["QUERY_STRING"] == ""


# =========================================================================== script output


def test_status_header_sets_status(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/status404.sh")
    assert (resp.status, resp.reason) == (404, "Not Here")
    assert resp.body == b"not here\n"
    assert resp.header("Status") is None


def test_location_alone_is_302(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/location.sh")
    assert resp.status == 302
    assert resp.header("Location") == "http://example.invalid/x"


def test_status_301_with_location(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/moved.sh")
    assert resp.status == 301
    assert resp.header("Location") == "http://example.invalid/moved"


@pytest.mark.parametrize("script", ["notype.sh", "garbage.sh", "silent.sh"])
def test_bad_script_output_is_502(served: Served, script: str) -> None:
    resp = fetch(served.port, "GET", f"/cgi-bin/{script}")
    assert resp.status == 502
    assert resp.header("Content-Type") == "text/html;charset=utf-8"
    assert b"SCRIPT-BODY" not in resp.body


def test_script_stderr_is_logged(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/stderr.sh")
    assert (resp.status, resp.body) == (200, b"ok\n")
    lines = served.log.wait_for("second complaint")
    assert any("first complaint" in line for line in lines), lines
    assert any("second complaint" in line for line in lines), lines


def test_nonzero_exit_after_valid_output_is_logged(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/exit3.sh")
    assert (resp.status, resp.body) == (200, b"partial\n")
    lines = served.log.wait_for("exit code")
    assert any("exit code 3" in line for line in lines), lines


def test_http11_unframed_reply_is_chunked_and_keeps_alive(tree: Tree) -> None:
    with serve(tree, "HTTP/1.1") as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        try:
            first = send(conn, "GET", "/cgi-bin/hello.sh")
            sock = conn.sock
            assert first.status == 200
            assert first.header("Transfer-Encoding") == "chunked"
            assert first.header("Content-Length") is None
            assert first.header("Connection") != "close"
            assert first.body == b"hello from sh\n"
            second = send(conn, "GET", "/cgi-bin/env.py?n=2")
            assert conn.sock is sock, "the connection was not reused"
            assert second.status == 200
            assert second.env()["QUERY_STRING"] == "n=2"
            assert second.env()["SERVER_PROTOCOL"] == "HTTP/1.1"
        finally:
            conn.close()


def test_http11_chunked_framing_on_the_wire(tree: Tree) -> None:
    with serve(tree, "HTTP/1.1") as s:
        raw = raw_exchange(
            s.port,
            b"GET /cgi-bin/hello.sh HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /cgi-bin/withlength.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            timeout=TIMEOUT,
        )
    status, headers, rest = split_raw(raw)
    assert status == b"HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert rest.startswith(b"e\r\nhello from sh\n\r\n0\r\n\r\n"), rest[:100]
    second = rest[len(b"e\r\nhello from sh\n\r\n0\r\n\r\n") :]
    status2, headers2, body2 = split_raw(second)
    assert status2 == b"HTTP/1.1 200 OK"
    assert headers2["content-length"] == "5"
    assert "transfer-encoding" not in headers2
    assert body2 == b"hello"


def test_http11_script_content_length_is_passed_through(tree: Tree) -> None:
    with serve(tree, "HTTP/1.1") as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        try:
            first = send(conn, "GET", "/cgi-bin/withlength.sh")
            sock = conn.sock
            assert first.status == 200
            assert first.header("Content-Length") == "5"
            assert first.header("Transfer-Encoding") is None
            assert first.body == b"hello"
            second = send(conn, "GET", "/cgi-bin/withlength.sh")
            assert conn.sock is sock, "the connection was not reused"
            assert second.body == b"hello"
        finally:
            conn.close()


def test_http10_request_to_http11_server_is_not_chunked(tree: Tree) -> None:
    with serve(tree, "HTTP/1.1") as s:
        raw = raw_exchange(s.port, b"GET /cgi-bin/hello.sh HTTP/1.0\r\n\r\n", timeout=TIMEOUT)
    status, headers, body = split_raw(raw)
    assert status == b"HTTP/1.1 200 OK"
    assert "transfer-encoding" not in headers
    assert body == b"hello from sh\n"


def read_framed(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """Read one response with a Content-Length from a binary file (status, headers, body)."""
    status = status_of(reader.readline(65537))
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", "0")))


def test_http11_unread_request_body_does_not_become_a_request(tree: Tree) -> None:
    # ignore.sh never reads stdin. The rest of a large body must not be taken as
    # the next request on the kept-alive connection (request smuggling): either it
    # is discarded and the next request is answered, or the connection is closed
    # after the reply. The body is made of 64-byte requests for smuggled.sh, so
    # wherever a 64 KiB read stops, what is left parses as requests.
    unit = b"GET /cgi-bin/smuggled.sh HTTP/1.1\r\nHost: x\r\nX-Pad: "
    unit += b"p" * (64 - len(unit) - 4) + b"\r\n\r\n"
    assert len(unit) == 64
    body = unit * (MIB // 64)
    with (
        serve(tree, "HTTP/1.1") as s,
        socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT) as sock,
    ):
        sock.sendall(
            b"POST /cgi-bin/ignore.sh HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
            + body
        )
        reader = sock.makefile("rb")
        status, headers, first = read_framed(reader)
        assert (status, first) == (200, b"ignored")
        closes = headers.get("connection", "").lower() == "close"
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /cgi-bin/withlength.sh HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            second: tuple[int, dict[str, str], bytes] = read_framed(reader)
            if second[2] == b"" and "transfer-encoding" in second[1]:
                second = (second[0], second[1], reader.read1(200))
        except OSError as error:
            second = (0, {}, repr(error).encode())
    smuggled = (tree.markers / "smuggled-ran").exists()
    if closes:
        assert second[0] == 0, second
    else:
        assert (second[0], second[2]) == (200, b"hello"), (
            f"the next request on the connection got {second!r}"
        )
    assert not smuggled, "request-body bytes were run as a request (smuggled.sh ran)"


# =========================================================================== paths


def test_nested_script_with_path_info(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/sub/dir/script.sh/extra/path?x=1")
    assert resp.status == 200
    root = served.root
    assert resp.body.decode() == (
        f"/cgi-bin/sub/dir/script.sh|/extra/path|{os.path.join(root, 'cgi-bin', 'sub', 'dir')}"
    )


TRAVERSALS = [
    "/cgi-bin/../secret.sh",
    "/cgi-bin/%2e%2e/secret.sh",
    "/cgi-bin/%2E%2E/secret.sh",
    "/cgi-bin/.%2e/secret.sh",
    "/cgi-bin/%2e%2e%2fsecret.sh",
    "/cgi-bin/..%2fsecret.sh",
    "/cgi-bin/sub/../../secret.sh",
    "/cgi-bin/sub/%2e%2e/%2e%2e/secret.sh",
    "/htbin/../cgi-bin/../secret.sh",
    "/cgi-bin/../x",
    "/cgi-bin/%2e%2e/x",
    "/cgi-bin/sub/../../x",
    "/cgi-bin/sub/dir/../../../x",
    # Double-encoded: "%252e" is a literal "%2e" once decoded, i.e. a name, not "..".
    "/cgi-bin/%252e%252e/secret.sh",
    "/cgi-bin/%252e%252e/x",
    "/cgi-bin/sub/%252e%252e/%252e%252e/x",
    "/cgi-bin/%252e%252e%252fsecret.sh",
]


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_dotdot_never_runs_a_script_outside_cgi_bin(
    tree: Tree, served: Served, path: str, method: str
) -> None:
    extra = b"\r\n" if method == "GET" else b"Content-Length: 1\r\n\r\nx"
    raw = raw_exchange(served.port, f"{method} {path} HTTP/1.0\r\n".encode("ascii") + extra)
    assert status_of(raw) != 0, raw[:200]
    assert tree.ran() == [], f"{method} {path} ran a script outside cgi-bin: {raw[:200]!r}"


# =========================================================================== volume


def test_large_post_is_streamed_to_the_script(served: Served) -> None:
    body = bytes(range(256)) * (BIG // 256)
    resp = fetch(served.port, "POST", "/cgi-bin/wc.sh", body=body)
    assert resp.status == 200
    assert resp.body == str(BIG).encode("ascii")


def test_large_download_arrives_complete(served: Served) -> None:
    resp = fetch(served.port, "GET", "/cgi-bin/big.py")
    assert resp.status == 200
    assert len(resp.body) == BIG
    assert resp.body == bytes(range(256)) * (BIG // 256)


def test_large_download_chunked_over_http11(tree: Tree) -> None:
    with serve(tree, "HTTP/1.1") as s:
        resp = fetch(s.port, "GET", "/cgi-bin/big.py")
    assert resp.status == 200
    assert resp.header("Transfer-Encoding") == "chunked"
    assert resp.body == bytes(range(256)) * (BIG // 256)


def test_concurrent_clients(tree: Tree, served: Served) -> None:
    results: dict[int, Response | BaseException] = {}

    def client(n: int) -> None:
        try:
            results[n] = fetch(served.port, "GET", f"/cgi-bin/barrier.sh?client{n}")
        except BaseException as error:  # reported below
            results[n] = error

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(results) == list(range(8))
    for n, result in results.items():
        assert isinstance(result, Response), result
        assert result.status == 200
        # Its own query back, and all 8 scripts were running at the same time.
        assert result.body == f"client{n} 8".encode(), result.body


# =========================================================================== parity


@pytest.mark.skipif(
    not hasattr(http.server, "CGIHTTPRequestHandler"),
    reason="this Python's http.server has no CGIHTTPRequestHandler",
)
@pytest.mark.parametrize("path", ["/cgi-bin/hello.sh", "/htbin/hello.sh"])
def test_parity_with_stdlib(tree: Tree, served: Served, path: str) -> None:
    reference_class: type[Any] = http.server.CGIHTTPRequestHandler

    class Quiet(reference_class):  # type: ignore[misc]
        def log_message(self, format: str, *args: Any) -> None:
            pass

    ours = fetch(served.port, "GET", path)
    quiet: Callable[..., Any] = Quiet
    with running_server(http.server.ThreadingHTTPServer, quiet, directory=str(tree.root)) as ref:
        theirs = fetch(port_of(ref), "GET", path)
    assert ours.status == theirs.status == 200
    assert ours.body == theirs.body
    assert ours.header("Content-Type") == theirs.header("Content-Type")
