"""APIs only secure contexts have, in pages and scripts served over plain HTTP to other machines.

Browsers give service workers, the async clipboard, camera and microphone,
``crypto.subtle``, WebAuthn, geolocation, Web Bluetooth/USB/Serial/HID and more
only to secure contexts: a page loaded over HTTPS, or from the machine itself
(``http://localhost`` and ``http://127.0.0.1`` count as secure). With ``--lan``
(or a ``--bind`` address other machines reach) and no TLS, a phone loads the
page over ``http://192.168.x.y`` and those APIs are missing (``undefined``) or
refuse. `SecureContextChecker` reports each such API once per page or script
(DS901), at its first line.

Invariants:
- The search is textual (comments and strings included), over a page's decoded
  text and the first `SCRIPT_LIMIT` bytes of each served script; nothing runs.
- Nothing is reported unless the configuration serves plain HTTP to other
  machines (`plain_http_to_others`).
"""

from __future__ import annotations

import re

from devserve._net import reaches_other_machines
from devserve.check.report import CheckConfig, Findings

# How much of a served script is searched (bundles are large; pages are read whole).
SCRIPT_LIMIT = 4 * 1024 * 1024

# (what the user reads, the pattern that finds a use), in the order they are reported.
SECURE_APIS: tuple[tuple[str, str], ...] = (
    (
        "service workers (navigator.serviceWorker)",
        r"\bnavigator\s*\.\s*serviceWorker\b|[\"']serviceWorker[\"']\s+in\s+navigator\b",
    ),
    ("the async clipboard (navigator.clipboard)", r"\bnavigator\s*\.\s*clipboard\b"),
    (
        "camera, microphone and screen capture (navigator.mediaDevices)",
        r"\bmediaDevices\b|\bgetUserMedia\b|\bgetDisplayMedia\b",
    ),
    ("Web Crypto (crypto.subtle)", r"\bcrypto\s*\.\s*subtle\b"),
    (
        "WebAuthn and stored credentials (navigator.credentials)",
        r"\bnavigator\s*\.\s*credentials\b|\bPublicKeyCredential\b",
    ),
    ("geolocation (navigator.geolocation)", r"\bnavigator\s*\.\s*geolocation\b"),
    ("Web Bluetooth (navigator.bluetooth)", r"\bnavigator\s*\.\s*bluetooth\b"),
    ("WebUSB (navigator.usb)", r"\bnavigator\s*\.\s*usb\b"),
    ("Web Serial (navigator.serial)", r"\bnavigator\s*\.\s*serial\b"),
    ("WebHID (navigator.hid)", r"\bnavigator\s*\.\s*hid\b"),
    ("Web MIDI (requestMIDIAccess)", r"\brequestMIDIAccess\b"),
    ("WebXR (navigator.xr)", r"\bnavigator\s*\.\s*xr\b"),
    ("Web Share (navigator.share)", r"\bnavigator\s*\.\s*(?:share|canShare)\b"),
    ("the screen wake lock (navigator.wakeLock)", r"\bnavigator\s*\.\s*wakeLock\b"),
    ("the storage manager (navigator.storage)", r"\bnavigator\s*\.\s*storage\b"),
    (
        "notifications (Notification.requestPermission)",
        r"\bNotification\s*\.\s*requestPermission\b",
    ),
    ("push messages (PushManager)", r"\bpushManager\b|\bPushManager\b"),
    ("the Cache API (caches)", r"\bcaches\s*\.\s*(?:open|match|has|keys|delete)\b"),
    (
        "file system access (showOpenFilePicker)",
        r"\bshow(?:OpenFile|SaveFile|Directory)Picker\b",
    ),
    ("payments (PaymentRequest)", r"\bnew\s+PaymentRequest\b"),
)
_FIND = re.compile(
    "|".join(f"(?P<api{index}>{pattern})" for index, (_, pattern) in enumerate(SECURE_APIS))
)


def secure_api_uses(text: str) -> list[tuple[int, str]]:
    """(line, API) for the first use of each secure-context API in ``text``, in text order."""
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    line, last = 1, 0
    for match in _FIND.finditer(text):
        group = match.lastgroup
        if group is None or group in seen:
            continue
        seen.add(group)
        line += text.count("\n", last, match.start())
        last = match.start()
        found.append((line, SECURE_APIS[int(group[3:])][0]))
        if len(seen) == len(SECURE_APIS):
            break
    return found


def plain_http_to_others(config: CheckConfig) -> str | None:
    """The flag that serves plain HTTP to other machines (``--lan``, ``--bind X``), or None."""
    if config.tls_auto or config.tls_cert is not None:
        return None
    if not reaches_other_machines(config.lan, config.bind):
        return None
    return "--lan" if config.lan else f"--bind {config.bind}"


class SecureContextChecker:
    """Reports DS901 for the texts it is given; ``how`` is the flag that exposes them."""

    def __init__(self, findings: Findings, how: str) -> None:
        self.add = findings.add
        self.how = how

    def check(self, rel: str, text: str) -> None:
        """One page's or script's text, ``rel`` for the findings."""
        for line, api in secure_api_uses(text):
            self.add(
                "DS901",
                rel,
                f"{api} needs a secure context: with {self.how} and no TLS, other machines "
                "load this over http:// and do not have it",
                line,
            )
