"""Nothing outside the served directory is ever served.

``devserve.server.ThreadingHTTPServer`` + ``SimpleHTTPRequestHandler(directory=root)``
runs on 127.0.0.1 (port 0, read back); ``root`` is ``<tmp>/www`` and everything next to
it holds a marker that must never appear in any reply:

    <tmp>/secret.txt                      MARKER
    <tmp>/outside_dir/secret_in_dir.txt   MARKER (and an index.html with it)
    <tmp>/www_sibling/secret.txt          MARKER (shares the root's name as a prefix)
    <tmp>/www/                            the root (links described in ``LINKS``)

Requests go over a raw socket so nothing normalises them on the way. Each reply must
carry a proper status line (never a dropped connection, never a 5xx), must not contain
the marker (nor the first line of /etc/passwd), and a redirect must not point at
``//host`` (an open redirect).

Deliberate differences from the stdlib (documented in the spec's security section and
devserve.server.SimpleHTTPRequestHandler): the stdlib follows every symlink, also out
of the root (``test_stdlib_follows_links_out_of_the_root`` shows it); devserve's default
policy refuses links whose target leaves the root (404 or 403). The stdlib also drops
the connection without any reply on ``%00`` or a lone surrogate (``%ed%a0%80``) in the
path (``open()`` raises ValueError, which ``send_head`` does not catch) -- a stdlib bug
devserve must not copy: here those requests need a real status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devserve import server as devserve_server
from tests.support import port_of, raw_exchange, running_server, status_of

MARKER = b"MARKER-outside-the-root-5f0e1c9a"
TIMEOUT = 5.0

#: Statuses a refused traversal attempt may get.
REFUSED = frozenset({400, 403, 404})
#: Statuses any request in the corpus may get (a 200/301 must still carry no marker).
ANSWERED = REFUSED | {200, 301}


def _passwd_marker() -> bytes | None:
    with contextlib.suppress(OSError):
        first = Path("/etc/passwd").read_bytes().split(b"\n", 1)[0]
        if len(first) >= 8:
            return first
    return None


PASSWD_MARKER = _passwd_marker()

#: symlinks inside the root: name -> target (as written into the link)
LINKS: dict[str, str] = {
    # allowed: the target stays inside the root
    "in_link": "real_dir",
    "in_file_link": "public.txt",
    "real_dir/up_in": "../public.txt",
    # refused: the target leaves the root
    "out_link": "../outside_dir",
    "out_file": "../secret.txt",
    "a": "b",  # a -> b -> ../secret.txt
    "b": "../secret.txt",
    "prefix_link": "../www_sibling",
    "prefix_file": "../www_sibling/secret.txt",
    "real_dir/deep_out": "../../secret.txt",
    "in_link_to_out": "out_link",  # stays inside, but the link it names leaves
    # broken
    "loop1": "loop2",
    "loop2": "loop1",
    "dangling": "does_not_exist",
}
# "abs_link" -> the absolute path of <tmp>/secret.txt is added by the fixture


@dataclasses.dataclass(frozen=True)
class Layout:
    tmp: Path
    root: Path
    secret: Path


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    tmp = tmp_path_factory.mktemp("traversal")
    secret = tmp / "secret.txt"
    secret.write_bytes(MARKER + b"\n")
    (tmp / "outside_dir").mkdir()
    (tmp / "outside_dir" / "secret_in_dir.txt").write_bytes(MARKER + b" in dir\n")
    (tmp / "outside_dir" / "index.html").write_bytes(b"<p>" + MARKER + b"</p>\n")
    (tmp / "www_sibling").mkdir()
    (tmp / "www_sibling" / "secret.txt").write_bytes(MARKER + b" sibling\n")
    root = tmp / "www"
    (root / "real_dir").mkdir(parents=True)
    (root / "public.txt").write_bytes(b"public\n")
    (root / "real_dir" / "inside.txt").write_bytes(b"inside\n")
    for name, target in LINKS.items():
        (root / name).symlink_to(target)
    (root / "abs_link").symlink_to(secret)
    return Layout(tmp, root, secret)


@contextlib.contextmanager
def serve(module: ModuleType, root: Path) -> Iterator[int]:
    with running_server(
        module.ThreadingHTTPServer, module.SimpleHTTPRequestHandler, directory=str(root)
    ) as server:
        yield port_of(server)


@pytest.fixture(scope="module")
def port(layout: Layout) -> Iterator[int]:
    with serve(devserve_server, layout.root) as bound:
        yield bound


def get(port: int, target: bytes, method: bytes = b"GET", version: bytes = b" HTTP/1.0") -> bytes:
    request = method + b" " + target + version + b"\r\nHost: 127.0.0.1\r\n\r\n"
    if not version:  # HTTP/0.9: no headers
        request = method + b" " + target + b"\r\n"
    return raw_exchange(port, request, timeout=TIMEOUT)


def head_of(reply: bytes) -> dict[str, str]:
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in head)
    }


def assert_safe(reply: bytes, what: str, allowed: frozenset[int] = ANSWERED) -> int:
    """The checks every reply gets; returns the status."""
    assert reply, f"{what}: connection closed without any reply"
    status = status_of(reply)
    shown = reply[:400]
    assert status in allowed, f"{what}: status {status} not in {sorted(allowed)}: {shown!r}"
    assert MARKER not in reply, f"{what}: THE MARKER FROM OUTSIDE THE ROOT WAS SERVED: {shown!r}"
    if PASSWD_MARKER is not None:
        assert PASSWD_MARKER not in reply, f"{what}: /etc/passwd was served: {shown!r}"
    location = head_of(reply).get("location", "")
    assert not location.startswith(("//", "/\\")), f"{what}: open redirect to {location!r}"
    return status


def expand(target: str, layout: Layout) -> bytes:
    return (
        target.replace("{abs_secret}", str(layout.secret))
        .replace("{abs_tmp}", str(layout.tmp))
        .encode("utf-8")
    )


# ---------------------------------------------------------------------------
# The corpus: (request target, whether a non-error reply is legitimate).
# Targets are sent verbatim (UTF-8 for the look-alikes); "{abs_secret}" and
# "{abs_tmp}" are replaced by the real paths.

Target = tuple[str, bool]

CORPUS: list[Target] = [
    # plain dot-dot
    ("/../secret.txt", False),
    ("/../../secret.txt", False),
    ("/../../../../../../../../secret.txt", False),
    ("/real_dir/../../secret.txt", False),
    ("/real_dir/../../../secret.txt", False),
    ("/./../secret.txt", False),
    ("/..", True),  # normalises to the root: a listing
    ("/../", True),
    ("..", True),
    ("../secret.txt", False),
    ("/" + "../" * 2000 + "secret.txt", False),
    ("/.../secret.txt", False),
    ("/..../secret.txt", False),
    ("/..;/secret.txt", False),
    ("/../outside_dir/secret_in_dir.txt", False),
    ("/../outside_dir/", False),
    ("/../www_sibling/secret.txt", False),
    # percent-encoded dots and slashes, any case
    ("/%2e%2e/secret.txt", False),
    ("/%2E%2E/secret.txt", False),
    ("/%2e%2E/secret.txt", False),
    ("/.%2e/secret.txt", False),
    ("/%2e./secret.txt", False),
    ("/%2e%2e%2fsecret.txt", False),
    ("/%2E%2E%2Fsecret.txt", False),
    ("/..%2fsecret.txt", False),
    ("/..%2Fsecret.txt", False),
    ("/%2f..%2fsecret.txt", False),
    ("/..%2f..%2f..%2fsecret.txt", False),
    ("/real_dir%2f..%2f..%2fsecret.txt", False),
    ("/%2e%2e%2f%2e%2e%2fwww_sibling%2fsecret.txt", False),
    ("/%2e%2e", True),
    ("/%2e%2e/", True),
    # backslashes
    ("/..\\secret.txt", False),
    ("/..\\..\\secret.txt", False),
    ("/%5c..%5csecret.txt", False),
    ("/..%5csecret.txt", False),
    ("/..%5C..%5Csecret.txt", False),
    ("/real_dir\\..\\..\\secret.txt", False),
    # NUL bytes (the stdlib drops the connection on these)
    ("/../secret.txt%00", False),
    ("/..%00/secret.txt", False),
    ("/public.txt%00../../secret.txt", False),
    ("/public.txt%00", False),
    ("/%00", False),
    ("/out_file%00", False),
    ("/\x00../secret.txt", False),
    # overlong UTF-8 and other invalid byte sequences
    ("/%c0%ae%c0%ae/secret.txt", False),
    ("/%c0%ae%c0%ae%c0%afsecret.txt", False),
    ("/%C0%AE%C0%AE%C0%AFsecret.txt", False),
    ("/%e0%80%ae%e0%80%ae/secret.txt", False),
    ("/%c1%9c..%c1%9csecret.txt", False),
    ("/%ff%fe/../secret.txt", False),
    ("/%ed%a0%80", False),  # a lone surrogate: the stdlib drops the connection
    ("/%ed%a0%80/../secret.txt", False),
    # invalid escapes
    ("/%", False),
    ("/%/../secret.txt", False),
    ("/%zz/../../secret.txt", False),
    ("/%2", False),
    ("/%2/../../secret.txt", False),
    ("/%%32%65%%32%65/secret.txt", False),
    # Unicode look-alikes, raw and encoded
    ("/\u2024\u2024/secret.txt", False),
    ("/%E2%80%A4%E2%80%A4/secret.txt", False),
    ("/\uff0e\uff0e/secret.txt", False),
    ("/%EF%BC%8E%EF%BC%8E/secret.txt", False),
    ("/\uff0e\uff0e\uff0fsecret.txt", False),
    ("/..\u2215secret.txt", False),
    ("/%2e%2e%e2%88%95secret.txt", False),
    # double encoding
    ("/%252e%252e/secret.txt", False),
    ("/%252e%252e%252fsecret.txt", False),
    ("/%25%32%65%25%32%65/secret.txt", False),
    ("/..%255csecret.txt", False),
    # absolute-form request targets
    ("http://127.0.0.1/../secret.txt", False),
    ("http://127.0.0.1/%2e%2e/secret.txt", False),
    ("http://example.com/../../secret.txt", False),
    ("http://127.0.0.1/../www_sibling/secret.txt", False),
    ("http://127.0.0.1:1/..%2fsecret.txt", False),
    ("file:///etc/passwd", False),
    ("file://{abs_secret}", False),
    # leading double slashes
    ("//../secret.txt", False),
    ("//..//secret.txt", False),
    ("///../secret.txt", False),
    ("//secret.txt", False),
    ("//%2e%2e/secret.txt", False),
    ("//{abs_tmp}/secret.txt", False),
    ("//real_dir", True),  # a redirect, which must not be to //real_dir/
    ("///real_dir", True),
    ("//127.0.0.1/../secret.txt", False),
    # absolute file-system paths
    ("{abs_secret}", False),
    ("/..{abs_secret}", False),
    ("/../../../../../../../..{abs_secret}", False),
    ("/etc/passwd", False),
    ("/../../../../../../../../etc/passwd", False),
    ("/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", False),
    ("/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", False),
    ("//etc/passwd", False),
    ("/%2fetc%2fpasswd", False),
    # symlinks that leave the root, reached by every spelling
    ("/out_file", False),
    ("/out_link", False),
    ("/out_link/", False),
    ("/out_link/secret_in_dir.txt", False),
    ("/out_link/index.html", False),
    ("/%6fut_file", False),
    ("/real_dir/../out_file", False),
    ("/in_link/../out_file", False),
    ("/in_link_to_out/secret_in_dir.txt", False),
    ("/a", False),
    ("/b", False),
    ("/abs_link", False),
    ("/prefix_link/secret.txt", False),
    ("/prefix_link/", False),
    ("/prefix_file", False),
    ("/real_dir/deep_out", False),
    ("/in_link/deep_out", False),
    ("//out_file", False),
    ("/out_file?x=1", False),
    ("/out_file#frag", False),
    ("/out_file/", False),
    ("/loop1", False),
    ("/dangling", False),
    # things that are fine, with traversal noise in the query or fragment
    ("/public.txt?../../secret.txt", True),
    ("/public.txt?file=%2e%2e%2fsecret.txt", True),
    ("/public.txt#/../../secret.txt", True),
    ("*", False),
]


def _id(target: Target) -> str:
    return target[0] if len(target[0]) < 60 else target[0][:50] + f"...({len(target[0])})"


@pytest.mark.parametrize(("target", "may_succeed"), CORPUS, ids=[_id(t) for t in CORPUS])
def test_traversal_corpus(target: str, may_succeed: bool, layout: Layout, port: int) -> None:
    reply = get(port, expand(target, layout))
    assert_safe(reply, f"GET {target!r}", ANSWERED if may_succeed else REFUSED)


HEAD_AND_09_TARGETS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/out_file",
    "/a",
    "/out_link/secret_in_dir.txt",
    "/%00",
    "/%c0%ae%c0%ae/secret.txt",
]


@pytest.mark.parametrize("target", HEAD_AND_09_TARGETS)
def test_traversal_with_head(target: str, port: int) -> None:
    reply = get(port, target.encode(), method=b"HEAD")
    assert_safe(reply, f"HEAD {target!r}", REFUSED)
    assert reply.endswith(b"\r\n\r\n"), f"HEAD {target!r}: a body was sent: {reply[:400]!r}"


@pytest.mark.parametrize("target", HEAD_AND_09_TARGETS)
def test_traversal_http09(target: str, port: int) -> None:
    """HTTP/0.9 replies have no status line: only the marker check applies."""
    reply = get(port, target.encode(), version=b"")
    assert reply, f"GET {target!r} (HTTP/0.9): connection closed without any reply"
    assert MARKER not in reply, f"GET {target!r} (HTTP/0.9) served the marker: {reply[:400]!r}"


# ---------------------------------------------------------------------------
# Symlinks, one by one

ALLOWED_LINKS = [
    ("/in_link/inside.txt", b"inside\n"),
    ("/in_file_link", b"public\n"),
    ("/real_dir/up_in", b"public\n"),
    ("/in_link/up_in", b"public\n"),
]


@pytest.mark.parametrize(("target", "content"), ALLOWED_LINKS)
def test_links_inside_the_root_are_followed(target: str, content: bytes, port: int) -> None:
    reply = get(port, target.encode())
    assert assert_safe(reply, f"GET {target!r}") == 200
    assert reply.split(b"\r\n\r\n", 1)[1] == content


def test_link_to_a_directory_inside_the_root(port: int) -> None:
    moved = get(port, b"/in_link")
    assert assert_safe(moved, "GET /in_link") == 301
    assert head_of(moved)["location"] == "/in_link/"
    listing = get(port, b"/in_link/")
    assert assert_safe(listing, "GET /in_link/") == 200
    assert b"inside.txt" in listing


REFUSED_LINKS = [
    "/out_link",
    "/out_link/",
    "/out_link/secret_in_dir.txt",
    "/out_file",
    "/a",
    "/b",
    "/abs_link",
    "/prefix_link/",
    "/prefix_link/secret.txt",
    "/prefix_file",
    "/real_dir/deep_out",
    "/in_link_to_out/",
    "/in_link_to_out/secret_in_dir.txt",
]


@pytest.mark.parametrize("target", REFUSED_LINKS)
def test_links_leaving_the_root_are_refused(target: str, port: int) -> None:
    for method in (b"GET", b"HEAD"):
        reply = get(port, target.encode(), method=method)
        status = assert_safe(reply, f"{method.decode()} {target!r}", frozenset({403, 404}))
        assert status in (403, 404)


@pytest.mark.parametrize("target", ["/", "/real_dir/", "/in_link/"])
def test_directory_listings_show_no_outside_content(target: str, port: int) -> None:
    reply = get(port, target.encode())
    assert assert_safe(reply, f"GET {target!r}") == 200
    body = reply.split(b"\r\n\r\n", 1)[1]
    assert b"<title>Directory listing for " + target.encode() in body
    assert b"secret_in_dir" not in body  # nothing from inside outside_dir is listed
    if target == "/":
        assert b'href="public.txt"' in body


def test_stdlib_follows_links_out_of_the_root(layout: Layout, port: int) -> None:
    """The deliberate difference: the stdlib serves the marker through a link, we do not."""
    with serve(http.server, layout.root) as std_port:
        for target in (b"/out_file", b"/a", b"/out_link/secret_in_dir.txt", b"/prefix_file"):
            std = get(std_port, target)
            assert status_of(std) == 200, std[:300]
            assert MARKER in std, "premise: the stdlib follows links out of the root"
            ours = get(port, target)
            assert status_of(ours) in (403, 404), ours[:300]
            assert MARKER not in ours


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    "target", ["/../secret.txt", "/%2e%2e/secret.txt", "/out_file", "/a", "//../secret.txt"]
)
def test_traversal_with_curl_path_as_is(target: str, port: int) -> None:
    done = subprocess.run(
        ["curl", "-sS", "-i", "--path-as-is", "--max-time", str(TIMEOUT),
         f"http://127.0.0.1:{port}{target}"],
        capture_output=True,
        timeout=TIMEOUT * 2,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_safe(done.stdout, f"curl --path-as-is {target!r}", REFUSED)


# ---------------------------------------------------------------------------
# Random combinations of the same ingredients

SEGMENTS = [
    "..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "..%2f", "%2f", "%5c", "..\\", "%00",
    "%c0%ae%c0%ae", "%252e%252e", "\uff0e\uff0e", "\u2024\u2024", "%", "%zz", "",
    "real_dir", "in_link", "out_link", "out_file", "a", "www", "www_sibling", "outside_dir",
    "secret.txt", "secret_in_dir.txt", "etc", "passwd", "prefix_link", "in_link_to_out",
]  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(
    prefix=st.sampled_from(["/", "//", "", "http://127.0.0.1/", "///"]),
    segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=8),
    separator=st.sampled_from(["/", "%2f", "\\", "%5c", "//"]),
)
def test_random_traversal_combinations(
    prefix: str, segments: list[str], separator: str, port: int
) -> None:
    target = (prefix + separator.join(segments)).encode("utf-8")
    assume(target)  # an empty target makes "GET  HTTP/1.0" a two-word HTTP/0.9 request
    reply = get(port, target)
    assert_safe(reply, f"GET {target!r}")


def test_marker_is_really_reachable_outside(layout: Layout) -> None:
    """Premise: the files the corpus aims at exist and hold the marker."""
    assert MARKER in layout.secret.read_bytes()
    assert MARKER in (layout.tmp / "www_sibling" / "secret.txt").read_bytes()
    assert MARKER in (layout.root / "a").read_bytes()  # through the chain, on disk
    assert os.path.realpath(layout.root / "out_link") == str(layout.tmp / "outside_dir")
    assert (layout.root / "a").is_symlink()
    assert (layout.root / "b").is_symlink()
