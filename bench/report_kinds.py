"""Turn the kinds section of bench/run.sh (OUTDIR/kinds/results.tsv) into markdown tables.

Usage: report_kinds.py RESULTS_TSV    (stdlib only; Python >= 3.10)

Rows are the same five columns as report.py reads (round, server, workload, metric, value);
here the workload is a request kind. With several rounds every number is the median over
rounds. Prints req/s and p99 per kind and server, ratios of devserve to node's http-server
and to nginx, and PASS/FAIL/SKIP lines for the targets:

- every kind: devserve req/s >= 2x node;
- every small-file kind (all but the listing): devserve req/s >= 0.5x nginx;
- plain GET: devserve req/s no lower than a baseline, given as BASELINE_RPS=<req/s> or
  BASELINE=<an earlier run's OUTDIR, or its kinds/results.tsv>; SKIP without either.
  BASELINE_TOLERANCE (default 0) allows that fraction below the baseline.

A cell is flagged, and kept out of ratios and targets, when its server answered the kind with
another status than expected (checked with curl before and after the run), answered non-2xx/3xx
during the run (all 404s for the missing-file kind), or had socket errors on more than 1 % of
its requests. A flagged or missing devserve cell FAILs its target; a flagged reference cell
SKIPs it. Exit status 0, or 2 with STRICT=1 when a target FAILs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from report import BUSY_WARN_PCT, Results, f, ratio, rx

SUBJECT, NODE, NGINX = "devserve", "node", "nginx"
# kind -> what the row says; the order is the table's
KINDS = {
    "get": "GET /small-1k.txt (1 KiB)",
    "inm": "… + If-None-Match (own ETag)",
    "ims": "… + If-Modified-Since (own Last-Modified)",
    "index": "GET / (index.html)",
    "missing": "GET /missing.html",
    "range": "… + Range: bytes=0-99",
    "listing": "GET /sub/ (listing, 30 files)",
    "head": "HEAD /small-1k.txt (ab)",
}
SMALL_FILE_KINDS = [k for k in KINDS if k != "listing"]
MAX_ERROR_SHARE = 0.01


class Kinds:
    """The kinds results of one run, and what can be compared."""

    def __init__(self, path: str) -> None:
        self.res = Results(path)
        res = self.res
        self.started = [s for s in res.servers if res.values(s, "start", "port")]
        self.failed = [s for s in res.servers if res.values(s, "start", "failed")]
        self.skipped = {
            s: next(iter(res.values(s, "start", "skipped").values()))
            for s in res.servers
            if res.values(s, "start", "skipped") and s not in self.started
        }

    def rps(self, s: str, kind: str) -> float | None:
        return self.res.num(s, kind, "rps")

    def absent(self, s: str) -> str | None:
        """Why server s has no numbers at all, or None if it ran."""
        if s in self.started:
            return None
        if s in self.failed:
            return f"{s} did not start"
        if s in self.skipped:
            return f"{s} skipped: {self.skipped[s]}"
        return f"{s} not selected (SERVERS / KIND_SERVERS)"

    def flag(self, s: str, kind: str) -> str | None:
        """Why server s's number for kind must not be compared, or None."""
        res = self.res
        na = res.values(s, kind, "na")
        if na:
            return f"n/a ({next(iter(na.values()))})"
        expect = next(iter(res.values(s, kind, "expect").values()), "")
        for metric, when in (("status", ""), ("status_after", " after the run")):
            got = sorted(set(res.values(s, kind, metric).values()) - {expect})
            if got:
                return f"got {'/'.join(got)}{when}, not {expect}"
        client_error = res.values(s, kind, "client_error")
        if client_error:
            return f"client failed: {next(iter(client_error.values()))}"
        requests = res.num(s, kind, "requests") or 0
        non2xx = res.num(s, kind, "non2xx") or 0
        wrong = requests - non2xx if expect == "404" else non2xx
        if wrong > 0:
            return f"{wrong:.0f} responses of another class than {expect}"
        errors = res.num(s, kind, "sock_errors") or 0
        if errors > MAX_ERROR_SHARE * max(requests, 1):
            return f"{errors:.0f} socket errors in {requests:.0f} requests"
        return None

    def value(self, s: str, kind: str) -> float | None:
        """req/s that may be compared: None when absent or flagged."""
        if self.absent(s) or self.flag(s, kind):
            return None
        return self.rps(s, kind)


