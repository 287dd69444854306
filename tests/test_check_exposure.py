"""devserve.check.exposure: served secrets (DS1xx), each both ways, and how they are worded."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.check import CODES, secret_kind
from devserve.check.exposure import exposure
from tests.check_support import (
    CERT_PEM,
    OPENSSH_KEY,
    PRIVATE_PEM,
    SERVICE_ACCOUNT,
    Case,
    Link,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)

REPORTED = [
    # -- exposure
    case("DS101", {".env": "API_KEY=abc"}, ".env", show_hidden=True),
    case("DS101", {".env.production": "DB_PASSWORD=x"}, ".env.production", show_hidden=True),
    case("DS101", {"config.txt": Link(".env"), ".env": "API_KEY=abc"}, "config.txt",
         show_hidden=True),
    case("DS102", {".git/HEAD": "ref: refs/heads/main\n"}, ".git/", show_hidden=True),
    case("DS102", {"repo": Link("../project/.git"), "../project/.git/HEAD": "x"}, "repo/",
         follow_symlinks=True, show_hidden=True),
    case("DS103", {"certs/server.pem": PRIVATE_PEM}, "certs/server.pem"),
    case("DS103", {"backup/id_ed25519": OPENSSH_KEY}, "backup/id_ed25519"),
    case("DS103", {"tls.key": PRIVATE_PEM}, "tls.key"),
    case("DS103", {"client.p12": b"0\x82\x05"}, "client.p12"),
    case("DS104", {"admin/.htpasswd": "alice:$apr1$x$y"}, "admin/.htpasswd", show_hidden=True),
    case("DS105", {"config/service-account.json": SERVICE_ACCOUNT}, "config/service-account.json"),
    case("DS105", {"oauth.json": '{"web": {"client_secret": "GOCSPX-abcdefgh12"}}'}),
    case("DS106", {".netrc": "machine example.com login a password b"}, ".netrc",
         show_hidden=True),
    case("DS106", {".ssh/config": "Host *"}, ".ssh/", show_hidden=True),
    case("DS106", {".npmrc": "//registry.npmjs.org/:_authToken=npm_abc"}, show_hidden=True),
]  # fmt: skip

NOT_REPORTED = [
    # -- exposure: hidden by default, templates, certificates, public keys, look-alikes
    case("DS101", {".env": "API_KEY=abc"}),
    case("DS101", {".env.example": "API_KEY="}, show_hidden=True),
    case("DS101", {"env.js": "export default {}"}),
    # a link to a hidden file is hidden too: the server refuses it without --show-hidden
    case("DS101", {"config.txt": Link(".env"), ".env": "API_KEY=abc"}),
    case("DS102", {"repo": Link("../project/.git"), "../project/.git/HEAD": "x"},
         follow_symlinks=True),
    case("DS102", {".git/HEAD": "ref: refs/heads/main\n"}),
    case("DS102", {"git/HEAD": "x", "github.html": page("")}),
    case("DS103", {"certs/server.pem": CERT_PEM}),
    case("DS103", {"id_rsa.pub": "ssh-rsa AAAAB3Nza"}),
    case("DS103", {"slides.key": b"PK\x03\x04keynote"}),
    case("DS104", {".htpasswd": "alice:$apr1$x$y"}),
    case("DS104", {"htpasswd.md": "# how to make one"}),
    case("DS105", {"i18n/en.json": '{"password": "Password", "client_secret": ""}'}),
    case("DS105", {"package.json": '{"name": "site", "private": true}'}),
    case("DS106", {".npmrc": "registry=https://registry.npmjs.org/"}, show_hidden=True),
    case("DS106", {".netrc": "machine x"}),
    case("DS106", {"credentials.html": page("")}),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


def test_exposure_says_which_flag_exposes_it(tmp_path: Path) -> None:
    build(tmp_path, {".env": "X=1", "keys/server.pem": PRIVATE_PEM})
    findings = {f.code: f for f in run_check(tmp_path, show_hidden=True).findings}
    assert findings["DS101"].message == "environment file served because of --show-hidden"
    assert findings["DS101"].fix.endswith("or serve without --show-hidden")
    assert findings["DS103"].message == "private key served with the default options"


def test_a_link_out_of_the_folder_exposes_what_it_leads_to(tmp_path: Path) -> None:
    build(tmp_path, {"site/keys": Link("../home/.ssh"), "home/.ssh/id_rsa": OPENSSH_KEY})
    findings = run_check(tmp_path / "site", follow_symlinks=True, show_hidden=True).findings
    assert [f.code for f in findings] == ["DS106", "DS202"]
    assert findings[0].message == (
        "credential folder (.ssh) served because of --show-hidden and --follow-symlinks"
    )
    # Without --show-hidden the server refuses a link that leads to a hidden folder.
    refused = run_check(tmp_path / "site", follow_symlinks=True).findings
    assert "DS106" not in [f.code for f in refused]


@pytest.mark.parametrize(
    ("hidden", "outside", "message", "fix_suffix"),
    [
        (False, False, "key served with the default options", ""),
        (True, False, "key served because of --show-hidden", ", or serve without --show-hidden"),
        (False, True, "key served because of --follow-symlinks",
         ", or serve without --follow-symlinks"),
        (True, True, "key served because of --show-hidden and --follow-symlinks",
         ", or serve without --show-hidden and --follow-symlinks"),
    ],
)  # fmt: skip
def test_exposure_wording(hidden: bool, outside: bool, message: str, fix_suffix: str) -> None:
    assert exposure("DS103", "key", hidden, outside) == (message, CODES["DS103"].fix + fix_suffix)


@pytest.mark.parametrize(
    ("name", "parent", "content", "code"),
    [
        (".env", "", "", "DS101"),
        (".env.local", "", "", "DS101"),
        (".envrc", "", "", "DS101"),
        (".env.sample", "", "", None),
        (".environment.js", "", "", None),
        (".htpasswd", "", "", "DS104"),
        (".htaccess", "", "", None),
        ("credentials", ".aws", "", "DS106"),
        ("credentials", "docs", "", None),
        (".git-credentials", "", "", "DS106"),
        ("id_rsa", "", OPENSSH_KEY, "DS103"),
        ("id_rsa.bak", "", OPENSSH_KEY, "DS103"),
        ("id_rsa.pub", "", "ssh-rsa AAAA", None),
        ("id_rsa", "", "not a key", None),
        ("key.pem", "", CERT_PEM + PRIVATE_PEM, "DS103"),
        ("key.ppk", "", "PuTTY-User-Key-File-3: ssh-ed25519", "DS103"),
        ("x.json", "", '{"refresh_token": "1//0gabcdefgh"}', "DS105"),
        ("x.json", "", '{"refresh_token": "short"}', None),
        ("x.json", "", '{"private_key_id": "abcdefghijk"}', None),
    ],
)
def test_secret_kind(
    tmp_path: Path, name: str, parent: str, content: str, code: str | None
) -> None:
    path = tmp_path / "file"
    path.write_text(content)
    found = secret_kind(name, parent, str(path))
    assert (found[0] if found else None) == code
