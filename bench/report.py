"""Turn bench/run.sh's results.tsv into markdown tables with ratios and a targets block.

Usage: report.py RESULTS_TSV [OUTDIR]    (stdlib only; Python >= 3.10)

results.tsv rows: round, server, workload, metric, value. With several rounds every number
shown is the median over rounds (derived numbers such as CPU s/GiB are computed per round
first). Exit status is 0 unless STRICT=1 is set and a target FAILs (then 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
from collections.abc import Callable

GIB = 1024**3
BUSY_WARN_PCT = 10  # background CPU use (whole machine) above this makes a run suspect

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
    res: Results, s: str, fn: Callable[[dict[str, dict[str, float]]], float | None]
) -> float | None:
    """Median over rounds of fn(metrics of that round), for derived numbers."""
    rounds = {r for (srv, _, _), v in res.raw.items() if srv == s for r in v}
    vals = []
    for r in rounds:
        snap: dict[str, dict[str, float]] = {}
        for (srv, w, m), v in res.raw.items():
            if srv == s and r in v:
                with contextlib.suppress(ValueError):
                    snap.setdefault(w, {})[m] = float(v[r])
        x = fn(snap)
        if x is not None:
            vals.append(x)
    return statistics.median(vals) if vals else None


def main() -> int:
    tsv = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(tsv)
    res = Results(tsv)
    num = res.num
    nrounds = len({r for v in res.raw.values() for r in v})

    def cpu_per_gib(s: str) -> float | None:
        def fn(snap: dict[str, dict[str, float]]) -> float | None:
            large = snap.get("large_c4", {})
            if "cpu_s" not in large or not large.get("bytes"):
                return None
            return large["cpu_s"] / (large["bytes"] / GIB)

        return median_of(res, s, fn)

    def log_cost() -> float | None:
        """1 - rps(devserve) / rps(devserve-quiet), from the per-server medians."""
        on, off = num("devserve", "small_c32", "rps"), num("devserve-quiet", "small_c32", "rps")
        return None if on is None or not off else 1 - on / off

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def rx(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}x" if v < 0.1 else f"{v:.2f}x"

    def g(w: str, m: str, scale: float = 1.0) -> Getter:
        def get(s: str) -> float | None:
            v = num(s, w, m)
            return None if v is None else v * scale

        return get

    started = [s for s in res.servers if res.values(s, "start", "port")]
    failed = [s for s in res.servers if res.values(s, "start", "failed")]

    def errors(s: str, w: str) -> str:
        se, nx = num(s, w, "sock_errors"), num(s, w, "non2xx")
        if se is None:
            return "-"
        return f"{se:.0f}" + (f" (+{nx:.0f} non-2xx)" if nx else "")

    def table(title: str, cols: list[tuple[str, Getter, str, bool]]) -> None:
        """cols: (header, getter, format, add ratio columns vs py10/py11)."""
        heads: list[str] = []
        for h, _, _, rat in cols:
            heads.append(h)
            if rat:
                first = h.split(" ")[0]
                heads += [f"{first} vs py10", f"{first} vs py11"]
        print(f"\n### {title}\n")
        print("| server | " + " | ".join(heads) + " |")
        print("|---" + "|---:" * len(heads) + "|")
        for s in started:
            row: list[str] = []
            for _, get, fmt, rat in cols:
                v = get(s)
                row.append(f(v, fmt))
                if rat:
                    row += [rx(ratio(v, get("py10"))), rx(ratio(v, get("py11")))]
            print(f"| {s} | " + " | ".join(row) + " |")

    meta = os.path.join(outdir, "meta.txt")
    if os.path.exists(meta):
        with open(meta) as mf:
            print("```\n" + mf.read().rstrip() + "\n```")
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

    busy = {s: other_load(s) for s in res.servers}
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
        f"\nRatios are `server / py10` and `server / py11` ({how}). For latency, CPU and "
        "RSS, lower is better. wrk's percentiles are corrected for coordinated omission, "
        "so one stall can move p99 a lot."
    )

    table(
        "1 KiB file, 32 keep-alive connections (wrk -t2 -c32)",
        [
            ("req/s", g("small_c32", "rps"), ".0f", True),
            ("p50 ms", g("small_c32", "p50ms"), ".3f", False),
            ("p99 ms", g("small_c32", "p99ms"), ".2f", False),
            ("server CPU %", g("small_c32", "cpu_pct"), ".0f", False),
        ],
    )
    print(
        "\nerrors (socket errors, +non-2xx): "
        + ", ".join(f"{s} {errors(s, 'small_c32')}" for s in started)
    )
    table(
        "1 KiB file, 1 connection (wrk -t1 -c1)",
        [
            ("req/s", g("small_c1", "rps"), ".0f", True),
            ("p50 ms", g("small_c1", "p50ms"), ".3f", True),
            ("p99 ms", g("small_c1", "p99ms"), ".3f", False),
            ("server CPU %", g("small_c1", "cpu_pct"), ".0f", False),
        ],
    )
    table(
        "100 MiB file, 4 connections (wrk -t2 -c4)",
        [
            ("MiB/s", g("large_c4", "mibps"), ".0f", True),
            ("CPU s/GiB", cpu_per_gib, ".3f", True),
            ("GiB served", g("large_c4", "bytes", 1 / GIB), ".1f", False),
            ("server CPU %", g("large_c4", "cpu_pct"), ".0f", False),
        ],
    )
    print(
        "\nerrors (socket errors, +non-2xx): "
        + ", ".join(f"{s} {errors(s, 'large_c4')}" for s in started)
    )
    table(
        "1 GiB file streamed once with curl (peak RSS = VmHWM after clear_refs)",
        [
            ("peak RSS MiB", g("huge", "peak_rss_kb", 1 / 1024), ".1f", True),
            ("RSS before MiB", g("huge", "rss_before_kb", 1 / 1024), ".1f", False),
            ("curl MiB/s", g("huge", "mibps"), ".0f", False),
            ("server CPU s", g("huge", "cpu_s"), ".2f", False),
        ],
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

    # ------------------------------------------------------------------ targets
    verdicts: list[str] = []

    def problem(s: str, w: str) -> str | None:
        """Why the numbers of server s in workload w can't count, or None."""
        if s not in started:
            return f"{s} did not start" if s in failed else f"{s} not run"
        if any(
            x != "ok"
            for (srv, k, _), v in res.raw.items()
            if srv == s and k == "check"
            for x in v.values()
        ):
            return f"{s} served wrong content"
        if (num(s, w, "non2xx") or 0) > 0:
            return f"{s} answered non-2xx during {w}"
        if w == "huge" and not huge_complete(s):
            return f"{s} did not deliver the whole 1 GiB"
        return None

    def target(
        name: str,
        value: float | None,
        ok: Callable[[float], bool],
        shown: str,
        needs: list[tuple[str, str]],
    ) -> None:
        problems = [p for p in (problem(s, w) for s, w in needs) if p]
        if value is None or problems:
            # a server that wasn't selected -> SKIP; selected but broken / no data -> FAIL
            skipped = any(s not in started and s not in failed for s, _ in needs)
            verdict = "SKIP" if skipped else "FAIL"
            detail = "; ".join(problems) or "no data"
        else:
            verdict = "PASS" if ok(value) else "FAIL"
            detail = shown
        verdicts.append(verdict)
        print(f"- [{verdict}] {name}: {detail}")

    d, q = "devserve", "devserve-quiet"
    print(f"\n### targets ({how}{', NOISY MACHINE' if noisy else ''})\n")
    r = ratio(num(d, "small_c32", "rps"), num("py10", "small_c32", "rps"))
    target(
        "1 KiB @32 conns: devserve req/s >= 2x py10",
        r,
        lambda v: v >= 2.0,
        rx(r),
        [(d, "small_c32"), ("py10", "small_c32")],
    )
    r = ratio(num(d, "small_c32", "rps"), num("py11", "small_c32", "rps"))
    target(
        "1 KiB @32 conns: devserve req/s >= 5x py11",
        r,
        lambda v: v >= 5.0,
        rx(r),
        [(d, "small_c32"), ("py11", "small_c32")],
    )
    v = num(d, "small_c1", "p50ms")
    target(
        "1 KiB @1 conn: devserve p50 < 0.3 ms",
        v,
        lambda v: v < 0.3,
        f"{f(v, '.3f')} ms",
        [(d, "small_c1")],
    )
    r = ratio(num(d, "large_c4", "mibps"), num("py10", "large_c4", "mibps"))
    target(
        "100 MiB @4 conns: devserve MiB/s >= py10",
        r,
        lambda v: v >= 1.0,
        rx(r),
        [(d, "large_c4"), ("py10", "large_c4")],
    )
    r = ratio(cpu_per_gib(d), cpu_per_gib("py10"))
    target(
        "100 MiB @4 conns: devserve CPU s/GiB <= 0.5x py10",
        r,
        lambda v: v <= 0.5,
        f"{rx(r)} ({f(cpu_per_gib(d), '.3f')} vs {f(cpu_per_gib('py10'), '.3f')} s/GiB)",
        [(d, "large_c4"), ("py10", "large_c4")],
    )
    v = num(d, "huge", "peak_rss_kb")
    v = None if v is None else v / 1024
    target(
        "1 GiB stream: devserve peak RSS < 60 MiB",
        v,
        lambda v: v < 60.0,
        f"{f(v, '.1f')} MiB",
        [(d, "huge")],
    )
    c = log_cost()
    target(
        "request log costs <= 20% of req/s (devserve vs devserve-quiet, 1 KiB @32)",
        c,
        lambda v: v <= 0.20,
        f"{f(None if c is None else c * 100, '.1f')}% "
        f"({f(num(d, 'small_c32', 'rps'), '.0f')} vs {f(num(q, 'small_c32', 'rps'), '.0f')}"
        " req/s)",
        [(d, "small_c32"), (q, "small_c32")],
    )
    startup = os.path.join(outdir, "startup.json")
    if os.path.exists(startup):
        with open(startup) as handle:
            results = json.load(handle)["results"]
        base = results[0]["median"] if results else None
        print("\n### start-up (hyperfine, 20 runs, median)\n")
        print("| command | median ms | vs `python -m http.server --help` |")
        print("|---|---:|---:|")
        for item in results:
            shown = f"{item['median'] / base:.2f}x" if base else "-"
            print(f"| `{item['command']}` | {item['median'] * 1000:.1f} | {shown} |")
    print(
        f"\n{verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL, "
        f"{verdicts.count('SKIP')} SKIP.  raw output: {outdir}"
    )
    if os.environ.get("STRICT") == "1" and "FAIL" in verdicts:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