def cell(k: Kinds, s: str, kind: str, metric: str, fmt: str) -> str:
    """The number, "n/a", or the number marked ⚠ when flagged (reasons listed below)."""
    if k.res.values(s, kind, "na"):
        return "n/a"
    text = f(k.res.num(s, kind, metric), fmt)
    return f"{text} ⚠" if k.flag(s, kind) else text


def tables(k: Kinds) -> None:
    refs = [r for r in (NODE, NGINX) if r in k.started and SUBJECT in k.started]
    heads = [*k.started, *(f"{SUBJECT} / {r}" for r in refs)]
    print("\n### request kinds: req/s (wrk -t2 -c32; HEAD: ab -k -i -c32)\n")
    print("| kind | expect | " + " | ".join(heads) + " |")
    print("|---|---:" + "|---:" * len(heads) + "|")
    for kind, label in KINDS.items():
        expect = next((v for s in k.started for v in k.res.values(s, kind, "expect").values()), "-")
        row = [cell(k, s, kind, "rps", ".0f") for s in k.started]
        row += [rx(ratio(k.value(SUBJECT, kind), k.value(r, kind))) for r in refs]
        print(f"| {label} | {expect} | " + " | ".join(row) + " |")
    flagged = [
        f"{s} {kind}: {why}"
        for kind in KINDS
        for s in k.started
        if (why := k.flag(s, kind)) and not k.res.values(s, kind, "na")
    ]
    if flagged:
        print("\n⚠ flagged, so left out of ratios and targets: " + "; ".join(flagged) + ".")

    print("\n### request kinds: p99 latency, ms\n")
    print("| kind | " + " | ".join(k.started) + " |")
    print("|---" + "|---:" * len(k.started) + "|")
    for kind, label in KINDS.items():
        row = [cell(k, s, kind, "p99ms", ".2f") for s in k.started]
        print(f"| {label} | " + " | ".join(row) + " |")
    print(
        "\nwrk's percentiles are corrected for coordinated omission; ab's (HEAD) are not, so "
        "compare the HEAD row only across servers."
    )

    errors = [
        f"{s} {kind} {f(k.res.num(s, kind, 'sock_errors'), '.0f')}"
        + f"/{f(k.res.num(s, kind, 'non2xx'), '.0f')}"
        for s in k.started
        for kind in KINDS
        if (k.res.num(s, kind, "sock_errors") or 0) or (k.res.num(s, kind, "non2xx") or 0)
    ]
    print(
        "\nsocket errors / non-2xx-3xx responses during the runs (the missing-file kind "
        "expects all of its responses here): " + (", ".join(errors) or "none")
    )
    checks = []
    for s in k.started:
        done, logged = k.res.num(s, "head", "requests"), k.res.num(s, "head", "logged")
        kept = k.res.num(s, "head", "keepalive")
        if done is not None:
            note = f"{s} {done:.0f} completed"
            if logged is not None:
                note += f", {logged:.0f} in its request log"
            if kept is not None and kept < done:
                note += f", {kept:.0f} on kept-alive connections"
            checks.append(note)
    if checks:
        print(
            "\nHEAD cross-check (ab stops with up to 32 requests in flight, which the server "
            "may still log; ab reuses a connection only when the response says keep-alive): "
            + "; ".join(checks)
        )


def other_load(k: Kinds) -> bool:
    """Print the other-process CPU line like report.py; True when the run was noisy."""
    busy = {}
    for s in k.started + k.failed:
        before = max(k.res.per_round(s, "env", "bg_busy_pct").values(), default=0.0)
        during = max(
            (
                v
                for (srv, w, m) in k.res.raw
                if srv == s and m == "other_pct"
                for v in k.res.per_round(srv, w, m).values()
            ),
            default=0.0,
        )
        busy[s] = (before, during)
    print(
        "\nCPU used by other processes, % of the machine (1 s idle sample before start / "
        "worst run): " + ", ".join(f"{s} {b:.0f}/{d:.0f}" for s, (b, d) in busy.items())
    )
    noisy = any(max(v) > BUSY_WARN_PCT for v in busy.values())
    if noisy:
        print(
            f"\n**WARNING: other processes used > {BUSY_WARN_PCT}% CPU during this run; "
            "ratios are unreliable. Re-run on an idle machine.**"
        )
    return noisy


