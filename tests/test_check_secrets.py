"""devserve.check.secrets: the detector of keys, tokens and passwords, as tables.

Every token here is made up and assembled at run time (prefix + body), so that
this file holds nothing a secret scanner would take for a real key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devserve.check.exposure import FileHead, file_secrets
from devserve.check.secrets import (
    FORMATS,
    SCAN_LIMIT,
    Format,
    find_secrets,
    is_placeholder,
    mask,
    scan_text,
    scannable,
)


def fake(prefix: str, body: str) -> str:
    """A made-up token: ``prefix`` (split here so no source line holds a token) + ``body``."""
    return prefix + body


AWS_ID = fake("AK" + "IA", "Z7QWERTYUIOPASDF")
AWS_TEMP_ID = fake("AS" + "IA", "Z7QWERTYUIOPQRST")
AWS_SECRET = fake("", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8r2t9KEY")  # 40 characters
GITHUB = fake("gh" + "p_", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6")  # 36 after the prefix
GITHUB_APP = fake("gh" + "s_", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6")
GITHUB_FINE = fake("github" + "_pat_", "11ABCDEFG0" + "aB3dE6gH9jK2_" + "x7Y" * 19 + "Qr")
GITLAB = fake("gl" + "pat-", "xY9zA8bC7dE6fG5hI4jK")
SLACK = fake("xo" + "xb-", "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")
STRIPE = fake("sk" + "_live_", "4eC39HqLyjWDarjtT1zdp7dcQ9")
GOOGLE = fake("AI" + "za", "SyD3bE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3h")  # 35 after the prefix
PEM_BODY = "MIIEowIBAAKCAQEAx4rV2Xh0Gd5qzZ8lWb3nP7tY1uR6eQ9sK2mJ4hG8fD0cB5aL"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"

assert len(GITHUB_FINE) == len("github_pat_") + 82
assert len(GOOGLE) == 39


@pytest.mark.parametrize(
    ("text", "code", "what"),
    [
        (f"aws_access_key_id = {AWS_ID}", "DS107", "AWS access key id AKIA…ASDF"),
        (f"key: {AWS_TEMP_ID}", "DS107", "AWS access key id ASIA…QRST"),
        (f"aws_secret_access_key = {AWS_SECRET}", "DS107", "AWS secret access key …9KEY"),
        (f'AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', "DS107", "AWS secret access key …9KEY"),
        (f"aws_secret_key: {AWS_SECRET}", "DS107", "AWS secret access key …9KEY"),
        (f"AWS_SECRET_KEY={AWS_SECRET}", "DS107", "AWS secret access key …9KEY"),
        (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', "DS107", "AWS secret access key …9KEY"),
        (f"new S3({{secretAccessKey: '{AWS_SECRET}'}})", "DS107", "AWS secret access key …9KEY"),
        (f"token={GITHUB}&x=1", "DS107", "GitHub token ghp_…3hJ6"),
        (f"Authorization: Bearer {GITHUB_APP}", "DS107", "GitHub token ghs_…3hJ6"),
        (f"GH_TOKEN={GITHUB_FINE}", "DS107", "GitHub token github_pat_…7YQr"),
        (f"private-token: {GITLAB}", "DS107", "GitLab token glpat-…I4jK"),
        (f'slack("{SLACK}")', "DS107", "Slack token xoxb-…UvWx"),
        (f"Stripe('{STRIPE}')", "DS107", "Stripe live secret key sk_live_…dcQ9"),
        (f"rk{STRIPE[2:]}", "DS107", "Stripe live secret key rk_live_…dcQ9"),
        (f'apiKey: "{GOOGLE}",', "DS109", "Google API key AIza…eF3h"),
        (PEM, "DS103", "private key (-----BEGIN RSA PRIVATE KEY-----)"),
        (PEM.replace("RSA ", ""), "DS103", "private key (-----BEGIN PRIVATE KEY-----)"),
        (PEM.replace("RSA", "OPENSSH"), "DS103",
         "private key (-----BEGIN OPENSSH PRIVATE KEY-----)"),
        ('{"key": "-----BEGIN EC PRIVATE KEY-----\\n' + PEM_BODY + '\\n"}', "DS103",
         "private key (-----BEGIN EC PRIVATE KEY-----)"),  # \n-escaped, as in JSON
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n" + PEM_BODY, "DS103",
         "private key (-----BEGIN PGP PRIVATE KEY BLOCK-----)"),
    ],
)  # fmt: skip
def test_tokens_are_found_and_masked(text: str, code: str, what: str) -> None:
    data = f"first line\n\n{text}\nlast line\n".encode()
    (secret,) = find_secrets(data, config_like=False)
    assert (secret.code, secret.what, secret.line) == (code, what, 3)


@pytest.mark.parametrize(
    "text",
    [
        "AKIA keys start with AKIA; temporary ones with ASIA.",  # the prefix in prose
        "AKIAIOSFODNN7EXAMPLE",  # AWS's documentation example
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # its secret
        fake("AK" + "IA", "XXXXXXXXXXXXXXXX"),  # a placeholder
        fake("AK" + "IA", "Z7QWERTYUIOPASD"),  # one character short
        fake("AK" + "IA", "Z7QWERTYUIOPASDFG"),  # one too many: another kind of string
        fake("xAK" + "IA", "Z7QWERTYUIOPASDF"),  # inside a longer word
        fake("AK" + "IA", "z7qwertyuiopasdf"),  # lower case: not base32
        "aws_secret_access_key = " + AWS_SECRET[:39],  # too short
        "aws_secret_access_key = " + AWS_SECRET + "x",  # too long
        "my_secret_key = " + AWS_SECRET,  # not named as AWS's
        "SECRET_KEY = " + AWS_SECRET,
        fake("gh" + "p_", "short"),
        fake("gh" + "p_", "x" * 36),
        fake("gh" + "x_", GITHUB[4:]),  # no such GitHub prefix
        fake("my" + "ghp_", GITHUB[4:]),
        fake("gl" + "pat-", "tooShort"),
        "xoxb-your-token-here",  # Slack's placeholder: no workspace number
        fake("sk" + "_test_", STRIPE[8:]),  # a test key, not a live one
        fake("pk" + "_live_", STRIPE[8:]),  # a publishable key is public
        fake("AI" + "za", "SyD3bE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3"),  # 34 characters
        "-----BEGIN PRIVATE KEY----- starts a PKCS #8 key; see RFC 5208.",  # no body
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----\n" + PEM_BODY,
        "-----BEGIN PUBLIC KEY-----\n" + PEM_BODY,
        '<input type="password" name="password">',
        "password = hunter2hunter2",  # outside config files, passwords are not looked for
    ],
)
def test_near_misses_are_not_secrets(text: str) -> None:
    assert find_secrets(f"{text}\n".encode(), config_like=False) == []


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("password = hunter2hunter2", "password", "hunter2hunter2"),
        ("DB_PASSWORD=s3cr3t-Pa55", "DB_PASSWORD", "s3cr3t-Pa55"),
        ("export API_TOKEN='a1b2c3d4e5'", "API_TOKEN", "a1b2c3d4e5"),
        ("db.password: tiger-Lily-42", "db.password", "tiger-Lily-42"),
        ('  "secret": "correct horse battery staple",', "secret", "correct horse"),
        ("define('DB_PASSWORD', 'wp-s3cret!');", "DB_PASSWORD", "wp-s3cret!"),
        ("client_secret = 8f4a9c2e", "client_secret", "8f4a9c2e"),
        ("secret_key=Zm9vYmFyYmF6", "secret_key", "Zm9vYmFyYmF6"),
        ("pass=letmein99", "pass", "letmein99"),
        ("mysql_pass = x7!k", "mysql_pass", "x7!k"),
        ("password => 'perl-style-pw'", "password", "perl-style-pw"),
    ],
)
def test_passwords_in_config_files(text: str, key: str, value: str) -> None:
    (secret,) = find_secrets(f"[section]\n{text}\n".encode(), config_like=True)
    assert (secret.code, secret.what, secret.line) == ("DS108", f"password ({key} = …)", 2)
    assert value not in secret.what


@pytest.mark.parametrize(
    "text",
    [
        "password =",
        'password = ""',
        "password = ${DB_PASSWORD}",
        "password = $DB_PASSWORD",
        "password = %(db_password)s",
        "password = {{ vault.db }}",
        "password: <your password>",
        "password = ********",
        "password = xxxx",
        "password = your-password",
        "password = example123",
        "password = placeholder",
        "secret = false",
        "token = null",
        "bypass = cache-only",  # a word that ends in "pass"
        "password_min_length = 12",  # the key only starts with "password"
        "passwordless = enabled",
        "max_tokens = 4096",
        "; password is read from the environment",
    ],
)
def test_password_near_misses(text: str) -> None:
    assert find_secrets(f"{text}\n".encode(), config_like=True) == []


def test_an_aws_secret_in_a_config_file_is_reported_once() -> None:
    data = f"[default]\naws_secret_access_key = {AWS_SECRET}\npassword = pw-12345\n".encode()
    assert [(s.code, s.line) for s in find_secrets(data, config_like=True)] == [
        ("DS107", 2),
        ("DS108", 3),
    ]


def test_every_secret_is_found_in_order_with_its_line() -> None:
    data = f"{GITHUB}\n\n{AWS_ID} {GOOGLE}\r\n{PEM}".encode()
    assert [(s.code, s.line) for s in find_secrets(data, config_like=False)] == [
        ("DS107", 1),
        ("DS107", 3),
        ("DS109", 3),
        ("DS103", 4),
    ]


@pytest.mark.parametrize(
    ("token", "shown", "masked"),
    [
        ("AKIAZ7QWERTYUIOPASDF", 4, "AKIA…ASDF"),
        ("ghp_" + "a" * 15, 4, "ghp_…"),  # too short to show its end
        ("0123456789abcdefWXYZ", 0, "…WXYZ"),
    ],
)
def test_mask(token: str, shown: int, masked: str) -> None:
    assert mask(token, shown) == masked


def test_a_secret_is_never_shown_whole() -> None:
    tokens = [AWS_ID, GITHUB, GITHUB_FINE, GITLAB, SLACK, STRIPE, GOOGLE]
    data = "\n".join([f"aws_secret_access_key = {AWS_SECRET}", *tokens, PEM]).encode()
    found = find_secrets(data, config_like=True)
    assert len(found) == len(tokens) + 2
    for secret in found:
        for token in [*tokens, AWS_SECRET, PEM_BODY]:
            assert token not in secret.what
            assert token[4:12] not in secret.what  # nor a piece of its middle


def test_placeholders() -> None:
    assert is_placeholder(b"AKIAIOSFODNN7EXAMPLE")
    assert is_placeholder(b"sk_live_ExampleKeyForTheDocs12345")
    assert is_placeholder(b"ghp_00000000aB3dE6gH9jK2mN5pQ8sT1vW4")
    assert not is_placeholder(AWS_ID.encode())
    assert not is_placeholder(b"ghp_0000000aB3dE6gH9jK2mN5pQ8sT1vW4y")  # seven in a row


@pytest.mark.parametrize("form", FORMATS, ids=lambda form: form.label)
def test_every_pattern_starts_with_a_literal(form: Format) -> None:
    """What keeps the scan fast: re searches a literal prefix, and tries anything else
    (a group, a class, a look-behind) at every position."""
    assert re.match(rb"[A-Za-z-]", form.pattern.pattern), form.pattern.pattern


# ------------------------------------------------------------------ reading a real file


def test_only_the_first_256_kib_of_a_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * SCAN_LIMIT + "\n" + GITHUB + "\n")
    assert file_secrets(FileHead(str(path)), "text/plain", [("big.txt", "")]) == []
    path.write_text("x" * (SCAN_LIMIT - 100) + "\n" + GITHUB + "\n")
    assert file_secrets(FileHead(str(path)), "text/plain", [("big.txt", "")]) == [
        ("DS107", "GitHub token ghp_…3hJ6", 2)
    ]
    assert file_secrets(FileHead(str(path)), "image/png", [("big.txt", "")]) == []  # not text


def test_binary_files_are_not_scanned() -> None:
    assert scan_text(b"\x00\x01binary" + GITHUB.encode(), "blob", False) == []
    # vim keeps a swap file's lines NUL-separated
    swap = b"b0VIM 9.0\x00\x00\x00password=Zx81-spectrum\x00other\x00"
    assert [s.code for s in scan_text(swap, ".settings.ini.swp", True)] == ["DS108"]


@pytest.mark.parametrize(
    ("content_type", "scanned"),
    [("text/html", True), ("text/javascript", True), ("application/json", True),
     ("application/octet-stream", True), ("image/svg+xml", True), ("image/png", False),
     ("font/woff2", False), ("video/mp4", False), ("application/zip", False),
     ("application/wasm", False), ("text/plain; charset=utf-8", True)],
)  # fmt: skip
def test_scannable(content_type: str, scanned: bool) -> None:
    assert scannable(content_type) == scanned
