"""Turn bench/run.sh's results.tsv into markdown tables with ratios and the targets blocks.

Usage: report.py RESULTS_TSV [OUTDIR]    (stdlib only; Python >= 3.10)

results.tsv rows: round, server, workload, metric, value. With several rounds every number
shown is the median over rounds (derived numbers such as CPU s/GiB are computed per round
first). OUTDIR may also hold meta.txt and the start-up files (startup.json, startup.labels,
startup.skipped, startup.node-skipped). Exit status is 0 unless STRICT=1 is set and a
target FAILs (then 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

GIB = 1024**3
BUSY_WARN_PCT = 10  # background CPU use (whole machine) above this makes a run suspect
D, Q = "devserve", "devserve-quiet"

Getter = Callable[[str], float | None]


class Results:
    def __init__(self, path: str) -> None:
        self.raw: dict[tuple[str, str, str], dict[str, str]] = {}  # (s, w, m) -> {round: v}
        self.servers: list[str] = []
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 5:
                    continue
                rnd, server, workload, metric, value = parts
                self.raw.setdefault((server, workload, metric), {})[rnd] = value
                if server not in self.servers:
                    self.servers.append(server)

    def values(self, s: str, w: str, m: str) -> dict[str, str]:
        return self.raw.get((s, w, m), {})

    def per_round(self, s: str, w: str, m: str) -> dict[str, float]:
        out = {}
        for rnd, v in self.values(s, w, m).items():
            with contextlib.suppress(ValueError):
                out[rnd] = float(v)
        return out

    def num(self, s: str, w: str, m: str) -> float | None:
        vals = list(self.per_round(s, w, m).values())
        return statistics.median(vals) if vals else None

    def median_of(
        self, s: str, fn: Callable[[dict[str, dict[str, float]]], float | None]
    ) -> float | None:
        """Median over rounds of fn(metrics of that round), for derived numbers."""
        rounds = {r for (srv, _, _), v in self.raw.items() if srv == s for r in v}
        vals = []
        for r in rounds:
            snap: dict[str, dict[str, float]] = {}
            for (srv, w, m), v in self.raw.items():
                if srv == s and r in v:
                    with contextlib.suppress(ValueError):
                        snap.setdefault(w, {})[m] = float(v[r])
            x = fn(snap)
            if x is not None:
                vals.append(x)
        return statistics.median(vals) if vals else None


@dataclass
class Startup:
    """hyperfine medians (seconds) by label, and why parts are missing."""

    median: dict[str, float] = field(default_factory=dict)
    command: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None  # the whole section
    node_skipped: str | None = None  # just `http-server --help`


def read_text(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return fh.read().strip()


def load_startup(outdir: str) -> Startup:
    st = Startup()
    st.skipped = read_text(os.path.join(outdir, "startup.skipped"))
    st.node_skipped = read_text(os.path.join(outdir, "startup.node-skipped"))
    data = read_text(os.path.join(outdir, "startup.json"))
    labels = (read_text(os.path.join(outdir, "startup.labels")) or "").split()
    if data and not st.skipped:
        results = json.loads(data)["results"]
        default = ["py-help", "devserve-help", "devserve-complete", "node-help"]
        for i, item in enumerate(results):
            label = labels[i] if i < len(labels) else default[i] if i < len(default) else str(i)
            st.median[label] = float(item["median"])
            st.command[label] = str(item["command"])
    elif st.skipped is None:
        st.skipped = "start-up section not run"
    return st


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def rx(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}x" if v < 0.1 else f"{v:.2f}x"


def main() -> int:
    tsv = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(tsv)
    res = Results(tsv)
    num = res.num
    nrounds = len({r for v in res.raw.values() for r in v})

    started = [s for s in res.servers if res.values(s, "start", "port")]
    failed = [s for s in res.servers if res.values(s, "start", "failed")]
    skipped = {
        s: next(iter(res.values(s, "start", "skipped").values()))
        for s in res.servers
        if res.values(s, "start", "skipped") and s not in started
    }

    def cpu_per_gib(s: str) -> float | None:
        def fn(snap: dict[str, dict[str, float]]) -> float | None:
            large = snap.get("large_c4", {})
            if "cpu_s" not in large or not large.get("bytes"):
                return None
            return large["cpu_s"] / (large["bytes"] / GIB)

        return res.median_of(s, fn)

    def g(w: str, m: str, scale: float = 1.0) -> Getter:
        def get(s: str) -> float | None:
            v = num(s, w, m)
            return None if v is None else v * scale

        return get

    def errors(s: str, w: str) -> str:
        se, nx = num(s, w, "sock_errors"), num(s, w, "non2xx")
        if se is None:
            return "-"
        return f"{se:.0f}" + (f" (+{nx:.0f} non-2xx)" if nx else "")

    def table(title: str, cols: list[tuple[str, Getter, str, list[str]]]) -> None:
        """cols: (header, getter, format, reference servers for `value / reference` columns).

        Ratio columns are only shown for references that started."""
        heads: list[str] = []
        for h, _, _, refs in cols:
            heads.append(h)
            heads += [f"{h.split(' ')[0]} vs {ref}" for ref in refs if ref in started]
        print(f"\n### {title}\n")
        print("| server | " + " | ".join(heads) + " |")
        print("|---" + "|---:" * len(heads) + "|")
        for s in started:
            row: list[str] = []
            for _, get, fmt, refs in cols:
                v = get(s)
                row.append(f(v, fmt))
                row += [rx(ratio(v, get(ref))) for ref in refs if ref in started]
            print(f"| {s} | " + " | ".join(row) + " |")

    meta = os.path.join(outdir, "meta.txt")
    if os.path.exists(meta):
        with open(meta) as mf:
            print("```\n" + mf.read().rstrip() + "\n```")
    for s, why in skipped.items():
        print(f"\n**skipped {s}:** {why}")
    if failed:
        print(f"\n**did not start:** {', '.join(failed)} (see *.server.log in {outdir})")

    def other_load(s: str) -> tuple[float, float]:
        """(idle sample before start, worst wrk run) other-process CPU, % of the machine."""
        before = max(res.per_round(s, "env", "bg_busy_pct").values(), default=0.0)
        during = max(
            (
                v
                for (srv, w, m) in res.raw
                if srv == s and m == "other_pct"
                for v in res.per_round(srv, w, m).values()
            ),
            default=0.0,
        )
        return before, during

    busy = {s: other_load(s) for s in res.servers if s in started or s in failed}
    print(
        "\nCPU used by other processes, % of the machine (1 s idle sample before start / "
        "worst wrk run): " + ", ".join(f"{s} {b:.0f}/{d:.0f}" for s, (b, d) in busy.items())
    )
    noisy = any(max(v) > BUSY_WARN_PCT for v in busy.values())
    if noisy:
        print(
            f"\n**WARNING: other processes used > {BUSY_WARN_PCT}% CPU during this run; "
            "wrk and the servers had to share the cores with them, so numbers and ratios "
            "are unreliable. Re-run on an idle machine.**"
        )
    how = f"medians of {nrounds} rounds" if nrounds > 1 else "one run"
    print(
        f"\nRatios are `server / reference` ({how}); references are py10 (stdlib default), "
        "node (http-server) and, for the 100 MiB file, nginx as the loopback-limit "
        "reference. For latency, time, CPU and RSS, lower is better. wrk's percentiles are "
        "corrected for coordinated omission, so one stall can move p99 a lot."
    )

    table(
        "1 KiB file, 32 keep-alive connections (wrk -t2 -c32)",
        [
            ("req/s", g("small_c32", "rps"), ".0f", ["py10", "node"]),
            ("p50 ms", g("small_c32", "p50ms"), ".3f", []),
            ("p99 ms", g("small_c32", "p99ms"), ".2f", ["node"]),
            ("server CPU %", g("small_c32", "cpu_pct"), ".0f", []),
        ],
    )
    print(
        "\nerrors (socket errors, +non-2xx): "
        + ", ".join(f"{s} {errors(s, 'small_c32')}" for s in started)
    )
    table(
        "1 KiB file, 1 connection (wrk -t1 -c1)",
        [
            ("req/s", g("small_c1", "rps"), ".0f", ["py10"]),
            ("p50 ms", g("small_c1", "p50ms"), ".3f", ["py10", "node"]),
            ("p99 ms", g("small_c1", "p99ms"), ".3f", []),
            ("server CPU %", g("small_c1", "cpu_pct"), ".0f", []),
        ],
    )
    table(
        "100 KiB file, 32 keep-alive connections (wrk -t2 -c32)",
        [
            ("MiB/s", g("medium_c32", "mibps"), ".0f", ["py10", "node"]),
            ("req/s", g("medium_c32", "rps"), ".0f", []),
            ("p99 ms", g("medium_c32", "p99ms"), ".2f", []),
            ("server CPU %", g("medium_c32", "cpu_pct"), ".0f", []),
        ],
    )
    print(
        "\nerrors (socket errors, +non-2xx): "
        + ", ".join(f"{s} {errors(s, 'medium_c32')}" for s in started)
    )
    table(
        "100 MiB file, 4 connections (wrk -t2 -c4)",
        [
            ("MiB/s", g("large_c4", "mibps"), ".0f", ["py10", "nginx"]),
            ("CPU s/GiB", cpu_per_gib, ".3f", ["py10"]),
            ("GiB served", g("large_c4", "bytes", 1 / GIB), ".1f", []),
            ("server CPU %", g("large_c4", "cpu_pct"), ".0f", []),
        ],
    )
    print(
        "\nerrors (socket errors, +non-2xx): "
        + ", ".join(f"{s} {errors(s, 'large_c4')}" for s in started)
    )
    table(
        "directory listing of 5,000 files (GET /many/, curl, new connection each time)",
        [
            ("median ms", g("listing", "median_ms"), ".1f", ["py10"]),
            ("min ms", g("listing", "min_ms"), ".1f", []),
            ("timed runs", g("listing", "runs"), ".0f", []),
            ("body KiB", g("listing", "bytes", 1 / 1024), ".0f", []),
        ],
    )
    table(
        "memory: RSS at start, 1 GiB streamed with curl, then a wrk run of N requests "
        "(1 KiB / 100 KiB alternating, 32 conns); process tree, MiB",
        [
            ("idle RSS", g("idle", "rss_kb", 1 / 1024), ".1f", []),
            ("peak in stream", g("huge", "peak_rss_kb", 1 / 1024), ".1f", []),
            ("RSS after", g("after", "rss_kb", 1 / 1024), ".1f", ["py10"]),
            ("peak (HWM) after", g("after", "hwm_kb", 1 / 1024), ".1f", []),
            ("N requests", g("counted", "requests"), ".0f", []),
            ("stream MiB/s", g("huge", "mibps"), ".0f", []),
        ],
    )
    print(
        "\n`peak in stream` and `peak (HWM) after` are VmHWM summed over the tree, reset "
        "(clear_refs) just before the stream; `RSS after` is VmRSS once both are done."
    )

    def huge_complete(s: str) -> bool:
        got = res.values(s, "huge", "bytes")
        return bool(got) and all(v == str(GIB) for v in got.values())

    bad = [s for s in started if not huge_complete(s)]
    if bad:
        print("\n**incomplete 1 GiB downloads:** " + ", ".join(bad))
    bad_checks = [
        f"{s} {m}"
        for (s, w, m), v in res.raw.items()
        if w == "check" and any(x != "ok" for x in v.values())
    ]
    if bad_checks:
        print("\n**content checks failed:** " + ", ".join(bad_checks))

    st = load_startup(outdir)
    if st.median:
        base = st.median.get("py-help")
        node = st.median.get("node-help")
        print("\n### start-up (hyperfine -N, 3 warm-up + 20 runs, median)\n")
        print(
            "| command | median ms | vs `python -m http.server --help` | vs `http-server --help` |"
        )
        print("|---|---:|---:|---:|")
        for label, med in st.median.items():
            print(
                f"| `{st.command[label]}` | {med * 1000:.1f} | {rx(ratio(med, base))} "
                f"| {rx(ratio(med, node))} |"
            )
    else:
        print(f"\n(start-up section skipped: {st.skipped})")

    # ------------------------------------------------------------------ targets
    verdicts: dict[str, list[str]] = {}

    def status(s: str) -> str | None:
        """Why server s has no numbers at all, or None if it ran."""
        if s in started:
            return None
        if s in failed:
            return f"{s} did not start"
        if s in skipped:
            return f"{s} skipped: {skipped[s]}"
        return f"{s} not selected (SERVERS)"

    def problem(s: str, w: str) -> str | None:
        """Why the numbers of server s in workload w can't count, or None."""
        why = status(s)
        if why:
            return why
        if any(
            x != "ok"
            for (srv, k, _), v in res.raw.items()
            if srv == s and k == "check"
            for x in v.values()
        ):
            return f"{s} served wrong content"
        if (num(s, w, "non2xx") or 0) > 0:
            return f"{s} answered non-2xx during {w}"
        if w in ("huge", "after") and not huge_complete(s):
            return f"{s} did not deliver the whole 1 GiB"
        if w == "after" and (num(s, "counted", "requests") or 0) < (
            num(s, "counted", "target") or 0
        ):
            return f"{s} served only {f(num(s, 'counted', 'requests'), '.0f')} of the N requests"
        if w == "listing" and (num(s, "listing", "failed_runs") or 0) > 0:
            return f"{s} failed some listing requests"
        return None

    def target(
        block: str,
        name: str,
        value: float | None,
        ok: Callable[[float], bool],
        shown: str,
        needs: list[tuple[str, str]],
        skip_why: str | None = None,
    ) -> None:
        problems = [p for p in (problem(s, w) for s, w in needs) if p]
        if skip_why:
            verdict, detail = "SKIP", skip_why
        elif value is None or problems:
            # a server that wasn't selected or was skipped -> SKIP; ran but broken -> FAIL
            verdict = "SKIP" if any(status(s) and s not in failed for s, _ in needs) else "FAIL"
            detail = "; ".join(problems) or "no data"
        else:
            verdict = "PASS" if ok(value) else "FAIL"
            detail = shown
        verdicts.setdefault(block, []).append(verdict)
        print(f"- [{verdict}] {name}: {detail}")

    def rps32(s: str) -> float | None:
        return num(s, "small_c32", "rps")

    noisy_note = ", NOISY MACHINE" if noisy else ""
    i8 = "issue 8"
    print(f"\n### issue 8 targets (performance; {how}{noisy_note})\n")
    r = ratio(rps32(D), rps32("node"))
    target(
        i8,
        "1 KiB @32: devserve req/s >= 1.0x node",
        r,
        lambda v: v >= 1.0,
        f"{rx(r)} ({f(rps32(D), '.0f')} vs {f(rps32('node'), '.0f')} req/s)",
        [(D, "small_c32"), ("node", "small_c32")],
    )
    r = ratio(rps32(D), rps32("py10"))
    target(
        i8,
        "1 KiB @32: devserve req/s >= 4x py10",
        r,
        lambda v: v >= 4.0,
        f"{rx(r)} ({f(rps32(D), '.0f')} vs {f(rps32('py10'), '.0f')} req/s)",
        [(D, "small_c32"), ("py10", "small_c32")],
    )
    a, b = num(D, "small_c32", "p99ms"), num("node", "small_c32", "p99ms")
    r = ratio(a, b)
    target(
        i8,
        "1 KiB @32: devserve p99 <= node's",
        r,
        lambda v: v <= 1.0,
        f"{f(a, '.2f')} vs {f(b, '.2f')} ms ({rx(r)})",
        [(D, "small_c32"), ("node", "small_c32")],
    )
    a = num(D, "small_c1", "p50ms")
    target(
        i8,
        "1 KiB @1: devserve p50 <= 0.15 ms",
        a,
        lambda v: v <= 0.15,
        f"{f(a, '.3f')} ms",
        [(D, "small_c1")],
    )
    b = num("node", "small_c1", "p50ms")
    r = ratio(a, b)
    target(
        i8,
        "1 KiB @1: devserve p50 below node's",
        r,
        lambda v: v < 1.0,
        f"{f(a, '.3f')} vs {f(b, '.3f')} ms ({rx(r)})",
        [(D, "small_c1"), ("node", "small_c1")],
    )
    a, b = num(D, "medium_c32", "mibps"), num("node", "medium_c32", "mibps")
    r = ratio(a, b)
    target(
        i8,
        "100 KiB @32: devserve MiB/s >= 1.0x node",
        r,
        lambda v: v >= 1.0,
        f"{rx(r)} ({f(a, '.0f')} vs {f(b, '.0f')} MiB/s)",
        [(D, "medium_c32"), ("node", "medium_c32")],
    )
    a, b = cpu_per_gib(D), cpu_per_gib("py10")
    r = ratio(a, b)
    target(
        i8,
        "100 MiB @4: devserve CPU s/GiB <= 0.5x py10",
        r,
        lambda v: v <= 0.5,
        f"{rx(r)} ({f(a, '.3f')} vs {f(b, '.3f')} s/GiB)",
        [(D, "large_c4"), ("py10", "large_c4")],
    )
    a, b = num(D, "large_c4", "mibps"), num("nginx", "large_c4", "mibps")
    ref_problem = problem(D, "large_c4") or problem("nginx", "large_c4")
    print(
        "- [INFO] 100 MiB @4: devserve MiB/s vs nginx (loopback-limit reference): "
        + (ref_problem or f"{rx(ratio(a, b))} ({f(a, '.0f')} vs {f(b, '.0f')} MiB/s)")
    )
    a, b = num(D, "listing", "median_ms"), num("py10", "listing", "median_ms")
    r = ratio(a, b)
    target(
        i8,
        "listing of 5,000 files: devserve time <= stdlib's (py10)",
        r,
        lambda v: v <= 1.0,
        f"{f(a, '.1f')} vs {f(b, '.1f')} ms median ({rx(r)})",
        [(D, "listing"), ("py10", "listing")],
    )
    a = num(D, "after", "rss_kb")
    a = None if a is None else a / 1024
    target(
        i8,
        "RSS after 1 GiB + N requests: devserve < 40 MiB",
        a,
        lambda v: v < 40.0,
        f"{f(a, '.1f')} MiB VmRSS (peak {f(g('after', 'hwm_kb', 1 / 1024)(D), '.1f')}"
        f" MiB, N = {f(num(D, 'counted', 'requests'), '.0f')})",
        [(D, "after")],
    )
    node_help = st.median.get("node-help")
    for label, what in (
        ("devserve-help", "`devserve --help`"),
        ("devserve-complete", "completion"),
    ):
        mine = st.median.get(label)
        skip_why = st.skipped or (
            None if node_help is not None else (st.node_skipped or "no `http-server --help` timing")
        )
        r = ratio(mine, node_help)
        target(
            i8,
            f"{what} faster than `http-server --help`",
            r,
            lambda v: v < 1.0,
            f"{f(None if mine is None else mine * 1000, '.1f')} vs "
            f"{f(None if node_help is None else node_help * 1000, '.1f')} ms ({rx(r)})",
            [],
            skip_why,
        )
    cost = ratio(rps32(D), rps32(Q))
    cost = None if cost is None else 1 - cost
    target(
        i8,
        "request log on vs --quiet: costs <= 15% of req/s (1 KiB @32)",
        cost,
        lambda v: v <= 0.15,
        f"{f(None if cost is None else cost * 100, '.1f')}% "
        f"({f(rps32(D), '.0f')} vs {f(rps32(Q), '.0f')} req/s)",
        [(D, "small_c32"), (Q, "small_c32")],
    )

    i2 = "issue 2"
    print(f"\n### issue 2 targets (server core, kept as regression checks; {how}{noisy_note})\n")
    r = ratio(rps32(D), rps32("py10"))
    target(
        i2,
        "1 KiB @32 conns: devserve req/s >= 2x py10",
        r,
        lambda v: v >= 2.0,
        rx(r),
        [(D, "small_c32"), ("py10", "small_c32")],
    )
    r = ratio(rps32(D), rps32("py11"))
    target(
        i2,
        "1 KiB @32 conns: devserve req/s >= 5x py11",
        r,
        lambda v: v >= 5.0,
        rx(r),
        [(D, "small_c32"), ("py11", "small_c32")],
    )
    a = num(D, "small_c1", "p50ms")
    target(
        i2,
        "1 KiB @1 conn: devserve p50 < 0.3 ms",
        a,
        lambda v: v < 0.3,
        f"{f(a, '.3f')} ms",
        [(D, "small_c1")],
    )
    r = ratio(num(D, "large_c4", "mibps"), num("py10", "large_c4", "mibps"))
    target(
        i2,
        "100 MiB @4 conns: devserve MiB/s >= py10",
        r,
        lambda v: v >= 1.0,
        rx(r),
        [(D, "large_c4"), ("py10", "large_c4")],
    )
    r = ratio(cpu_per_gib(D), cpu_per_gib("py10"))
    target(
        i2,
        "100 MiB @4 conns: devserve CPU s/GiB <= 0.5x py10",
        r,
        lambda v: v <= 0.5,
        rx(r),
        [(D, "large_c4"), ("py10", "large_c4")],
    )
    a = num(D, "huge", "peak_rss_kb")
    a = None if a is None else a / 1024
    target(
        i2,
        "1 GiB stream: devserve peak RSS < 60 MiB",
        a,
        lambda v: v < 60.0,
        f"{f(a, '.1f')} MiB",
        [(D, "huge")],
    )
    cost = ratio(rps32(D), rps32(Q))
    cost = None if cost is None else 1 - cost
    target(
        i2,
        "request log costs <= 20% of req/s (1 KiB @32)",
        cost,
        lambda v: v <= 0.20,
        f"{f(None if cost is None else cost * 100, '.1f')}%",
        [(D, "small_c32"), (Q, "small_c32")],
    )

    print()
    for block, vs in verdicts.items():
        print(
            f"{block}: {vs.count('PASS')} PASS, {vs.count('FAIL')} FAIL, {vs.count('SKIP')} SKIP."
        )
    print(f"raw output: {outdir}")
    if os.environ.get("STRICT") == "1" and any("FAIL" in vs for vs in verdicts.values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
