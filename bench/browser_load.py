"""Real-browser page load of an unbundled ES-module app: cold and warm (revalidating) loads.

Usage (bench/run.sh runs both steps; the servers must already be listening on 127.0.0.1):

    python bench/browser_load.py generate ROOT/app
    python bench/browser_load.py measure --server devserve=http://127.0.0.1:PORT/app/ \\
        --server nginx=http://127.0.0.1:PORT/app/ --server node=http://127.0.0.1:PORT/app/ \\
        [--runs 5] [--json results.json]

``generate`` writes, deterministically, the kind of tree a dev server sees before any
bundler: ``index.html`` loading ``main.js`` as a module, 500 small modules importing each
other in a tree (three children each, seven levels), one stylesheet and 40 small images
(20 PNG in the page, 20 SVG from the stylesheet): 543 files. Files that already hold the
right bytes are left alone, and files in that folder that the app does not use are removed.

``measure`` drives Debian's Chromium (``/usr/bin/chromium``, headless, a fresh profile)
with Playwright. Each load gets a fresh browser context:

- **cold**: the HTTP cache disabled (CDP ``Network.setCacheDisabled``), every file fetched;
- **warm**: one load to fill the cache, then ``page.reload()``, measured. With
  ``Cache-Control: no-cache`` on every response, Chromium revalidates each file with
  ``If-None-Match``/``If-Modified-Since``, so a server that supports validators answers 304s.

A load's time is measured inside the page, from navigation start to the later of the
``load`` event's end and the moment ``main.js`` ran (which is after the whole import graph
was evaluated). The wire status of every response is read from CDP
(``Network.responseReceivedExtraInfo``), because Playwright's response events report a
revalidated document or image as 200. Each server first gets one checked, unmeasured load:
all 543 files must come back 200 and the import graph must produce the expected total.
Servers are interleaved (the order rotates every run) so they share the machine's noise.
Prints a markdown table with medians and ratios against the reference (nginx), and PASS/FAIL
lines for the subject (devserve): cold and warm medians each within 1.05x of the reference.
Exit status 0, or 2 with ``STRICT=1`` when a target FAILs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
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
MODULES = 500
FAN_OUT = 3  # module i imports modules 3i+1 .. 3i+3: a tree of seven levels
PNGS = 20
SVGS = 20
FILES = 3 + MODULES + PNGS + SVGS  # index.html, main.js, style.css, modules, images
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
# what main.js computes: every module adds its number and len(WORDS) to its children's sum
EXPECTED_TOTAL = sum(range(MODULES)) + MODULES * len(WORDS)
NAV_TIMEOUT_MS = 60_000
SETTLE_MS = 2_000  # at most this long for CDP's late network events after a load

# ------------------------------------------------------------------------ the generated app


def module_source(i: int) -> str:
    children = [c for c in range(FAN_OUT * i + 1, FAN_OUT * i + FAN_OUT + 1) if c < MODULES]
    imports = "".join(f'import {{ value as c{c} }} from "./m{c:03d}.js";\n' for c in children)
    calls = "".join(f" + c{c}()" for c in children)
    words = ", ".join(f'"{w}"' for w in WORDS)
    return (
        f"// m{i:03d}: one of {MODULES} generated modules (bench/browser_load.py)\n"
        f"{imports}"
        "globalThis.__evaluated = (globalThis.__evaluated ?? 0) + 1;\n"
        f"const words = [{words}];\n"
        f'export const label = "module {i} of {MODULES}";\n'
        f"export function value() {{\n  return {i} + words.length{calls};\n}}\n"
    )


MAIN_JS = """\
// The entry module: it runs only after the whole import graph below it was evaluated.
import { value } from "./mods/m000.js";
window.__total = value();
window.__ready = globalThis.__evaluated;
window.__readyAt = performance.now();
"""


def png(size: int, rgb: tuple[int, int, int]) -> bytes:
    """A small truecolour PNG: a diagonal two-tone square (deterministic bytes)."""
    dark = bytes(c // 2 for c in rgb)
    rows = (
        b"\x00" + b"".join(bytes(rgb) if x >= y else dark for x in range(size)) for y in range(size)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def colour(i: int) -> tuple[int, int, int]:
    return (40 + (i * 53) % 200, 40 + (i * 97) % 200, 40 + (i * 151) % 200)


def svg(i: int) -> str:
    r, g, b = colour(i + PNGS)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">'
        f'<circle cx="12" cy="12" r="10" fill="rgb({r},{g},{b})"/>'
        f'<text x="12" y="16" font-size="10" text-anchor="middle">{i}</text></svg>\n'
    )


def app_files() -> dict[str, bytes]:
    """Every file of the app, by path relative to the app folder."""
    icons = "\n".join(
        f'  <img src="img/icon-{i:02d}.png" width="16" height="16" alt="icon {i}">'
        for i in range(PNGS)
    )
    badges = "\n".join(f'  <span class="badge badge-{i:02d}"></span>' for i in range(SVGS))
    index = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>devserve bench: unbundled ES-module app</title>\n"
        '<link rel="icon" href="data:,">\n'  # no /favicon.ico request
        '<link rel="stylesheet" href="style.css">\n'
        '<script type="module" src="main.js"></script>\n'
        "</head>\n<body>\n<h1>Generated app</h1>\n"
        f'<div class="icons">\n{icons}\n</div>\n<div class="badges">\n{badges}\n</div>\n'
        "</body>\n</html>\n"
    )
    css = "body { font: 14px sans-serif; margin: 2em; }\n"
    css += ".badge { display: inline-block; width: 24px; height: 24px; }\n"
    css += "".join(
        f'.badge-{i:02d} {{ background-image: url("img/badge-{i:02d}.svg"); }}\n'
        for i in range(SVGS)
    )
    files = {"index.html": index.encode(), "main.js": MAIN_JS.encode(), "style.css": css.encode()}
    for i in range(MODULES):
        files[f"mods/m{i:03d}.js"] = module_source(i).encode()
    for i in range(PNGS):
        files[f"img/icon-{i:02d}.png"] = png(16, colour(i))
    for i in range(SVGS):
        files[f"img/badge-{i:02d}.svg"] = svg(i).encode()
    assert len(files) == FILES
    return files


def generate(app: Path) -> int:
    """Write the app below ``app``; returns how many files had to be (re)written."""
    files = app_files()
    written = 0
    for rel, data in files.items():
        path = app / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
    for path in sorted(app.rglob("*")):
        if path.is_file() and path.relative_to(app).as_posix() not in files:
            path.unlink()
    return written


# ------------------------------------------------------------------------ measuring


@dataclass
class Load:
    """One page load as the browser saw it."""

    ms: float  # navigation start -> load event ended and the import graph ran
    responses: int  # responses that came from the network (CDP), document included
    not_modified: int  # of those, 304s
    conditional: int  # requests sent with If-None-Match or If-Modified-Since
    errors: int  # responses with status >= 400
    total: int  # what main.js computed (EXPECTED_TOTAL when every module ran)


@dataclass
class ServerRuns:
    name: str
    url: str
    problem: str | None = None  # set when the checked load failed; then nothing is measured
    cold: list[Load] = field(default_factory=list)
    warm: list[Load] = field(default_factory=list)


class Wire:
    """Counts what crossed the network for one page, from CDP's raw (ExtraInfo) events."""

    def __init__(self, context: BrowserContext, page: Page, *, cache: bool) -> None:
        self.statuses: list[int] = []
        self.conditional = 0
        self.session = context.new_cdp_session(page)
        self.session.on("Network.responseReceivedExtraInfo", self._response)
        self.session.on("Network.requestWillBeSentExtraInfo", self._request)
        self.session.send("Network.enable")
        self.session.send("Network.setCacheDisabled", {"cacheDisabled": not cache})

    def _response(self, event: dict[str, Any]) -> None:
        self.statuses.append(int(event["statusCode"]))

    def _request(self, event: dict[str, Any]) -> None:
        names = {name.lower() for name in event["headers"]}
        if names & {"if-none-match", "if-modified-since"}:
            self.conditional += 1

    def reset(self) -> None:
        self.statuses.clear()
        self.conditional = 0

    def settle(self, page: Page, expected: int) -> None:
        """Wait (bounded) for late ExtraInfo events: until `expected` arrived or none for 200 ms."""
        waited, seen, quiet = 0, -1, 0
        while waited < SETTLE_MS and len(self.statuses) < expected and quiet < 200:
            page.wait_for_timeout(20)
            waited += 20
            quiet = quiet + 20 if len(self.statuses) == seen else 0
            seen = len(self.statuses)


