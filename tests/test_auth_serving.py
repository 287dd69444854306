"""--auth end to end: every kind of request, on the event loop and on handler threads.

Real sockets on 127.0.0.1: `both_paths` serves one site from devserve's event
loop and from its threaded handler, and every request is asked of both.
"""

from __future__ import annotations

import base64
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserve._auth import CHALLENGE, User
from devserve._loop import LoopHTTPServer
from devserve.config import CGIConfig, ReloadConfig, ServeConfig
from devserve.events import LogEvent
from tests.support import (
    Collector,
    both_paths,
    devserve_process,
    port_of,
    raw_exchange,
    running_devserve,
    status_of,
    stop_and_read,
)

PASSWORD = "correct horse:battery"
USER = User("alice", PASSWORD)
GOOD = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
WRONG_PASSWORD = "Basic " + base64.b64encode(b"alice:correct horse").decode()
WRONG_USER = "Basic " + base64.b64encode(f"alicia:{PASSWORD}".encode()).decode()
NOTES = b"0123456789" * 100
HELLO = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nuser=%s' \"$REMOTE_USER\"\n"


@pytest.fixture
def site(public_tmp: Path) -> Path:
    (public_tmp / "index.html").write_text("<!doctype html><title>t</title><body>home</body>")
    (public_tmp / "notes.txt").write_bytes(NOTES)
    (public_tmp / "docs").mkdir()
    (public_tmp / "docs" / "a.txt").write_text("a")
    (public_tmp / ".well-known").mkdir()
    (public_tmp / ".well-known" / "security.txt").write_text("Contact: x")
    script = public_tmp / "cgi-bin" / "hello.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text(HELLO)
    script.chmod(0o755)
    return public_tmp


def config_for(site: Path, **changes: object) -> ServeConfig:
    base = ServeConfig(
        directory=site, auth=(USER,), reload=ReloadConfig(), cgi=CGIConfig(), cors=True
    )
    return base.__class__(**{**base.__dict__, **changes})


@pytest.fixture
def ports(site: Path) -> Iterator[tuple[tuple[int, int], Collector]]:
    with both_paths(config_for(site)) as (loop, threads, log):
        yield (loop, threads), log