def baseline_rps() -> tuple[float | None, float | None, str]:
    """(devserve GET req/s, nginx GET req/s or None, where from); (None, None, why) if absent."""
    if os.environ.get("BASELINE_RPS"):
        return float(os.environ["BASELINE_RPS"]), None, "BASELINE_RPS"
    where = os.environ.get("BASELINE")
    if not where:
        return None, None, "no BASELINE_RPS or BASELINE given"
    path = Path(where)
    if path.is_dir():
        path = next(
            (p for p in (path / "kinds" / "results.tsv", path / "results.tsv") if p.is_file()),
            path / "kinds" / "results.tsv",
        )
    if not path.is_file():
        return None, None, f"BASELINE {where}: no kinds results.tsv there"
    old = Results(str(path))
    rps = old.num(SUBJECT, "get", "rps")
    if rps is None:
        return None, None, f"BASELINE {path} has no devserve GET req/s"
    return rps, old.num(NGINX, "get", "rps"), str(path)


def targets(k: Kinds, noisy: bool) -> list[str]:
    verdicts: list[str] = []

    def blocked(ref: str | None, kind: str) -> tuple[str, str] | None:
        """(verdict, why) when the numbers can't be compared: devserve's fault FAILs."""
        if why := k.absent(SUBJECT):
            return ("FAIL" if SUBJECT in k.failed else "SKIP"), why
        if why := k.flag(SUBJECT, kind):
            return "FAIL", f"{SUBJECT}: {why}"
        if ref and (why := k.absent(ref)):
            return "SKIP", why
        if ref and (why := k.flag(ref, kind)):
            return "SKIP", f"{ref}: {why}"
        return None

    def verdict(name: str, ref: str | None, kind: str, ok: bool | None, shown: str) -> None:
        v, detail = blocked(ref, kind) or (
            ("SKIP", "no data") if ok is None else ("PASS" if ok else "FAIL", shown)
        )
        verdicts.append(v)
        print(f"- [{v}] {name}: {detail}")

    def at_least(name: str, ref: str, kind: str, times: float) -> None:
        r = ratio(k.value(SUBJECT, kind), k.value(ref, kind))
        shown = f"{rx(r)} ({f(k.rps(SUBJECT, kind), '.0f')} vs {f(k.rps(ref, kind), '.0f')})"
        verdict(f"{name}: >= {times:g}x {ref}", ref, kind, None if r is None else r >= times, shown)

    print(f"\n### request kinds targets{', NOISY MACHINE' if noisy else ''}\n")
    for kind, label in KINDS.items():
        at_least(label, NODE, kind, 2.0)
    for kind in SMALL_FILE_KINDS:
        at_least(KINDS[kind], NGINX, kind, 0.5)

    base, base_nginx, source = baseline_rps()
    name = "GET /small-1k.txt: devserve req/s no lower than the baseline"
    if base is None:
        verdicts.append("SKIP")
        print(f"- [SKIP] {name}: {source}")
    else:
        tolerance = float(os.environ.get("BASELINE_TOLERANCE", "0"))
        now = k.value(SUBJECT, "get")
        r = ratio(now, base)
        shown = f"{rx(r)} ({f(now, '.0f')} vs {base:.0f} req/s from {source}"
        shown += f", tolerance {tolerance:.0%})" if tolerance else ")"
        verdict(name, None, "get", None if r is None else r >= 1 - tolerance, shown)
        nginx_now = k.value(NGINX, "get")
        if base_nginx and nginx_now and now:
            # the same comparison with each run's own nginx as the yardstick (less noisy)
            print(
                "- [INFO] the same, each run divided by its own nginx GET req/s: "
                f"{rx(ratio(now / nginx_now, base / base_nginx))}"
            )
    return verdicts


def main() -> int:
    k = Kinds(sys.argv[1])
    rounds = len({r for v in k.res.raw.values() for r in v})
    how = f"medians of {rounds} rounds" if rounds > 1 else "one run"
    print(f"\n## Request kinds ({how})")
    for s, why in k.skipped.items():
        print(f"\n**skipped {s}:** {why}")
    if k.failed:
        print(f"\n**did not start:** {', '.join(k.failed)} (see kinds/*.server.log)")
    noisy = other_load(k)
    tables(k)
    verdicts = targets(k, noisy)
    print(
        f"\nrequest kinds: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL, "
        f"{verdicts.count('SKIP')} SKIP."
    )
    if os.environ.get("STRICT") == "1" and "FAIL" in verdicts:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