READY = (
    "() => window.__ready !== undefined"
    " && performance.getEntriesByType('navigation')[0]?.loadEventEnd > 0"
)
TIMING = (
    "() => [Math.max(performance.getEntriesByType('navigation')[0].loadEventEnd,"
    " window.__readyAt), window.__total]"
)


def finish(page: Page, wire: Wire) -> Load:
    page.wait_for_function(READY, timeout=NAV_TIMEOUT_MS, polling=10)
    ms, total = page.evaluate(TIMING)
    wire.settle(page, FILES)
    return Load(
        ms=float(ms),
        responses=len(wire.statuses),
        not_modified=wire.statuses.count(304),
        conditional=wire.conditional,
        errors=sum(1 for s in wire.statuses if s >= 400),
        total=int(total),
    )


@contextmanager
def fresh_page(browser: Browser) -> Iterator[tuple[BrowserContext, Page]]:
    context = browser.new_context()
    try:
        yield context, context.new_page()
    finally:
        context.close()


def cold_load(browser: Browser, url: str) -> Load:
    with fresh_page(browser) as (context, page):
        wire = Wire(context, page, cache=False)
        page.goto(url, wait_until="load", timeout=NAV_TIMEOUT_MS)
        return finish(page, wire)


def warm_load(browser: Browser, url: str) -> Load:
    with fresh_page(browser) as (context, page):
        wire = Wire(context, page, cache=True)
        page.goto(url, wait_until="load", timeout=NAV_TIMEOUT_MS)
        finish(page, wire)  # the priming load: fills the cache, not measured
        wire.reset()
        page.reload(wait_until="load", timeout=NAV_TIMEOUT_MS)
        return finish(page, wire)


