"""Request targets under ``--proxy``, over real sockets: what is forwarded, served or refused.

Every malformed request is sent with a raw socket, twice: first on a new
connection (the event loop reads it and leaves it to a thread), then pipelined
after a proxied request (the connection is already held by a thread). A raw
backend records every head it receives and answers ``ok``, so a 200 can only be
the backend's or the folder's, and a refusal never reaches the backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserve._paths import url_to_fs_path
from devserve.config import ServeConfig
from tests.support import port_of, raw_exchange, running_devserve, status_of
from tests.test_proxy_serving import OK, RawBackend, config_for, proxying, raw_backend

HOLD = b"GET /api/hold HTTP/1.1\r\nHost: x\r\n\r\n"  # proxied: the connection goes to a thread
SECRET = b"never served from the folder"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><p>local page")
    for folder in ("api", "config"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "secret.txt").write_bytes(SECRET)
    return tmp_path


@pytest.fixture
def ok_backend() -> Iterator[RawBackend]:
    with raw_backend(lambda number, head: OK) as backend:
        yield backend


def answer(port: int, request: bytes, held: bool) -> bytes:
    """devserve's answer to ``request``, alone on a new connection or after a proxied one."""
    if not held:
        return raw_exchange(port, request)
    response = raw_exchange(port, HOLD + request)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response[:200]
    head, _, rest = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert length is not None, head
    return rest[int(length[1]) :]


