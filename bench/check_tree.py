"""Time `devserve check` on a generated static site, and measure its peak memory.

    python bench/check_tree.py                       # 20,000 files, 2,000 pages (the issue's size)
    python bench/check_tree.py --files 5000 --pages 500
    python bench/check_tree.py --rounds 5 --keep /tmp/site

The tree looks like a real site: nested sections, pages of about 6 KiB with a
navigation bar, images with srcset, a stylesheet, module and classic scripts,
external links, links with queries and fragments, and about 1 % broken links;
the other files are images, stylesheets (with url() references), scripts, JSON
and text. `devserve check --format json` runs in a fresh process each round
(start-up included); the median wall time and the largest peak RSS are
reported, with PASS/FAIL against the target (default: under 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def generate(root: Path, files: int, pages: int, seed: int = 6) -> dict[str, int]:
    """Write the site below ``root``; returns how many of each kind were written."""
    rng = random.Random(seed)
    sections = [f"section-{i:02d}" for i in range(max(1, pages // 100))]
    page_paths = ["index.html"]
    while len(page_paths) < pages:
        section = rng.choice(sections)
        depth = rng.choice(("", "sub/", "sub/deeper/"))
        page_paths.append(f"{section}/{depth}page-{len(page_paths):05d}.html")
    assets = max(0, files - pages)
    images = [f"assets/img/{i // 500:02d}/pic-{i:05d}.png" for i in range(assets * 6 // 10)]
    sheets = [f"assets/css/style-{i:03d}.css" for i in range(max(1, assets // 20))]
    scripts = [f"assets/js/mod-{i:03d}.mjs" for i in range(max(1, assets // 20))]
    others = assets - len(images) - len(sheets) - len(scripts)
    data = [f"data/{i // 400:02d}/item-{i:05d}.{'json' if i % 2 else 'txt'}" for i in range(others)]

    def write(rel: str, content: str | bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    for rel in images:
        write(rel, b"\x89PNG\r\n\x1a\n" + bytes(64))
    for index, rel in enumerate(sheets):
        backgrounds = "\n".join(
            f".c{index}-{k} {{ background: url(/{rng.choice(images)}) }}" for k in range(10)
        )
        write(rel, f"body {{ margin: 0 }}\n{backgrounds}\n")
    for rel in scripts:
        write(rel, "export const x = 1;\n")
    for rel in data:
        write(rel, '{"name": "item"}\n' if rel.endswith(".json") else "text\n")
    nav = " ".join(f'<a href="/{p}">{Path(p).stem}</a>' for p in page_paths[:15])
    for number, rel in enumerate(page_paths):
        up = "../" * rel.count("/")
        links = []
        for k in range(12):
            target = rng.choice(page_paths)
            if k == 0 and rng.random() < 0.1:
                target = target.replace(".html", "-missing.html")  # ~1 % of links broken
            suffix = rng.choice(("", "", "?ref=nav", "#top", "?q=1#x"))
            links.append(f'<li><a href="{up}{target}{suffix}">link {k}</a></li>')
        pictures = []
        for _ in range(6):
            small, large = rng.choice(images), rng.choice(images)
            pictures.append(
                f'<img src="{up}{small}" srcset="{up}{small} 480w, /{large} 960w" '
                'sizes="(max-width: 600px) 480px, 960px" alt="">'
            )
        paragraphs = "\n".join(
            "<p>" + " ".join(rng.choice(WORDS) for _ in range(60)) + "</p>" for _ in range(5)
        )
        write(
            rel,
            f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Page {number}</title>
<link rel="stylesheet" href="/{rng.choice(sheets)}?v=2">
<script type="module" src="{up}{rng.choice(scripts)}"></script>
<link rel="canonical" href="https://example.com/{rel}">
</head>
<body>
<nav>{nav}</nav>
<main>
<h1>Page {number}</h1>
{paragraphs}
<ul>
{chr(10).join(links)}
</ul>
{chr(10).join(pictures)}
<p><a href="https://example.org/">external</a> <a href="mailto:a@example.com">mail</a></p>
</main>
</body>
</html>
""",
        )
    return {
        "pages": len(page_paths),
        "images": len(images),
        "stylesheets": len(sheets),
        "scripts": len(scripts),
        "other": len(data),
    }


WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def run_once(root: Path) -> tuple[float, dict[str, object]]:
    """Wall seconds of one `devserve check --format json` process, and its report."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "devserve", "check", str(root), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"devserve check failed ({result.returncode}):\n{result.stderr}")
    report: dict[str, object] = json.loads(result.stdout)
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=10.0, help="seconds (median) to pass")
    parser.add_argument("--keep", type=Path, help="generate here and keep it (reused if present)")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="devserve-check-bench-"))
    try:
        if not (root / "index.html").exists():
            started = time.perf_counter()
            counts = generate(root, args.files, args.pages)
            print(f"generated {counts} in {time.perf_counter() - started:.1f} s under {root}")
        times = []
        report: dict[str, object] = {}
        for _ in range(args.rounds):
            elapsed, report = run_once(root)
            times.append(elapsed)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = report["summary"]
        assert isinstance(summary, dict)
        median = statistics.median(times)
        print("| files | pages | links | findings | median s | runs (s) | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {summary['files']} | {summary['pages']} | {summary['links']} "
            f"| {summary['errors']} errors | {median:.2f} "
            f"| {', '.join(f'{t:.2f}' for t in times)} | {peak_mib:.0f} MiB |"
        )
        verdict = "PASS" if median < args.target else "FAIL"
        print(f"{verdict}: median {median:.2f} s (target < {args.target:g} s)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