def check(load: Load) -> str | None:
    """Why a cold load shows the server did not serve the app correctly, or None."""
    if load.total != EXPECTED_TOTAL:
        return f"the import graph computed {load.total}, not {EXPECTED_TOTAL}"
    if load.errors:
        return f"{load.errors} responses had status >= 400"
    if load.responses != FILES:
        return f"{load.responses} responses instead of {FILES}"
    return None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(servers: list[ServerRuns], runs: int) -> str:
    """Fill in every server's loads; returns the browser's version."""
    # launch() (unlike launch_persistent_context) starts from a new temporary profile
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for server in servers:
                try:
                    server.problem = check(cold_load(browser, server.url))
                except Exception as exc:  # a timeout or a navigation error: report it
                    server.problem = f"load failed: {type(exc).__name__}: {exc}"
                log(f"checked {server.name}: {server.problem or 'ok'}")
            good = [s for s in servers if s.problem is None]
            for run in range(runs if good else 0):
                order = good[run % len(good) :] + good[: run % len(good)]
                for server in order:
                    server.cold.append(cold_load(browser, server.url))
                for server in order:
                    server.warm.append(warm_load(browser, server.url))
                log(f"run {run + 1}/{runs}: " + ", ".join(summary_line(s) for s in order))
            return browser.version
        finally:
            browser.close()


# ------------------------------------------------------------------------ reporting


def median(loads: list[Load]) -> float | None:
    return statistics.median(load.ms for load in loads) if loads else None


