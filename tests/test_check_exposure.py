"""devserve.check.exposure: served secrets (DS1xx), each both ways, and how they are worded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devserve.check import CODES, secret_kind
from devserve.check.exposure import exposure
from tests.check_support import (
    CERT_PEM,
    CGI,
    OPENSSH_KEY,
    PRIVATE_PEM,
    ROOT,
    SERVICE_ACCOUNT,
    Case,
    File,
    Link,
    Tree,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)
from tests.test_check_secrets import AWS_ID, AWS_SECRET, GITHUB, GOOGLE, PEM, STRIPE

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
    # -- issue 15: environment files by any name, credential files without the dot
    case("DS101", {"config.env": "DB_PASSWORD=x"}, "config.env"),
    case("DS101", {"app.env.local": "API_KEY=abc"}, "app.env.local"),
    case("DS101", {"deploy/production.env": "API_KEY=abc"}, "deploy/production.env"),
    case("DS101", {"config.env.bak": "API_KEY=abc"}, "config.env.bak"),
    case("DS104", {"admin/htpasswd.old": Link(".htpasswd"), "admin/.htpasswd": "a:$apr1$x"},
         "admin/htpasswd.old", show_hidden=True),
    case("DS106", {"npmrc": "//registry.npmjs.org/:_authToken=npm_abc"}, "npmrc"),
    case("DS106", {"pypirc": "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc\n"},
         "pypirc"),
    case("DS106", {"netrc": "machine api.example.com login me password s3cret\n"}, "netrc"),
    case("DS106", {"pgpass": "db.example.com:5432:app:app:s3cret\n"}, "pgpass"),
    case("DS106", {".pgpass": "*:*:*:postgres:s3cret\n"}, ".pgpass", show_hidden=True),
    case("DS106", {"netrc.bak": "machine x login me password s3cret\n"}, "netrc.bak"),
    case("DS106", {".netrc~": "machine x"}, ".netrc~", show_hidden=True),
    case("DS107", {"notes.txt": f"id {AWS_ID}\n"}, "notes.txt:1"),
    case("DS107", {"js/app.js": f"const s3 = {{ secretAccessKey: '{AWS_SECRET}' }};\n"},
         "js/app.js:1"),
    case("DS107", {"index.html": page(f"<script>fetch(u, {{token: '{GITHUB}'}})</script>")},
         "index.html:9"),
    case("DS107", {".secrets.txt": f"{STRIPE}\n"}, ".secrets.txt:1", show_hidden=True),
    case("DS108", {"settings.ini": "[db]\nhost = x\npassword = s3cret-pw\n"}, "settings.ini:3"),
    case("DS108", {"app.cfg": "[auth]\nclient_secret = 8f4a9c2e77\n"}, "app.cfg:2"),
    case("DS108", {"wp-config.php.bak": "<?php\ndefine('DB_PASSWORD', 'wp-s3cret!');\n"},
         "wp-config.php.bak:2"),
    case("DS108", {"site.conf.old": "user = me\npass = letmein99\n"}, "site.conf.old:2"),
    case("DS108", {"notes.txt~": "db password: hunter22\n"}, "notes.txt~:1"),
    case("DS108", {"my.cnf": "[client]\npassword=tiger-Lily-42\n"}, "my.cnf:2"),
    case("DS109", {"firebase.js": f'export default {{ apiKey: "{GOOGLE}" }};\n'},
         "firebase.js:1"),
    case("DS103", {"docs/setup.md": f"Paste this:\n\n{PEM}"}, "docs/setup.md:3"),
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
    # -- issue 15: look-alikes, placeholders, and files the server does not serve
    case("DS101", {"webpack.env.js": "module.exports = process.env"}),
    case("DS101", {"app.env.example": "API_KEY="}),
    case("DS101", {"environment.txt": "dev"}),
    case("DS101", {"cgi-bin/config.env": "X=1"}, **CGI),  # scripts run, they are not sent
    case("DS106", {"npmrc": "registry=https://registry.npmjs.org/"}),
    case("DS106", {"netrc": "see man 5 netrc"}),
    case("DS106", {"pgpass.md": "hostname:port:database:username:password"}),
    case("DS106", {"pypirc": "[distutils]\nindex-servers = pypi\n"}),
    case("DS107", {"docs/aws.md": "Key ids look like AKIAIOSFODNN7EXAMPLE.\n"}),
    case("DS107", {"docs/aws.md": "An AKIA key is long-term; an ASIA key is temporary.\n"}),
    case("DS107", {".secrets.txt": f"{STRIPE}\n"}),  # hidden: not served
    case("DS107", {".git/config": f"url = https://{GITHUB}@github.com/x\n"}, show_hidden=True),
    case("DS107", {"cgi-bin/deploy.sh": File(f"#!/bin/sh\nTOKEN={GITHUB}\n", 0o755)}, **CGI),
    case("DS107", {"img/logo.png": b"\x89PNG\r\n\x1a\n" + GITHUB.encode()}),
    case("DS107", {"blob.bin": b"\x00\x01" + GITHUB.encode()}),
    case("DS108", {"settings.ini": "[db]\npassword = ${DB_PASSWORD}\n"}),
    case("DS108", {"settings.ini": "[ui]\nshow_password = true\n"}),
    case("DS108", {"login.html": page('<input type="password" name="password">')}),
    case("DS108", {"notes.txt": "password = hunter2\n"}),  # not a config file or a copy
    case("DS109", {"notes.txt": "Google keys start with AIza.\n"}),
    case("DS103", {"docs/pem.md": "A key starts with -----BEGIN PRIVATE KEY----- and ends...\n"}),
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
        ("config.env", "", "", "DS101"),
        ("app.env.local", "", "", "DS101"),
        ("vite.env.d.ts", "", "", None),
        (".env.bak", "", "", "DS101"),
        (".pgpass", "", "", "DS106"),
        (".pypirc.orig", "", "", "DS106"),
        ("npmrc", "", "_auth = dXNlcjpwYXNz", "DS106"),
        ("npmrc", "", "save-exact=true", None),
        ("id_ed25519~", "", OPENSSH_KEY, "DS103"),
        ("readme.bak", "", "notes", None),  # a copy of nothing secret (its text is scanned)
    ],
)
def test_secret_kind(
    tmp_path: Path, name: str, parent: str, content: str, code: str | None
) -> None:
    path = tmp_path / "file"
    path.write_text(content)
    found = secret_kind(name, parent, str(path))
    assert (found[0] if found else None) == code


# ------------------------------------------------- issue 15: secrets in a real folder


ISSUE_SITE: Tree = {
    "index.html": page('<a href="config.env">config</a> <a href="settings.ini">settings</a>\n'
                       '<a href="app.env.local">local</a> <a href="LICENSE">license</a>'),
    "LICENSE": "MIT",
    "config.env": "DB_PASSWORD=hunter2hunter2\n",
    "app.env.local": f"GITHUB_TOKEN={GITHUB}\n",
    "settings.ini": "[db]\nuser = app\npassword = s3cret-pw\n",
    "backup/settings.ini.bak": "[db]\npassword = older-pw-1\n",
    "notes.txt": f"todo\n\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n",
    "js/maps.js": f'const key = "{GOOGLE}";\n',
    "docs/aws.md": "Key ids look like AKIAIOSFODNN7EXAMPLE.\n",
    ".npmrc": "//registry.npmjs.org/:_authToken=npm_abc\n",
    "cgi-bin/run.sh": File(f"#!/bin/sh\nTOKEN={GITHUB}\n", 0o755),
}  # fmt: skip


def test_secrets_in_a_served_folder_end_to_end(tmp_path: Path) -> None:
    build(tmp_path, ISSUE_SITE)
    found = [(f.code, f.path, f.line, f.message) for f in run_check(tmp_path, **CGI).findings]
    assert found == [
        ("DS101", "app.env.local", None, "environment file served with the default options"),
        ("DS108", "backup/settings.ini.bak", 2,
         "password (password = …) served with the default options"),
        ("DS101", "config.env", None, "environment file served with the default options"),
        ("DS107", "notes.txt", 3,
         "AWS access key id AKIA…ASDF (and 1 more) served with the default options"),
        ("DS108", "settings.ini", 3, "password (password = …) served with the default options"),
        ("DS109", "js/maps.js", 1, "Google API key AIza…eF3h served with the default options"),
        # The link to LICENSE is advice to rename it; the links to secrets get none.
        ("DS407", "index.html", 10, "LICENSE is served as application/octet-stream: "
                                    "browsers download it"),
    ]  # fmt: skip
    shown = [(f.code, f.path) for f in run_check(tmp_path, show_hidden=True, **CGI).findings]
    assert ("DS106", ".npmrc") in shown


@pytest.mark.parametrize("output_format", ["pretty", "json", "github"])
def test_no_output_format_shows_a_secret(tmp_path: Path, output_format: str) -> None:
    build(tmp_path, ISSUE_SITE)
    result = subprocess.run(
        [sys.executable, "-m", "devserve", "check", str(tmp_path), "--format", output_format],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # errors found
    text = result.stdout + result.stderr
    if output_format == "json":
        text = json.dumps(json.loads(result.stdout), ensure_ascii=False) + result.stderr
    assert "AKIA…ASDF" in text
    for secret in (GITHUB, AWS_ID, AWS_SECRET, GOOGLE, "hunter2hunter2", "s3cret-pw", "older-pw"):
        assert secret not in text
