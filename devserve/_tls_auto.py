"""``--tls auto``: HTTPS with a certificate devserve makes itself and keeps for later runs.

One self-signed certificate (not a CA) for ``localhost``, ``127.0.0.1`` and ``::1``,
and with ``--lan`` the machine's LAN addresses and host name, kept in
``tls/`` under the user's data folder (``platformdirs.user_data_dir("devserve")``,
or ``$DEVSERVE_DATA_DIR``). A later run uses it again while it is valid for at
least `RENEW_BEFORE` and names everything that run needs; otherwise a new one
replaces it. Why not a CA and a leaf, as mkcert makes: a CA the user trusts can
vouch for any site, and its key would sit in this folder; a single certificate
vouches only for the names it lists.

`cryptography` is imported only here, and only for ``--tls auto``, so
start-up does not pay for it; a dependency of devserve, so it is missing only
from a broken install. Every start asks `key_folder` (platformdirs, a few
milliseconds) to keep the folder out of what is served.

Invariants:
- The key file is created 0600 (its folder 0700) and replaced whole
  (`os.replace`), never rewritten in place; a key readable by others, or one
  that does not belong to the certificate beside it, is never used again.
- Two devserve processes starting at once make one certificate: the folder is
  locked while it is looked at and written (where ``fcntl`` exists).
- The returned paths name a certificate that covers every requested name and
  stays valid for `RENEW_BEFORE` at least, and the returned ``context`` holds
  that certificate and its key, loaded while the folder was locked: another run
  replacing both files cannot pair one run's key with the other's certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devserve._net import lan_addresses
from devserve.config import ServeError

if TYPE_CHECKING:
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

# Where the certificate is kept instead of the user's data folder (tests, containers).
DATA_VARIABLE = "DEVSERVE_DATA_DIR"
# Days a new certificate is valid: under the 398 browsers accept for a server
# certificate (and macOS's 825 for one a user trusts).
VALIDITY_DAYS = 397
# A certificate this close to its end is replaced at start-up.
RENEW_BEFORE = datetime.timedelta(days=7)
# Whether a file's mode says who can read it. Not on Windows: there st_mode's
# permission bits are made up from the read-only attribute (0o666 or 0o444
# always, whatever os.chmod asked), so a kept key would always look readable by
# others and every run would make a new certificate; the folder under
# %LOCALAPPDATA% is the user's own already.
_MODE_TELLS_READERS = os.name != "nt"
INSTALL_HINT = (
    "--tls auto needs the cryptography and platformdirs packages, which this "
    "installation of devserve lacks: reinstall devserve (pip install cryptography platformdirs)"
)

_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", re.ASCII)


@dataclass(frozen=True)
class AutoCertificate:
    """The certificate ``--tls auto`` serves with: where it is, its fingerprint, and
    whether this run made it (False: an earlier run's, used again)."""

    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the certificate, as browsers show it (AB:CD:...)
    made: bool
    names: tuple[str, ...]  # what it covers: DNS names, then addresses
    # The server-side TLS context holding this certificate and its key (see module doc).
    context: ssl.SSLContext = field(repr=False, compare=False)


def names_needed(lan: bool, bind: str | None) -> tuple[str, ...]:
    """The names a certificate must cover to serve with ``--lan`` or ``--bind`` as given.

    Always ``localhost``, ``127.0.0.1`` and ``::1``; every interface (``--lan``, or
    binding ``0.0.0.0`` or ``::``) adds the LAN addresses, the host name and its
    ``.local`` name; another ``--bind`` address adds itself.
    """
    names = ["localhost", "127.0.0.1", "::1"]
    everywhere = lan or bind in ("0.0.0.0", "::")
    if everywhere:
        host = socket.gethostname()
        if _DNS_NAME.fullmatch(host):
            names.append(host)
            if "." not in host:
                names.append(f"{host}.local")
        names.extend(lan_addresses())
    elif bind is not None and bind not in names and _usable_name(bind):
        names.append(bind)
    unique = list(dict.fromkeys(_normal(name) for name in names))
    return tuple(sorted(unique, key=lambda n: (_is_address(n), ":" in n, n)))


def data_dir() -> Path:
    """The user's data folder for devserve (``$DEVSERVE_DATA_DIR`` when set)."""
    override = os.environ.get(DATA_VARIABLE)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("devserve", appauthor=False))