def summary_line(server: ServerRuns) -> str:
    return f"{server.name} cold {server.cold[-1].ms:.0f} ms warm {server.warm[-1].ms:.0f} ms"


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def report(
    servers: list[ServerRuns], runs: int, version: str, subject: str, reference: str, limit: float
) -> list[str]:
    """Print the tables and targets; returns the verdicts."""
    by_name = {s.name: s for s in servers}
    ref = by_name.get(reference)
    print(f"\n### real-browser page load: {FILES}-file unbundled ES-module app\n")
    print(
        f"Chromium {version} (headless, driven by Playwright), each load in a fresh context; "
        f"medians of {runs} interleaved runs. Time = navigation start until the `load` event "
        f"ended and all {MODULES} modules ran, measured in the page. cold = HTTP cache "
        "disabled; warm = `page.reload()` after one load, so every file is revalidated. "
        "304s and requests are the minimum over the warm runs, from CDP's wire statuses.\n"
    )
    print(
        f"| server | cold ms | cold vs {reference} | warm ms | warm vs {reference} "
        "| warm 304s | warm conditional requests | cold responses |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in servers:
        if s.problem:
            print(f"| {s.name} | {s.problem} | | | | | | |")
            continue
        ref_cold = median(ref.cold) if ref else None
        ref_warm = median(ref.warm) if ref else None
        cold, warm = median(s.cold), median(s.warm)
        r_cold, r_warm = ratio(cold, ref_cold), ratio(warm, ref_warm)
        not_modified = min((w.not_modified for w in s.warm), default=0)
        conditional = min((w.conditional for w in s.warm), default=0)
        responses = min((c.responses for c in s.cold), default=0)
        print(
            f"| {s.name} | {fmt(cold)} | {fmt(r_cold, '.2f')}x | {fmt(warm)} "
            f"| {fmt(r_warm, '.2f')}x | {not_modified}/{FILES} | {conditional} | {responses} |"
        )
    no_revalidation = [
        s.name for s in servers if s.warm and max(w.not_modified for w in s.warm) == 0
    ]
    if no_revalidation:
        print(
            "\nNo 304s at all for " + ", ".join(no_revalidation) + ": its responses forbid "
            "caching (node's `-c-1` sends `no-store`), so its warm load fetches every file again."
        )

    print(f"\n### real-browser page load targets ({subject} vs {reference}, medians of {runs})\n")
    verdicts = []
    sub = by_name.get(subject)
    for mode in ("cold", "warm"):
        name = f"{mode} load: {subject} within {limit:.2f}x of {reference}"
        verdict, detail = target(sub, ref, mode, subject, reference, limit)
        verdicts.append(verdict)
        print(f"- [{verdict}] {name}: {detail}")
    return verdicts


def target(
    sub: ServerRuns | None,
    ref: ServerRuns | None,
    mode: str,
    subject: str,
    reference: str,
    limit: float,
) -> tuple[str, str]:
    if sub is None:
        return "SKIP", f"{subject} not measured"
    if ref is None:
        return "SKIP", f"{reference} not measured"
    if sub.problem:
        return "FAIL", f"{subject}: {sub.problem}"
    if ref.problem:
        return "SKIP", f"{reference}: {ref.problem}"
    loads = sub.cold if mode == "cold" else sub.warm
    if mode == "warm" and min((w.not_modified for w in ref.warm), default=0) < FILES:
        return "SKIP", f"{reference} did not answer every warm request with 304"
    if mode == "warm" and min((w.not_modified for w in loads), default=0) < FILES:
        return "FAIL", f"{subject} did not answer every warm request with 304"
    a = median(loads)
    b = median(ref.cold if mode == "cold" else ref.warm)
    r = ratio(a, b)
    if r is None:
        return "SKIP", "no data"
    shown = f"{r:.2f}x ({fmt(a)} vs {fmt(b)} ms)"
    return ("PASS" if r <= limit else "FAIL"), shown


# ------------------------------------------------------------------------ command line


def parse_server(text: str) -> ServerRuns:
    name, sep, url = text.partition("=")
    if not sep or not url.startswith("http://127.0.0.1:"):
        raise argparse.ArgumentTypeError("expected NAME=http://127.0.0.1:PORT/PATH")
    return ServerRuns(name=name, url=url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write the app into a folder")
    gen.add_argument("folder", type=Path)
    run = commands.add_parser("measure", help="load the app from running servers")
    run.add_argument("--server", type=parse_server, action="append", required=True)
    run.add_argument("--runs", type=int, default=int(os.environ.get("BROWSER_RUNS", "5")))
    run.add_argument("--subject", default="devserve")
    run.add_argument("--reference", default="nginx")
    run.add_argument("--limit", type=float, default=1.05, help="subject/reference at most")
    run.add_argument("--json", type=Path, help="also write every load here")
    args = parser.parse_args(argv)

    if args.command == "generate":
        written = generate(args.folder)
        log(f"app: {FILES} files in {args.folder} ({written} written)")
        return 0
    servers: list[ServerRuns] = args.server
    version = measure(servers, max(1, args.runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in servers], indent=1) + "\n")
    verdicts = report(servers, max(1, args.runs), version, args.subject, args.reference, args.limit)
    return 2 if os.environ.get("STRICT") == "1" and "FAIL" in verdicts else 0


if __name__ == "__main__":
    raise SystemExit(main())