def request(method: str, target: str, *fields: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: t", *fields]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def head_only(port: int, data: bytes) -> bytes:
    """The response head to ``data`` (for answers that stream on, such as events)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    return got.partition(b"\r\n\r\n")[0]


# What each kind of request gets with the right credentials (without: 401).
KINDS = [
    ("file", "GET", "/notes.txt", (), b"", 200),
    ("index", "GET", "/", (), b"", 200),
    ("listing", "GET", "/docs/", (), b"", 200),
    ("404", "GET", "/missing.txt", (), b"", 404),
    ("range", "GET", "/notes.txt", ("Range: bytes=0-9",), b"", 206),
    ("HEAD", "HEAD", "/notes.txt", (), b"", 200),
    ("conditional", "GET", "/notes.txt", ("If-None-Match: *",), b"", 304),
    ("well-known", "GET", "/.well-known/security.txt", (), b"", 200),
    ("reload worker", "GET", "/__devserve__/worker.js", (), b"", 200),
    ("CGI", "GET", "/cgi-bin/hello.sh", (), b"", 200),
    ("CGI POST", "POST", "/cgi-bin/hello.sh", (), b"x=1", 200),
    ("other method", "PUT", "/notes.txt", (), b"data", 501),
    ("OPTIONS, no preflight", "OPTIONS", "/notes.txt", (), b"", 204),
]


@pytest.mark.parametrize(
    ("kind", "method", "target", "fields", "body", "status"), KINDS, ids=[k[0] for k in KINDS]
)
def test_every_kind_of_request_needs_the_password_on_both_paths(
    ports: tuple[tuple[int, int], Collector],
    kind: str,
    method: str,
    target: str,
    fields: tuple[str, ...],
    body: bytes,
    status: int,
) -> None:
    for port in ports[0]:
        for refused in (
            (),
            (f"Authorization: {WRONG_PASSWORD}",),
            (f"Authorization: {WRONG_USER}",),
        ):
            reply = raw_exchange(port, request(method, target, *fields, *refused, body=body))
            assert status_of(reply) == 401, (port, refused, reply[:300])
            head, _, page = reply.partition(b"\r\n\r\n")
            assert f"\r\nWWW-Authenticate: {CHALLENGE}\r\n".encode() in head
            assert (page == b"") == (method == "HEAD")
            assert NOTES[:20] not in page
            assert b"home" not in page
        reply = raw_exchange(
            port, request(method, target, *fields, f"Authorization: {GOOD}", body=body)
        )
        assert status_of(reply) == status, (port, reply[:300])
        if kind == "CGI":
            assert b"\r\nuser=alice\r\n" in reply


def test_the_event_stream_needs_the_password(ports: tuple[tuple[int, int], Collector]) -> None:
    for port in ports[0]:
        refused = head_only(port, request("GET", "/__devserve__/events"))
        assert status_of(refused) == 401
        admitted = head_only(port, request("GET", "/__devserve__/events", f"Authorization: {GOOD}"))
        assert status_of(admitted) == 200
        assert b"text/event-stream" in admitted


def test_a_cors_preflight_is_answered_without_credentials(
    ports: tuple[tuple[int, int], Collector],
) -> None:
    preflight = request(
        "OPTIONS",
        "/notes.txt",
        "Origin: http://elsewhere.test",
        "Access-Control-Request-Method: GET",
        "Access-Control-Request-Headers: authorization",
    )
    for port in ports[0]:
        reply = raw_exchange(port, preflight)
        assert status_of(reply) == 204, reply
        assert b"Access-Control-Allow-Headers: authorization" in reply
        # the request it announces still needs the password
        asked = request("GET", "/notes.txt", "Origin: http://elsewhere.test")
        assert status_of(raw_exchange(port, asked)) == 401


def test_a_cors_preflight_needs_the_password_without_cors(site: Path) -> None:
    preflight = request("OPTIONS", "/notes.txt", "Access-Control-Request-Method: GET")
    with both_paths(config_for(site, cors=False)) as (loop, threads, _):
        for port in (loop, threads):
            assert status_of(raw_exchange(port, preflight)) == 401


MALFORMED = [
    "Basic !!!!",
    "Basic " + base64.b64encode(b"alice").decode(),  # no colon
    "Basic " + base64.b64encode(b"\xff\xfe:\xc3\x28").decode(),  # not UTF-8
    "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()[:-2],  # cut short
    "Basic",
    "Basic ",
    "basic " + base64.b64encode(b":").decode(),
    "Basic " + "QUFB" * 3000,
    "Bearer " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
    "Digest username=alice",
    "Basic \xff\xfe\xfd",
    "Basic\t" + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
]


@pytest.mark.parametrize("value", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_credentials_get_401_never_500(
    ports: tuple[tuple[int, int], Collector], value: str
) -> None:
    (loop, threads), log = ports
    for port in (loop, threads):
        for target in ("/notes.txt", "/cgi-bin/hello.sh"):
            reply = raw_exchange(port, request("GET", target, f"Authorization: {value}"))
            assert status_of(reply) == 401, (port, target, reply[:200])
    assert not [i for i in log.items if isinstance(i, LogEvent) and i.level == "error"]


def test_the_first_authorization_field_counts_on_both_paths(
    ports: tuple[tuple[int, int], Collector],
) -> None:
    for port in ports[0]:
        good_first = request(
            "GET", "/notes.txt", f"Authorization: {GOOD}", f"Authorization: {WRONG_USER}"
        )
        wrong_first = request(
            "GET", "/notes.txt", f"Authorization: {WRONG_USER}", f"Authorization: {GOOD}"
        )
        assert status_of(raw_exchange(port, good_first)) == 200
        assert status_of(raw_exchange(port, wrong_first)) == 401


def test_http_0_9_gets_no_file(site: Path) -> None:
    with both_paths(config_for(site)) as (loop, threads, _):
        for port in (loop, threads):
            reply = raw_exchange(port, b"GET /notes.txt\r\n")
            assert NOTES[:20] not in reply
            assert b"401" in reply


def test_a_refused_upload_is_never_invited(ports: tuple[tuple[int, int], Collector]) -> None:
    """Expect: 100-continue without the password: 401 at once, no 100, connection closed."""
    for port in ports[0]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /cgi-bin/hello.sh HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert status_of(reply) == 401
        assert b"100 Continue" not in reply


def _exchange(connection: http.client.HTTPConnection, target: str, *auth: str) -> int:
    headers = {"Authorization": auth[0]} if auth else {}
    connection.request("GET", target, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def test_the_loop_never_confuses_a_401_with_a_remembered_reply(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies the loop remembers are keyed by the whole head: one admitted never
    answers a head without, or with other, credentials, on the same connection or not."""
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # every read may be remembered
    config = ServeConfig(directory=site, auth=(USER,), quiet=True)
    with running_devserve(config) as (server, _, _):
        assert isinstance(server, LoopHTTPServer)
        port = port_of(server)
        before = server.answered_in_loop
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        statuses = [
            _exchange(connection, "/notes.txt", GOOD),
            _exchange(connection, "/notes.txt", GOOD),  # remembered: sent again
            _exchange(connection, "/notes.txt"),
            _exchange(connection, "/notes.txt", WRONG_PASSWORD),
            _exchange(connection, "/notes.txt", GOOD),
            _exchange(connection, "/notes.txt"),
        ]
        connection.close()
        assert statuses == [200, 200, 401, 401, 200, 401]
        # the very head that was admitted, with its password changed by one byte
        head = request("GET", "/notes.txt", f"Authorization: {GOOD}")
        changed = head.replace(GOOD.encode(), GOOD.encode()[:-3] + b"x==")
        for _ in range(3):
            assert status_of(raw_exchange(port, head)) == 200
            assert status_of(raw_exchange(port, changed)) == 401
        assert server.answered_in_loop - before == len(statuses) + 6  # no thread was needed
        assert server.replies is not None
        remembered = list(server.replies.answers)
        assert remembered
        assert all(GOOD.encode() in key for key in remembered)


def test_the_password_is_never_logged(site: Path) -> None:
    log = Collector()
    config = ServeConfig(directory=site, auth=(USER,), cgi=CGIConfig(), log_format="json")
    with running_devserve(config, log) as (server, _, _):
        port = port_of(server)
        for auth in (GOOD, WRONG_PASSWORD, WRONG_USER, "Basic !!"):
            for target in ("/notes.txt", "/cgi-bin/hello.sh", "/nothing"):
                raw_exchange(port, request("GET", target, f"Authorization: {auth}"))
        deadline = time.monotonic() + 5
        while len(log.records()) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
    records = log.records()
    assert len(records) == 12
    text = repr(log.items)
    for secret in (PASSWORD, "correct horse", GOOD.split()[1], WRONG_PASSWORD.split()[1]):
        assert secret not in text
    notes = {r.note for r in records if r.status == 401}
    assert notes == {"wrong user or password", "malformed Basic credentials"}
    assert {r.served for r in records if r.status == 401} == {"auth"}


def test_the_warning_and_ps_as_a_process(site: Path, tmp_path: Path) -> None:
    """From DEVSERVE_AUTH or --auth-file, the password is not on the command line (ps);
    over plain HTTP on every interface, the start-up says it crosses in clear text."""
    users = tmp_path / "users.txt"
    users.write_text(f"alice:{PASSWORD}\n")
    runs = [
        (["--auth-file", str(users)], {}),
        ([], {"DEVSERVE_AUTH": f"alice:{PASSWORD}"}),
    ]
    for args, env in runs:
        command = ["serve", str(site), "-p", "0", "--bind", "0.0.0.0", *args]
        with devserve_process(*command, env=env) as (process, url):
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
            assert PASSWORD.encode() not in cmdline
            port = int(url.rstrip("/").rsplit(":", 1)[1])
            assert status_of(raw_exchange(port, request("GET", "/notes.txt"))) == 401
            good = request("GET", "/notes.txt", f"Authorization: {GOOD}")
            assert status_of(raw_exchange(port, good)) == 200
            rest = stop_and_read(process)
        assert "--auth without TLS: the password crosses the network in clear text" in rest
        assert "reachable from your network: anyone on it with the password can" in rest
        assert PASSWORD not in rest
        assert GOOD.split()[1] not in rest


def test_no_warning_on_loopback(site: Path) -> None:
    with devserve_process("serve", str(site), "-p", "0", "--auth", "a:b") as (process, _):
        rest = stop_and_read(process)
    assert "clear text" not in rest
    assert "Options: auth: 1 user" in rest or "auth: 1 user" in rest


def test_the_json_log_shows_no_password(site: Path) -> None:
    """The JSON log (stdout) of a server that refused and admitted requests, after the
    banner: refusals explained, no password, no token."""
    env = {"DEVSERVE_AUTH": f"alice:{PASSWORD}"}
    command = ["serve", str(site), "-p", "0", "--lan", "--log-format", "json"]
    with devserve_process(*command, env=env, log="stdout") as (process, url):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        for auth in (GOOD, WRONG_PASSWORD, "Basic !!"):
            raw_exchange(port, request("GET", "/notes.txt", f"Authorization: {auth}"))
        text = stop_and_read(process, "stdout")
    assert '"status": 200' in text
    assert '"note": "wrong user or password"' in text
    assert "clear text" in text  # the warning is an event of the log too
    for secret in (PASSWORD, "correct horse", GOOD.split()[1], WRONG_PASSWORD.split()[1]):
        assert secret not in text