def key_folder(folder: Path | None = None) -> Path:
    """Where the key and certificate are kept: ``tls/`` in ``folder`` (default `data_dir`).

    ImportError without platformdirs (and no ``$DEVSERVE_DATA_DIR``). devserve never
    serves this folder, even when it lies in the served one (`devserve._site.Site`'s
    ``withheld``): the key of any run is in it.
    """
    return (folder if folder is not None else data_dir()) / "tls"


def auto_certificate(
    names: tuple[str, ...], folder: Path | None = None, now: datetime.datetime | None = None
) -> AutoCertificate:
    """The kept certificate if it still serves ``names``, else a new one put in its place.

    ``folder``: where ``tls/`` is (default `data_dir`). ServeError when
    cryptography is missing or the folder cannot be written.
    """
    if importlib.util.find_spec("cryptography") is None:
        raise ServeError(INSTALL_HINT)
    try:
        where = key_folder(folder)
    except ImportError:  # platformdirs, the extra's other package
        raise ServeError(INSTALL_HINT) from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(where):
            kept = _kept(where, names, now)
            if kept is not None:
                return kept
            return _make(where, names, now)
    except OSError as error:
        why = error.strerror or str(error)
        raise ServeError(f"--tls auto: cannot keep a certificate in {where}: {why}") from None


# ------------------------------------------------------------------ the kept certificate


def _kept(where: Path, names: tuple[str, ...], now: datetime.datetime) -> AutoCertificate | None:
    """The certificate in ``where`` if it may serve ``names`` from ``now`` on; None if not."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = where / "cert.pem", where / "key.pem"
    try:
        if _MODE_TELLS_READERS and key_path.stat().st_mode & 0o077:
            return None  # others could read it: it is no secret any more
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
        encoding, public
    ):
        return None
    if not (cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc):
        return None
    covered = _covered(cert)
    if not set(names) <= set(covered):
        return None
    try:
        context = _loaded(cert_path, key_path)
    except OSError:  # ssl.SSLError too: OpenSSL refuses what cryptography read
        return None
    return AutoCertificate(cert_path, key_path, fingerprint(cert), False, covered, context)


def _loaded(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The server's TLS context with this pair; called only while the folder is locked."""
    from devserve._servers import tls_context

    return tls_context(cert_path, key_path)


def _covered(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and addresses a certificate's subjectAltName lists."""
    from cryptography import x509

    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [_normal(name) for name in alt.get_values_for_type(x509.DNSName)]
    ips = [str(address) for address in alt.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


def fingerprint(cert: x509.Certificate) -> str:
    """A certificate's SHA-256 fingerprint as browsers show it: AB:CD:..."""
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _make(where: Path, names: tuple[str, ...], now: datetime.datetime) -> AutoCertificate:
    """Make a key and a self-signed certificate for ``names``; put both in ``where``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(key, names, now)
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _replace(key_path, key_pem, 0o600)
    _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    context = _loaded(cert_path, key_path)
    return AutoCertificate(cert_path, key_path, fingerprint(cert), True, names, context)


def _certificate(
    key: EllipticCurvePrivateKey, names: tuple[str, ...], now: datetime.datetime
) -> x509.Certificate:
    """A self-signed server certificate (not a CA) for ``names``, valid from an hour ago."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devserve"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"devserve {socket.gethostname()}"[:64]),
        ]
    )
    alt: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(name)) if _is_address(name) else x509.DNSName(name)
        for name in names
    ]
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file with ``mode``, then put it in ``path``'s place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)  # whatever the umask took away
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def _locked(where: Path) -> Iterator[None]:
    """Hold ``where``'s lock file (no lock where ``fcntl`` does not exist)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(where / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------ names


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _usable_name(name: str) -> bool:
    return _is_address(name) or _DNS_NAME.fullmatch(name) is not None


def _normal(name: str) -> str:
    """An address in its one written form (``::1``), a DNS name in lower case."""
    if _is_address(name):
        return str(ipaddress.ip_address(name))
    return name.lower()
