"""Live reload latency in a real browser: from a file write to the page showing the change.

Usage (from the repo root; needs Debian's chromium and the test extra's playwright):

    python bench/reload_latency.py            # 25 HTML edits and 25 CSS edits
    EDITS=50 python bench/reload_latency.py

It starts ``devserve serve --reload`` (port 0, loopback) on a temporary folder,
opens the page in headless Chromium (``/usr/bin/chromium``, a fresh profile),
then edits the page and its stylesheet one at a time. The page itself records
when the change is on screen: for an HTML edit, the first animation frame of
the reloaded page; for a CSS edit, the first frame whose computed colour is the
new one. Both clocks are the machine's wall clock (``time.time()`` in Python,
``performance.timeOrigin + performance.now()`` in the page), so the figure
covers everything: the watcher's batching, the event stream, the reload or the
stylesheet swap, parsing and the frame. Prints median and p90 per kind; the
target is a median under 250 ms.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
EDITS = int(os.environ.get("EDITS", "25"))
TARGET_MS = 250.0
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The page notes the first frame after it was parsed, and the first frame with a new colour.
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="style.css"><title>bench</title></head>
<body><h1 id="v">{version}</h1>
<script>
requestAnimationFrame(() => {{ window.__shown = performance.timeOrigin + performance.now(); }});
const h1 = document.getElementById("v");
let colour = getComputedStyle(h1).color;
(function watch() {{
  const now = getComputedStyle(h1).color;
  if (now !== colour) {{
    colour = now;
    window.__styled = performance.timeOrigin + performance.now();
  }}
  requestAnimationFrame(watch);
}})();
</script></body></html>
"""
STYLE = "h1 {{ color: rgb({red}, 0, 0) }}\n"


def start_devserve(root: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the server; its URL comes from the log, which a thread then keeps draining."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devserve", "serve", str(root), "--port", "0", "--reload"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    url = ""
    while not url and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if found := re.search(r"Local:\s+(http://\S+)", line):
            url = found[1]
    if not url:
        process.kill()
        raise SystemExit("devserve did not start")
    threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
    return process, url


def wait_connected(page: Page) -> None:
    page.wait_for_function("() => window.__devserveReload && window.__devserveReload.connected")


def measure_html(page: Page, root: Path, version: int) -> float:
    wait_connected(page)
    time.sleep(0.15)  # let the previous burst end, so each edit is its own batch
    written = time.time() * 1000
    (root / "index.html").write_text(PAGE.format(version=version))
    page.wait_for_function(
        "v => document.getElementById('v')?.textContent === String(v) && window.__shown",
        arg=version,
        polling=5,
    )
    return float(page.evaluate("() => window.__shown")) - written


def measure_css(page: Page, root: Path, red: int) -> float:
    wait_connected(page)
    time.sleep(0.15)
    page.evaluate("() => { window.__styled = undefined; }")
    written = time.time() * 1000
    (root / "style.css").write_text(STYLE.format(red=red))
    page.wait_for_function("() => window.__styled", polling=5)
    return float(page.evaluate("() => window.__styled")) - written


def summary(name: str, samples: list[float]) -> tuple[str, float]:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    line = (
        f"{name:<28} median {median:6.1f} ms   p90 {p90:6.1f} ms   "
        f"min {ordered[0]:6.1f}   max {ordered[-1]:6.1f}   (n={len(ordered)})"
    )
    return line, median


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="devserve-reload-bench-"))
    (root / "index.html").write_text(PAGE.format(version=0))
    (root / "style.css").write_text(STYLE.format(red=0))
    process, url = start_devserve(root)
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS
            )
            page = browser.new_page()
            page.goto(url)
            version = browser.browser.version if browser.browser else "?"
            html = [measure_html(page, root, i) for i in range(1, EDITS + 1)]
            css = [measure_css(page, root, 10 + i) for i in range(1, EDITS + 1)]
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
    print(f"live reload latency: file write -> change on screen, Chromium {version}")
    html_line, html_median = summary("HTML edit (full reload)", html)
    css_line, css_median = summary("CSS edit (stylesheet swap)", css)
    print(html_line)
    print(css_line)
    worst = max(html_median, css_median)
    verdict = "PASS" if worst < TARGET_MS else "FAIL"
    print(f"target: median < {TARGET_MS:.0f} ms for both: {verdict}")
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    raise SystemExit(main())
