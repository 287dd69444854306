"""devserve.check.secure_context: APIs only secure contexts have, served over plain
HTTP to other machines (DS901)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.check import CheckConfig
from devserve.check.secure_context import SECURE_APIS, plain_http_to_others, secure_api_uses
from tests.check_support import (
    Case,
    assert_not_reported,
    assert_reported,
    case,
    case_id,
    page,
    run_check,
)
from tests.support import run_main

SW = "navigator.serviceWorker.register('/sw.js');\n"

REPORTED = [
    case("DS901", {"index.html": page(f"<script>\n{SW}</script>")}, "index.html:10", lan=True),
    case("DS901", {"js/app.js": "// app\n\nconst k = await crypto.subtle.digest('SHA-256', d);\n"},
         "js/app.js:3", lan=True),
    case("DS901", {"lib.mjs": "export const c = () => navigator.clipboard.writeText('x');"},
         "lib.mjs:1", bind="0.0.0.0"),
    case("DS901", {"cam.js": "navigator.mediaDevices.getUserMedia({video: true})"},
         bind="192.168.1.5"),
    case("DS901", {"login.html": page('<button onclick="navigator.credentials.get({})">')},
         "login.html:9", bind="devbox.local"),
]  # fmt: skip

NOT_REPORTED = [
    # on this machine, http://localhost is a secure context
    case("DS901", {"index.html": page(f"<script>{SW}</script>")}),
    case("DS901", {"index.html": page(f"<script>{SW}</script>")}, bind="127.0.0.1"),
    case("DS901", {"index.html": page(f"<script>{SW}</script>")}, bind="::1"),
    # HTTPS
    case("DS901", {"index.html": page(f"<script>{SW}</script>")}, lan=True, tls_auto=True),
    case("DS901", {"app.js": SW}, lan=True, tls_cert=Path("cert.pem")),
    # no such API, or not in a page or script
    case("DS901", {"index.html": page("<script>fetch('/api')</script>"), "app.js": "alert(1)"},
         lan=True),
    case("DS901", {"notes.txt": SW, "style.css": "/* navigator.clipboard */"}, lan=True),
    case("DS901", {"cgi-bin/run.js": f"#!/usr/bin/env node\n{SW}"}, lan=True,
         cgi_directories=("/cgi-bin",)),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_finding_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("if ('serviceWorker' in navigator) {}", [(1, "service workers")]),
        ("navigator . serviceWorker", [(1, "service workers")]),
        ("window.navigator.clipboard.readText()", [(1, "the async clipboard")]),
        ("x\ny\nnavigator.geolocation.getCurrentPosition(f)", [(3, "geolocation")]),
        ("navigator.bluetooth\nnavigator.usb\nnavigator.serial\nnavigator.hid",
         [(1, "Web Bluetooth"), (2, "WebUSB"), (3, "Web Serial"), (4, "WebHID")]),
        # once per API
        ("new PublicKeyCredential\nnavigator.credentials",
         [(1, "WebAuthn and stored credentials")]),
        ("crypto.subtle\n\ncrypto.subtle\nNotification.requestPermission()",
         [(1, "Web Crypto"), (4, "notifications")]),
        ("reg.pushManager.subscribe()", [(1, "push messages")]),
        ("await caches.open('v1')", [(1, "the Cache API")]),
        ("window.showOpenFilePicker()", [(1, "file system access")]),
        ("navigator.share({url})", [(1, "Web Share")]),
        ("navigator.wakeLock.request('screen')", [(1, "the screen wake lock")]),
        ("navigator.storage.persist()", [(1, "the storage manager")]),
        ("navigator.requestMIDIAccess()", [(1, "Web MIDI")]),
        ("navigator.xr.isSessionSupported('vr')", [(1, "WebXR")]),
        ("new PaymentRequest(methods, details)", [(1, "payments")]),
        # not these APIs
        ("crypto.getRandomValues(a); crypto.randomUUID()", []),
        ("navigator.userAgent; navigator.language; mycaches.open()", []),
        ("serviceWorkerless(); navigator.clipboardish", []),
    ],
)  # fmt: skip
def test_secure_api_uses(text: str, expected: list[tuple[int, str]]) -> None:
    found = secure_api_uses(text)
    assert [(line, api.split(" (")[0]) for line, api in found] == expected


def test_every_api_is_found_by_its_own_example() -> None:
    names = [name for name, _ in SECURE_APIS]
    assert len(names) == len(set(names))
    examples = (
        "navigator.serviceWorker navigator.clipboard getUserMedia crypto.subtle "
        "navigator.credentials navigator.geolocation navigator.bluetooth navigator.usb "
        "navigator.serial navigator.hid requestMIDIAccess navigator.xr navigator.share "
        "navigator.wakeLock navigator.storage Notification.requestPermission PushManager "
        "caches.open showSaveFilePicker new PaymentRequest"
    )
    assert [api for _, api in secure_api_uses(examples)] == names


@pytest.mark.parametrize(
    ("config", "how"),
    [
        (CheckConfig(lan=True), "--lan"),
        (CheckConfig(bind="0.0.0.0"), "--bind 0.0.0.0"),
        (CheckConfig(bind="::"), "--bind ::"),
        (CheckConfig(bind="devbox"), "--bind devbox"),
        (CheckConfig(), None),
        (CheckConfig(bind="127.0.0.1"), None),
        (CheckConfig(bind="localhost"), None),
        (CheckConfig(lan=True, tls_auto=True), None),
        (CheckConfig(bind="0.0.0.0", tls_cert=Path("c.pem")), None),
    ],
)
def test_plain_http_to_others(config: CheckConfig, how: str | None) -> None:
    assert plain_http_to_others(config) == how


def test_the_message_names_the_flag_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "sw.js").write_text(SW)
    report = run_check(tmp_path, lan=True)
    [finding] = [f for f in report.findings if f.code == "DS901"]
    assert finding.severity == "warning"
    assert (finding.path, finding.line) == ("sw.js", 1)
    assert finding.message == (
        "service workers (navigator.serviceWorker) needs a secure context: with --lan and "
        "no TLS, other machines load this over http:// and do not have it"
    )
    assert "--tls auto" in finding.fix
    assert report.as_dict()["options"] == {
        "show_hidden": False,
        "follow_symlinks": False,
        "spa": False,
        "listing": True,
        "cgi_directories": [],
        "ignore": [],
        "lan": True,
        "bind": None,
        "tls": False,
    }


def test_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "sw.js").write_text(SW)
    status, output = run_main(["check", str(tmp_path), "--lan", "--format", "github"])
    assert status == 0, output
    assert "::warning file=" in output
    assert "DS901" in output
    status, output = run_main(["check", str(tmp_path), "--lan", "--tls", "auto"])
    assert (status, "DS901" in output) == (0, False)
    status, output = run_main(["check", str(tmp_path), "--bind", "0.0.0.0", "--strict"])
    assert status == 1
    assert "DS901" in output
    status, output = run_main(["check", str(tmp_path), "--lan", "--bind", "0.0.0.0"])
    assert (status, output) == (2, "devserve: error: use either --lan or --bind, not both\n")
