"""Why a certificate and key cannot serve HTTPS, in words a user can act on.

OpenSSL's own errors (``[SSL] PEM lib (_ssl.c:3926)``) name neither the file nor
the cause. `tls_problem` loads the pair as the server will and, when that fails,
looks at the files to say which of the usual mistakes it is: the key missing,
the two files swapped, an encrypted key without a password, a wrong password,
a key that belongs to another certificate, or a file that is not PEM at all.
"""

from __future__ import annotations

import re
from pathlib import Path

_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_PEM_KEY_MARK = "PRIVATE KEY-----"
_ENCRYPTED_MARKS = ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED")


def _text(path: Path) -> str:
    return path.read_bytes()[: 1024 * 1024].decode("ascii", "replace")


def tls_problem(cert: Path, key: Path | None, password: str) -> str | None:
    """What is wrong with serving HTTPS from ``cert`` and ``key`` (None: nothing).

    The files must be readable (the caller checks); ``password`` is the key's
    password ("" when none was given).
    """
    try:
        import ssl
    except ImportError:
        return None  # the server says so itself: HTTPS needs the ssl module

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key) if key is not None else None, password)
    except ssl.SSLError as error:
        return _explain(cert, key, password, error)
    except OSError as error:
        return f"cannot load {cert}: {error.strerror or error}"
    return None


def _explain(cert: Path, key: Path | None, password: str, error: Exception) -> str:
    cert_text = _text(cert)
    key_path = key if key is not None else cert
    key_text = _text(key_path)
    reason = str(getattr(error, "reason", "") or error)
    if _PEM_CERT not in cert_text:
        if _PEM_KEY_MARK in cert_text and key is not None and _PEM_CERT in key_text:
            return "--tls-cert and --tls-key are swapped: the certificate file holds a key"
        if _PEM_KEY_MARK in cert_text:
            return f"{cert} holds a private key, not a certificate"
        return f"{cert} is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
    if _PEM_KEY_MARK not in key_text:
        if key is None:
            return f"no private key: {cert} holds only the certificate; pass the key with --tls-key"
        return f"{key} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)"
    mismatch = "KEY_VALUES_MISMATCH" in reason.upper() or "key values mismatch" in str(error)
    if any(mark in key_text for mark in _ENCRYPTED_MARKS) and not mismatch:
        if not password:
            return f"the key in {key_path} is encrypted: give its password with --tls-password-file"
        return f"wrong password for the key in {key_path} (from --tls-password-file)"
    if mismatch:
        return f"the key in {key_path} does not belong to the certificate in {cert}"
    detail = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(error))
    return f"cannot use {cert} with the key in {key_path}: {detail}"
