"""--tls auto: the certificate devserve makes, keeps, makes again, and serves with.

Certificates are made in a temporary data folder (``DEVSERVE_DATA_DIR`` or the
``folder`` argument) and read back with cryptography and with openssl.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import importlib.util
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devserve import _tls_auto, serving
from devserve._auth import User
from devserve._tls_auto import (
    DATA_VARIABLE,
    INSTALL_HINT,
    RENEW_BEFORE,
    VALIDITY_DAYS,
    AutoCertificate,
    auto_certificate,
    data_dir,
    names_needed,
)
from devserve.config import ServeConfig, ServeError
from tests.support import (
    both_paths,
    devserve_env,
    devserve_process,
    port_of,
    raw_exchange,
    run_main,
    running_devserve,
    status_of,
    stop_and_read,
)

LOCAL = ("localhost", "127.0.0.1", "::1")
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv(DATA_VARIABLE, str(folder))
    return folder


def certificate_of(made: AutoCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(made.cert.read_bytes())


def alt_names(cert: x509.Certificate) -> set[str]:
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*alt.get_values_for_type(x509.DNSName)} | {
        str(a) for a in alt.get_values_for_type(x509.IPAddress)
    }


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("lan", "bind", "expected"),
    [
        (False, None, LOCAL),
        (False, "127.0.0.1", LOCAL),
        (False, "127.0.0.2", ("localhost", "127.0.0.1", "127.0.0.2", "::1")),
        (False, "::1", LOCAL),
        (False, "0:0::1", LOCAL),
        (False, "Dev.Example", ("dev.example", "localhost", "127.0.0.1", "::1")),
        (False, "bad_name!", LOCAL),
        (
            True,
            None,
            ("devbox", "devbox.local", "localhost", "127.0.0.1", "192.168.1.5", "::1", "fd00::5"),
        ),
        (
            False,
            "0.0.0.0",
            ("devbox", "devbox.local", "localhost", "127.0.0.1", "192.168.1.5", "::1", "fd00::5"),
        ),
    ],
)
def test_names_needed(
    monkeypatch: pytest.MonkeyPatch, lan: bool, bind: str | None, expected: tuple[str, ...]
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "devbox")
    monkeypatch.setattr(_tls_auto, "lan_addresses", lambda: ["192.168.1.5", "fd00::5"])
    assert names_needed(lan, bind) == expected


def test_a_dotted_host_name_gets_no_local_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "devbox.corp.example")
    monkeypatch.setattr(_tls_auto, "lan_addresses", lambda: [])
    assert names_needed(True, None) == ("devbox.corp.example", *LOCAL)


def test_the_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_VARIABLE, str(tmp_path / "here"))
    assert data_dir() == tmp_path / "here"
    monkeypatch.delenv(DATA_VARIABLE)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "devserve"


# ---------------------------------------------------------------------------- made


def test_a_new_certificate(tmp_path: Path) -> None:
    made = auto_certificate(LOCAL, tmp_path, NOW)
    assert made.made
    assert made.names == LOCAL
    assert (made.cert, made.key) == (tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.cert.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    cert = certificate_of(made)
    assert alt_names(cert) == set(LOCAL)
    assert cert.not_valid_before_utc <= NOW
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=VALIDITY_DAYS)
    assert cert.issuer == cert.subject  # self-signed
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca  # vouches for its names only, never for other sites
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    key = serialization.load_pem_private_key(made.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert.verify_directly_issued_by(cert)


def test_openssl_reads_the_same_names_and_fingerprint(tmp_path: Path) -> None:
    made = auto_certificate(("devbox", *LOCAL, "192.168.1.5"), tmp_path)
    text = subprocess.run(
        ["openssl", "x509", "-in", str(made.cert), "-noout", "-text", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert (
        "DNS:devbox, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, "
        "IP Address:192.168.1.5"
    ) in text
    assert f"sha256 Fingerprint={made.fingerprint}" in text
    assert "CA:FALSE" in text
    check = subprocess.run(
        ["openssl", "x509", "-in", str(made.cert), "-noout", "-checkend", str(390 * 86400)],
        capture_output=True,
        timeout=30,
    )
    assert check.returncode == 0  # still valid in 390 days


def test_kept_and_used_again(tmp_path: Path) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    before = (first.cert.stat().st_mtime_ns, first.key.stat().st_mtime_ns)
    again = auto_certificate(LOCAL, tmp_path, NOW + datetime.timedelta(days=30))
    assert not again.made
    assert again.fingerprint == first.fingerprint
    assert (again.cert.stat().st_mtime_ns, again.key.stat().st_mtime_ns) == before
    fewer = auto_certificate(("localhost",), tmp_path, NOW)  # a subset: still covered
    assert not fewer.made
    assert fewer.fingerprint == first.fingerprint


def test_made_again_when_the_names_change(tmp_path: Path) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    more = (*LOCAL, "192.168.1.5")
    second = auto_certificate(more, tmp_path, NOW)
    assert second.made
    assert second.fingerprint != first.fingerprint
    assert alt_names(certificate_of(second)) == set(more)
    assert not auto_certificate(more, tmp_path, NOW).made


def test_made_again_near_its_end(tmp_path: Path) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    end = certificate_of(first).not_valid_after_utc
    assert not auto_certificate(LOCAL, tmp_path, end - RENEW_BEFORE - datetime.timedelta(1)).made
    late = auto_certificate(LOCAL, tmp_path, end - RENEW_BEFORE + datetime.timedelta(hours=1))
    assert late.made
    assert late.fingerprint != first.fingerprint


def test_made_again_before_it_is_valid(tmp_path: Path) -> None:
    auto_certificate(LOCAL, tmp_path, NOW)
    assert auto_certificate(LOCAL, tmp_path, NOW - datetime.timedelta(days=2)).made


def test_a_key_others_could_read_is_never_used_again(tmp_path: Path) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    first.key.chmod(0o644)
    second = auto_certificate(LOCAL, tmp_path, NOW)
    assert second.made
    assert second.fingerprint != first.fingerprint
    assert stat.S_IMODE(second.key.stat().st_mode) == 0o600


@pytest.mark.parametrize("broken", ["other key", "bad cert", "no key", "bad key"])
def test_a_broken_pair_is_replaced(tmp_path: Path, broken: str) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    if broken == "other key":
        other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        first.key.write_bytes(other)
    elif broken == "bad cert":
        first.cert.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n")
    elif broken == "no key":
        first.key.unlink()
    else:
        first.key.write_text("not a key")
    second = auto_certificate(LOCAL, tmp_path, NOW)
    assert second.made
    key = serialization.load_pem_private_key(second.key.read_bytes(), password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert key.public_key().public_bytes(der, public) == certificate_of(
        second
    ).public_key().public_bytes(der, public)


def test_two_starts_at_once_make_one_certificate(tmp_path: Path) -> None:
    results: list[AutoCertificate] = []
    threads = [
        threading.Thread(target=lambda: results.append(auto_certificate(LOCAL, tmp_path, NOW)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 4
    assert sum(made.made for made in results) == 1
    assert len({made.fingerprint for made in results}) == 1


def test_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "tls").write_text("a file, not a folder")
    with pytest.raises(ServeError, match=r"--tls auto: cannot keep a certificate in .*/tls"):
        auto_certificate(LOCAL, tmp_path)


def test_without_cryptography_the_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def missing(name: str, package: str | None = None) -> object:
        return None if name == "cryptography" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ServeError) as caught:
        auto_certificate(LOCAL, tmp_path)
    assert str(caught.value) == INSTALL_HINT
    monkeypatch.setenv(DATA_VARIABLE, str(tmp_path))
    status, output = run_main(["serve", str(tmp_path), "-p", "0", "--tls", "auto"])
    assert (status, output) == (
        1,
        f"devserve: error: {INSTALL_HINT}\n",
    )


def test_start_up_never_imports_cryptography() -> None:
    code = (
        "import sys, devserve.cli, devserve.serving; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cryptography', 'platformdirs', 'devserve') and "
        "m in ('cryptography', 'platformdirs', 'devserve._tls_auto')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=devserve_env(), capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


# ---------------------------------------------------------------------------- served


def _context(made: AutoCertificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(made.cert))  # trust it, and only it


def test_served_with_it_and_verified_by_name(data: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text("hello")
    config = ServeConfig(directory=site, tls_auto=True, auth=(User("u", "p"),), quiet=True)
    with running_devserve(config) as (server, _, _):
        assert isinstance(server, serving.DevTLSServer)
        made = server.certificate
        assert made is not None
        assert made.cert.is_relative_to(data)
        info = serving.ready_info(config, server, None)
        assert info.urls[0].startswith("https://127.0.0.1:")
        assert (info.certificate, info.fingerprint) == (str(made.cert), made.fingerprint)
        assert info.certificate_made
        assert "tls auto" in info.options
        port = port_of(server)
        for host in ("localhost", "127.0.0.1"):
            connection = http.client.HTTPSConnection(host, port, context=_context(made), timeout=10)
            connection.request("GET", "/a.txt", headers={"Authorization": "Basic dTpw"})
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"hello")
            connection.close()
        strict = ssl.create_default_context()  # the system's CAs: it is not one of theirs
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=strict, timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.request("GET", "/a.txt")
        connection.close()
    with running_devserve(config) as (server, _, _):
        assert isinstance(server, serving.DevTLSServer)
        assert server.certificate is not None
        assert not server.certificate.made
        assert server.certificate.fingerprint == made.fingerprint


def test_the_banner_says_where_and_what(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    env = {DATA_VARIABLE: str(tmp_path / "data")}
    texts = []
    for _ in range(2):
        with devserve_process("serve", str(site), "-p", "0", "--tls", "auto", env=env) as (
            process,
            url,
        ):
            assert url.startswith("https://127.0.0.1:")
            texts.append(stop_and_read(process))
    cert = tmp_path / "data" / "tls" / "cert.pem"
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    fingerprint = loaded.fingerprint(hashes.SHA256()).hex(":").upper()
    assert f"TLS:     self-signed certificate (made now): {cert}" in texts[0]
    assert f"TLS:     self-signed certificate (kept from an earlier run): {cert}" in texts[1]
    for text in texts:
        assert f"SHA-256: {fingerprint}" in text
        assert "Options: tls auto" in text


def test_key_file_never_world_readable_under_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        made = auto_certificate(LOCAL, tmp_path, NOW)
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.cert.stat().st_mode) == 0o644


def test_on_windows_the_mode_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = auto_certificate(LOCAL, tmp_path, NOW)
    first.key.chmod(0o644)  # what Windows' st_mode always says, whatever the file's ACL
    monkeypatch.setattr(_tls_auto, "_MODE_TELLS_READERS", False)
    again = auto_certificate(LOCAL, tmp_path, NOW)
    assert not again.made
    assert again.fingerprint == first.fingerprint


def test_the_pair_is_loaded_while_the_folder_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holding = [False]
    loaded_holding: list[bool] = []
    real_locked, real_loaded = _tls_auto._locked, _tls_auto._loaded

    @contextlib.contextmanager
    def locked(where: Path) -> Iterator[None]:
        with real_locked(where):
            holding[0] = True
            try:
                yield
            finally:
                holding[0] = False

    def loaded(cert: Path, key: Path) -> ssl.SSLContext:
        loaded_holding.append(holding[0])
        return real_loaded(cert, key)

    monkeypatch.setattr(_tls_auto, "_locked", locked)
    monkeypatch.setattr(_tls_auto, "_loaded", loaded)
    assert auto_certificate(LOCAL, tmp_path, NOW).made
    assert not auto_certificate(LOCAL, tmp_path, NOW).made
    assert loaded_holding == [True, True]


def _served_fingerprint(context: ssl.SSLContext, trusted: Path) -> str:
    """The fingerprint of the certificate a TLS server with ``context`` presents."""
    server_end, client_end = socket.socketpair()
    client_context = ssl.create_default_context(cafile=str(trusted))
    with (
        context.wrap_socket(server_end, server_side=True, do_handshake_on_connect=False) as server,
        client_context.wrap_socket(
            client_end, server_hostname="localhost", do_handshake_on_connect=False
        ) as client,
    ):
        handshake = threading.Thread(target=server.do_handshake)
        handshake.start()
        client.do_handshake()
        handshake.join(10)
        der = client.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":").upper()


def test_the_context_keeps_its_pair_when_another_run_replaces_the_files(tmp_path: Path) -> None:
    first = auto_certificate(LOCAL, tmp_path)  # valid now: a client checks it
    trusted = tmp_path / "first.pem"
    trusted.write_bytes(first.cert.read_bytes())
    other = auto_certificate((*LOCAL, "devbox"), tmp_path)  # a --lan run, say
    assert other.made
    assert other.fingerprint != first.fingerprint
    assert _served_fingerprint(first.context, trusted) == first.fingerprint


def test_the_key_folder_is_never_served_from_a_root_that_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "home"
    data = site / "Library" / "Application Support" / "devserve"
    monkeypatch.setenv(DATA_VARIABLE, str(data))
    auto_certificate(LOCAL, None, NOW)
    (site / "notes.txt").write_text("notes")
    (site / "key-link.pem").symlink_to(data / "tls" / "key.pem")
    (site / "tls-link").symlink_to(data / "tls")
    folder = "/Library/Application%20Support/devserve"
    config = ServeConfig(directory=site, quiet=True)
    with both_paths(config) as (loop, threads, _):
        for port in (loop, threads):
            for target in (
                f"{folder}/tls/key.pem",
                f"{folder}/tls/cert.pem",
                f"{folder}/tls/lock",
                f"{folder}/tls/",
                f"{folder}/tls",
                f"{folder}/TLS/key.pem",  # a case-insensitive file system's other spelling
                f"{folder}/tls/key.pe",  # a 404 that suggests nothing in the folder
                "/key-link.pem",
                "/tls-link/key.pem",
                "/tls-link/",
            ):
                reply = raw_exchange(port, f"GET {target} HTTP/1.0\r\n\r\n".encode())
                assert status_of(reply) == 404, (target, reply[:200])
                assert b"PRIVATE KEY" not in reply
                assert b"key.pem" not in reply.partition(b"\r\n\r\n")[2] or target.endswith(
                    "key.pem"
                )
            listing = raw_exchange(port, f"GET {folder}/ HTTP/1.0\r\n\r\n".encode())
            assert status_of(listing) == 200
            assert b"tls" not in listing.partition(b"\r\n\r\n")[2].lower()
            root = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
            assert b"notes.txt" in root
            assert status_of(raw_exchange(port, b"GET /notes.txt HTTP/1.0\r\n\r\n")) == 200