def get(target: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def forwarded(backend: RawBackend) -> list[bytes]:
    """The request lines the backend received, but the one that held the connection."""
    lines = [head.split(b"\r\n", 1)[0] for head in backend.heads]
    return [line for line in lines if not line.endswith(b"/hold HTTP/1.1")]


def routed(site: Path, backend: RawBackend, route: str = "/api") -> ServeConfig:
    return config_for(site, f"{route}=http://127.0.0.1:{backend.port}")


# --------------------------------------------------------------------------- routed folders


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
@pytest.mark.parametrize(
    ("target", "status"),
    [
        # spelled so that the router does not match /api but the file mapper reaches ./api
        (b"api/secret.txt", 400),
        (b"./api/secret.txt", 400),
        (b"../api/secret.txt", 400),
        (b"/api%2Fsecret.txt", 400),
        (b"/api%2fsecret.txt", 400),
        (b"/x/..%2Fapi%2Fsecret.txt", 400),
        (b"/api%2F", 400),
        (b"/API/secret.txt", 400),  # ./api itself on a case-insensitive file system
        # neighbours that never reach ./api: not decoded twice, not a separator here
        (b"/api%252Fsecret.txt", 404),
        (b"/api%5Csecret.txt", 404),
        (b"/api%5csecret.txt", 404),
        (b"/api\\secret.txt", 404),
        (b"/apix/secret.txt", 404),
    ],
)
def test_targets_the_router_does_not_take_never_serve_a_routed_folder(
    site: Path, ok_backend: RawBackend, target: bytes, status: int, held: bool
) -> None:
    with proxying(routed(site, ok_backend)) as (port, _, _):
        response = answer(port, get(target), held)
    assert SECRET not in response
    assert status_of(response) == status, response[:300]
    assert forwarded(ok_backend) == []


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
def test_the_routed_spelling_still_goes_to_the_backend(
    site: Path, ok_backend: RawBackend, held: bool
) -> None:
    with proxying(routed(site, ok_backend)) as (port, _, _):
        response = answer(port, get(b"/api/secret.txt"), held)
        assert status_of(answer(port, get(b"/index.html"), held)) == 200
    assert (status_of(response), response.endswith(b"ok")) == (200, True)
    assert forwarded(ok_backend) == [b"GET /api/secret.txt HTTP/1.1"]


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
@pytest.mark.parametrize(
    "target",
    [b"config/secrets.txt", b"config/secret.txt", b"./config/secret.txt", b"index.html"],
)
def test_with_a_catch_all_route_no_relative_target_reads_the_folder(
    site: Path, ok_backend: RawBackend, target: bytes, held: bool
) -> None:
    with proxying(routed(site, ok_backend, "/")) as (port, _, _):
        response = answer(port, get(target), held)
        absolute = answer(port, get(b"http://x/config/secret.txt"), held)
    assert SECRET not in response + absolute
    assert (status_of(response), status_of(absolute)) == (400, 400)
    assert forwarded(ok_backend) == []


# ------------------------------------------------------------------------ methods and target bytes


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
@pytest.mark.parametrize(
    "line",
    [
        b"GET /api/a\x00b HTTP/1.1",
        b"GET /api/a\x01b HTTP/1.1",
        b"GET /api/x\x7f\x1b[2J HTTP/1.1",
        b"GET /api/caf\xe9 HTTP/1.1",
        b"GET /api/x#frag HTTP/1.1",
        b"G\x01ET /api/x HTTP/1.1",
        b"GE(T /api/x HTTP/1.1",
        b"G\xc9T /api/x HTTP/1.1",
        b"GET api/x HTTP/1.1",
    ],
)
def test_control_bytes_and_bad_methods_are_refused_never_forwarded(
    site: Path, ok_backend: RawBackend, line: bytes, held: bool
) -> None:
    with proxying(routed(site, ok_backend)) as (port, _, _):
        response = answer(port, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n", held)
    assert status_of(response) == 400, response[:300]
    assert forwarded(ok_backend) == []


def test_a_token_method_devserve_does_not_know_is_still_forwarded(
    site: Path, ok_backend: RawBackend
) -> None:
    with proxying(routed(site, ok_backend)) as (port, _, _):
        response = raw_exchange(port, get(b"/api/x", b"M-SEARCH"))
    assert status_of(response) == 200
    assert forwarded(ok_backend) == [b"M-SEARCH /api/x HTTP/1.1"]


# --------------------------------------------------------------------------- hidden dot segments


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
@pytest.mark.parametrize(
    "target",
    [
        b"/api/..;/admin",
        b"/api/..%2f..%2fadmin",
        b"/api/..%2F..%2Fadmin",
        b"/api/..%5c..%5cadmin",
        b"/api/..\\..\\admin",
        b"/api/%2e%2e;/admin",
        b"/api/.%2E%5Cadmin",
    ],
)
def test_paths_that_climb_out_for_some_backends_are_refused(
    site: Path, ok_backend: RawBackend, target: bytes, held: bool
) -> None:
    with proxying(config_for(site, f"/api=http://127.0.0.1:{ok_backend.port}/v1")) as (
        port,
        _,
        _,
    ):
        response = answer(port, get(target), held)
    assert status_of(response) == 400, response[:300]
    assert SECRET not in response
    assert forwarded(ok_backend) == []


@pytest.mark.parametrize("held", [False, True], ids=["loop", "thread"])
def test_double_encoded_separators_are_forwarded_as_they_came(
    site: Path, ok_backend: RawBackend, held: bool
) -> None:
    with proxying(config_for(site, f"/api=http://127.0.0.1:{ok_backend.port}/v1")) as (
        port,
        _,
        _,
    ):
        response = answer(port, get(b"/api/..%252Fadmin"), held)
    assert status_of(response) == 200
    assert forwarded(ok_backend) == [b"GET /v1/..%252Fadmin HTTP/1.1"]


# --------------------------------------------------------------------------- without --proxy


@pytest.mark.parametrize(
    "request_bytes",
    [
        get(b"api/secret.txt"),
        get(b"./config/secret.txt"),
        get(b"/config/secret.txt\x00"),
        get(b"/config/secret.txt#x"),
        b"GET config/secret.txt\r\n",  # HTTP/0.9
    ],
)
def test_devserve_refuses_such_targets_without_routes_too(site: Path, request_bytes: bytes) -> None:
    with running_devserve(ServeConfig(directory=site)) as (server, _, _):
        port = port_of(server)
        response = raw_exchange(port, request_bytes)
        assert status_of(raw_exchange(port, get(b"/config/secret.txt"))) == 200
    assert SECRET not in response
    if request_bytes.endswith(b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        assert status_of(response) == 400


# --------------------------------------------------------------------------- one rule, both readers


def test_no_target_in_the_traversal_corpus_reaches_a_routed_folder(site: Path) -> None:
    """Every traversal spelling, moved under /api: forwarded, refused, or outside ./api."""
    from tests.test_traversal import CORPUS

    targets = {target for target, _ in CORPUS if "{" not in target}
    spellings = {
        spelling
        for target in targets
        for spelling in (
            "/api" + target,
            "/api/real" + target,
            target.replace("secret.txt", "api/secret.txt"),
            target.replace("secret.txt", "API%2fsecret.txt"),
            target.replace("/", "", 1),
        )
    }
    config = config_for(site, "/api=http://127.0.0.1:9")
    with running_devserve(config) as (server, _, _):
        site_rules = server.context.site
        proxy = server.context.proxy
        assert proxy is not None
        routes = proxy.routes
        api = str(site / "api")
        for target in sorted(spellings):
            if site_rules.refusal("GET", target) is not None:
                continue
            if routes.forward(target) is not None:
                continue
            path = url_to_fs_path(target, str(site))
            assert not (path == api or path.startswith(api + "/")), target
            assert site_rules.answers("GET", target) or target == "*", target
