"""devserve._auth: the users --auth admits and the gate's decisions, as tables (no sockets)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from devserve import _auth
from devserve._auth import (
    MALFORMED,
    MAX_KNOWN,
    NO_CREDENTIALS,
    NOT_BASIC,
    PREFLIGHT_ONLY,
    WRONG,
    Admission,
    Gate,
    User,
    basic_credentials,
    clear_text_warning,
    parse_user,
    read_users,
    users_from,
)
from devserve.config import BadInput, ServeConfig

SECRET = "s3cret:with colon"
USERS = (User("alice", SECRET), User("bob", "hunter2"), User("zoë", "pässword"))


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (basic(b"alice:pw"), (b"alice", b"pw")),
        (basic(b"alice:pw:with:colons"), (b"alice", b"pw:with:colons")),
        (basic(b":pw"), (b"", b"pw")),
        (basic(b"alice:"), (b"alice", b"")),
        ("basic " + base64.b64encode(b"a:b").decode(), (b"a", b"b")),
        ("BASIC   " + base64.b64encode(b"a:b").decode(), (b"a", b"b")),
        ("  Basic " + base64.b64encode(b"a:b").decode() + " ", (b"a", b"b")),
        (basic(b"\xff\xfe:\x80"), (b"\xff\xfe", b"\x80")),  # not UTF-8: kept as bytes
        (basic(b"nocolon"), None),
        ("Basic", None),
        ("Basic ", None),
        ("Basic !!!!", None),  # not base64
        ("Basic YWxpY2U6cHc", None),  # padding missing
        ("Basic YWxpY2U6cHc==", None),  # padding too long
        ("Basic YWxpY2U6cHd=", None),  # a stray bit: not the one way to write "alice:pw"
        ("Basic YWxp Y2U6cHc=", None),  # a space inside
        ("Basic YWxpY2U6cHc=\x00", None),
        ("Basic ÿÿÿÿ", None),  # not ASCII
        ("Bearer abc", None),
        ("Digest username=alice", None),
        ("Basicx " + base64.b64encode(b"a:b").decode(), None),
        ("", None),
    ],
)
def test_basic_credentials(value: str, expected: tuple[bytes, bytes] | None) -> None:
    assert basic_credentials(value) == expected


@pytest.mark.parametrize(
    ("method", "authorization", "preflight", "cors", "expected"),
    [
        ("GET", basic(b"alice:" + SECRET.encode()), None, False, Admission("alice")),
        ("GET", basic(b"bob:hunter2"), None, False, Admission("bob")),
        ("GET", basic("zoë:pässword".encode()), None, False, Admission("zoë")),
        ("POST", basic(b"bob:hunter2"), None, False, Admission("bob")),
        ("GET", None, None, False, NO_CREDENTIALS),
        ("GET", basic(b"alice:hunter2"), None, False, WRONG),  # another user's password
        ("GET", basic(b"mallory:hunter2"), None, False, WRONG),
        ("GET", basic(b"bob:hunter"), None, False, WRONG),
        ("GET", basic(b"bob:hunter22"), None, False, WRONG),
        ("GET", basic(b"Bob:hunter2"), None, False, WRONG),  # names are compared exactly
        ("GET", basic(b"bob:"), None, False, WRONG),
        ("GET", basic("zoë:pässword".encode("latin-1")), None, False, WRONG),
        ("GET", basic(b"bob"), None, False, MALFORMED),
        ("GET", "Basic %%%", None, False, MALFORMED),
        ("GET", "Basic " + "A" * 9000, None, False, MALFORMED),
        ("GET", "Bearer token", None, False, NOT_BASIC),
        ("GET", "", None, False, NOT_BASIC),
        # a CORS preflight carries no credentials: with --cors it is answered
        ("OPTIONS", None, "GET", True, PREFLIGHT_ONLY),  # answered by devserve alone
        ("OPTIONS", None, "GET", False, NO_CREDENTIALS),
        ("OPTIONS", None, None, True, NO_CREDENTIALS),  # not a preflight
        ("GET", None, "GET", True, NO_CREDENTIALS),
        ("OPTIONS", basic(b"bob:nope"), "GET", True, WRONG),  # credentials given are checked
        # with credentials, a preflight is an ordinary request of the user's
        ("OPTIONS", basic(b"bob:hunter2"), "GET", True, Admission("bob")),
    ],
)
def test_gate(
    method: str, authorization: str | None, preflight: str | None, cors: bool, expected: Admission
) -> None:
    gate = Gate(USERS, cors=cors)
    assert gate.admit(method, authorization, preflight) == expected
    assert gate.admit(method, authorization, preflight) == expected  # remembered or not


def test_only_admitted_fields_are_remembered_and_the_table_is_bounded() -> None:
    gate = Gate(USERS)
    for n in range(500):
        assert gate.admit("GET", basic(f"bob:guess{n}".encode())) == WRONG
    assert gate._known == {}
    for n in range(MAX_KNOWN * 3):
        spelled = "Basic" + " " * (n + 1) + base64.b64encode(b"bob:hunter2").decode()
        assert gate.admit("GET", spelled) == Admission("bob")
        assert len(gate._known) <= MAX_KNOWN


def test_a_gate_needs_a_user() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        Gate(())


# ---------------------------------------------------------------------------- users


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice:pw", User("alice", "pw")),
        ("alice:pw:more", User("alice", "pw:more")),
        ("alice: spaced ", User("alice", " spaced ")),
        ("zoë:pässword", User("zoë", "pässword")),
    ],
)
def test_parse_user(text: str, expected: User) -> None:
    assert parse_user(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice", "--auth: expected USER:PASSWORD"),
        (":pw", "--auth: the user name is empty"),
        ("alice:", "--auth: the password is empty"),
        ("al\x1bice:pw", "--auth: control characters"),
        ("alice:p\nw", "--auth: control characters"),
        ("alice:\udcff", "--auth: the user name or password is not UTF-8"),
        (
            "alice:$2y$05$" + "a" * 53,
            "--auth: the password is an htpasswd hash; devserve needs the password itself",
        ),
        ("alice:{SHA}" + "b" * 27 + "=", "--auth: the password is an htpasswd hash"),
        ("alice:$apr1$salt$" + "c" * 22, "--auth: the password is an htpasswd hash"),
    ],
)
def test_parse_user_refuses_without_showing_the_text(text: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_user(text)
    assert str(caught.value).startswith(message)
    secret = text.partition(":")[2]
    if secret:
        assert secret not in str(caught.value)


def test_a_user_never_shows_the_password() -> None:
    user = User("alice", SECRET)
    assert SECRET not in repr(user)
    assert SECRET not in repr(ServeConfig(auth=(user,)))
    assert "alice" in repr(user)
    with pytest.raises(BadInput, match="password is empty"):
        User("alice", "")


def test_a_config_names_each_user_once() -> None:
    with pytest.raises(BadInput, match="a user name is given twice"):
        ServeConfig(auth=(User("a", "1"), User("a", "2")))


def test_read_users(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_bytes(
        b"# who may see the site\n\nalice:s3cret:with colon\r\nbob:hunter2\n  \n"
        b"zo\xc3\xab:p\xc3\xa4ssword\ncarol: with spaces \n"
    )
    assert read_users(users) == (
        User("alice", SECRET),
        User("bob", "hunter2"),
        User("zoë", "pässword"),
        User("carol", " with spaces "),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"alice:pw\nbob\n", "line 2: expected user:password"),
        (b"alice:pw\nalice:other\n", "line 2: user 'alice' is already on an earlier line"),
        (b"alice:\n", "line 1: the password is empty"),
        (b":pw\n", "line 1: the user name is empty"),
        (b"alice:p\xffw\n", "line 1: not UTF-8"),
        (b"alice:$2y$05$" + b"x" * 53 + b"\n", "line 1: the password is an htpasswd hash"),
        (b"# only a comment\n\n", "no user:password line"),
        (b"", "no user:password line"),
    ],
)
def test_read_users_refuses_a_bad_file(tmp_path: Path, content: bytes, message: str) -> None:
    users = tmp_path / "users.txt"
    users.write_bytes(content)
    with pytest.raises(BadInput) as caught:
        read_users(users)
    assert str(caught.value).startswith(f"--auth-file {users}")
    assert message in str(caught.value)
    assert b"other" not in content or "other" not in str(caught.value)


def test_read_users_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read --auth-file .*: No such file"):
        read_users(tmp_path / "none.txt")


def test_users_from(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("bob:hunter2\n")
    assert users_from(None, None) == ()
    assert users_from("a:b", None) == (User("a", "b"),)
    assert users_from(None, users) == (User("bob", "hunter2"),)
    with pytest.raises(BadInput, match=r"use either --auth \(or DEVSERVE_AUTH\) or --auth-file"):
        users_from("a:b", users)


@pytest.mark.parametrize(
    ("lan", "bind", "tls", "warned"),
    [
        (True, None, False, True),
        (False, "0.0.0.0", False, True),
        (False, "192.168.1.5", False, True),
        (False, "myhost", False, True),
        (False, None, False, False),
        (False, "127.0.0.1", False, False),
        (False, "127.0.0.2", False, False),
        (False, "::1", False, False),
        (False, "localhost", False, False),
        (True, None, True, False),
        (False, "0.0.0.0", True, False),
    ],
)
def test_clear_text_warning(lan: bool, bind: str | None, tls: bool, warned: bool) -> None:
    message = clear_text_warning(lan, bind, tls)
    assert (message is not None) == warned
    if message is not None:
        assert "clear text" in message
        assert "--tls auto" in message


def test_the_challenge_asks_for_utf_8() -> None:
    assert _auth.CHALLENGE == 'Basic realm="devserve", charset="UTF-8"'
