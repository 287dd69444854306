"""What ``--auth`` costs static requests: the same file, with and without it (issue 14).

Usage (from anywhere; needs ``wrk``; Linux, as it reads ``/proc``):

    python bench/auth.py                     # 9 pairs of 3 s runs per log mode (~2 min)
    PAIRS=15 DURATION=5 python bench/auth.py
    MODES=quiet python bench/auth.py         # only with the request log off

Two servers on 127.0.0.1, port 0, on one folder holding a 1 KiB file:

- ``plain``: ``devserve serve ROOT --bind 127.0.0.1``; wrk sends no ``Authorization``;
- ``auth``: the same with ``DEVSERVE_AUTH=bench:<password>``; wrk sends the right
  ``Authorization: Basic ...`` header on every request.

Both servers run side by side (one of them idle at a time). A measurement is
``wrk -t2 -c32 -d DURATION --latency`` on the 1 KiB file; they come in pairs, one
run of each server back to back, the order alternating, after a second of
warm-up each. A shared 2-core machine's speed drifts several-fold within
minutes, so each pair gives its own ratio (auth/plain) and the figure is the
median of those ratios; the servers' CPU time per request (``/proc/PID/stat``)
is a second view that contention moves less. Modes: ``quiet`` (``--quiet``: the
request log off, so the gate's share is the largest) and ``log`` (the log on, as
people run it). Before measuring, the auth server must answer 401 with no header
and with a wrong password, 200 with the right one; a wrk run with any reply
other than 2xx/3xx is an error.

Prints, per mode, the median req/s, p99 and CPU per request of each server, and
the median auth/plain ratio; the target is auth at no less than 90% of plain
(PASS/FAIL; exit status 1 on FAIL). Only processes this script started are ever
signalled.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
DURATION = int(os.environ.get("DURATION", "3"))
PAIRS = int(os.environ.get("PAIRS", "9"))
MODES = os.environ.get("MODES", "quiet log").split()
TARGET = 0.90
USER, PASSWORD = "bench", "correct horse battery staple"
GOOD = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
WRONG = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
FILE = "/1k.bin"


@contextmanager
def devserve(root: Path, auth: bool, quiet: bool) -> Iterator[tuple[int, int]]:
    """A fresh devserve on 127.0.0.1; yields its port and PID. Its log is drained and dropped."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    env.pop("DEVSERVE_AUTH", None)
    if auth:
        env["DEVSERVE_AUTH"] = f"{USER}:{PASSWORD}"
    args = [sys.executable, "-m", "devserve", "serve", str(root), "--port", "0"]
    args += ["--bind", "127.0.0.1", *(["--quiet"] if quiet else [])]
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"Local:\s+http://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = int(found[1])
                break
        if port is None:
            raise SystemExit(f"devserve did not start (exit status {process.wait(10)})")
        stream = process.stderr
        threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
        yield port, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def status(port: int, authorization: str | None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        connection.request("GET", FILE, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run(NamedTuple):
    rps: float
    p99_ms: float
    cpu_us: float  # server CPU time per request


def wrk(port: int, pid: int, seconds: int, authorization: str | None) -> Run:
    """One wrk run; SystemExit if any reply was not 2xx/3xx."""
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if authorization:
        command += ["-H", f"Authorization: {authorization}"]
    command.append(f"http://127.0.0.1:{port}{FILE}")
    before = cpu_seconds(pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    used = cpu_seconds(pid) - before
    out = done.stdout
    if done.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk reported errors:\n{out}{done.stderr}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"^\s*(\d+) requests in", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    if rps is None or p99 is None or count is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99[2]]
    return Run(float(rps[1]), float(p99[1]) * scale, used / int(count[1]) * 1e6)


def check_answers(port: int, auth: bool) -> None:
    if auth:
        got = (status(port, None), status(port, WRONG), status(port, GOOD))
        if got != (401, 401, 200):
            raise SystemExit(f"the auth server answered {got}, not (401, 401, 200)")
    elif status(port, None) != 200:
        raise SystemExit("the plain server does not serve the file")


def measure(root: Path, quiet: bool) -> tuple[list[Run], list[Run]]:
    """PAIRS runs of each server, in back-to-back pairs: (plain runs, auth runs)."""
    runs: dict[bool, list[Run]] = {False: [], True: []}
    with devserve(root, False, quiet) as plain, devserve(root, True, quiet) as authed:
        servers = {False: plain, True: authed}
        for auth, (port, pid) in servers.items():
            check_answers(port, auth)
            wrk(port, pid, 1, GOOD if auth else None)  # warm-up
        for number in range(PAIRS):
            for auth in (False, True) if number % 2 == 0 else (True, False):
                port, pid = servers[auth]
                runs[auth].append(wrk(port, pid, DURATION, GOOD if auth else None))
    return runs[False], runs[True]


def median(runs: list[Run], field: str) -> float:
    """The median of one of ``runs``' fields (``rps``, ``p99_ms``, ``cpu_us``)."""
    return float(statistics.median(float(getattr(run, field)) for run in runs))


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench/auth.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    unknown = [mode for mode in MODES if mode not in ("quiet", "log")]
    if unknown:
        print(f"unknown mode {unknown[0]!r} (known: quiet log)", file=sys.stderr)
        return 2
    failed = False
    with tempfile.TemporaryDirectory(prefix="devserve-bench-auth-") as folder:
        root = Path(folder)
        (root / "1k.bin").write_bytes(os.urandom(1024))
        print(
            f"wrk -t2 -c32 -d{DURATION}s GET {FILE} (1 KiB); {PAIRS} back-to-back pairs "
            "per mode; medians"
        )
        print()
        print(
            "| mode | plain req/s | auth req/s | auth/plain (median of pairs) "
            "| plain p99 | auth p99 | plain CPU/req | auth CPU/req |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode in MODES:
            plain, authed = measure(root, mode == "quiet")
            ratio = statistics.median(a.rps / p.rps for p, a in zip(plain, authed, strict=True))
            failed = failed or ratio < TARGET

            print(
                f"| {mode} | {median(plain, 'rps'):,.0f} | {median(authed, 'rps'):,.0f} "
                f"| {ratio:.3f} | {median(plain, 'p99_ms'):.2f} ms "
                f"| {median(authed, 'p99_ms'):.2f} ms | {median(plain, 'cpu_us'):.1f} µs "
                f"| {median(authed, 'cpu_us'):.1f} µs |",
                flush=True,
            )
    print()
    print(f"target: auth >= {TARGET:.0%} of plain in every mode: {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
