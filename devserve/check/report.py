"""Findings as data: what `devserve check` is told, what it found, and the report.

Invariants:
- A `Finding`'s severity and default fix come from its rule (`rules.CODES`),
  never from the place that found it: `Findings.add` is the one way to make one.
- A finding's ``path`` is text (bytes that are not UTF-8 shown as ``\\xNN``,
  `display`), relative to the checked folder, ``"."`` for the folder itself.
- A `Report`'s findings are sorted (severity, path, line, code, message) and
  leave out the ignored codes, which are only counted; its JSON form
  (`Report.as_dict`) is a stable schema (README: "devserve check" → JSON).
- Nothing here prints or looks at a tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devserve.check.rules import CODES, SEVERITIES, Severity

# Version of the JSON report's schema (README: "devserve check" → JSON).
SCHEMA_VERSION = 1

# Called with a stage ("scan", "pages"), the items done and the total when known.
Progress = Callable[[str, int, int | None], None]


class CheckError(Exception):
    """Bad usage (a missing directory, an unknown code), in one line for the user."""


@dataclass(frozen=True)
class CheckConfig:
    """What `devserve check` is told: the serve flags to mirror, and what to report."""

    directory: Path = Path(".")
    show_hidden: bool = False
    follow_symlinks: bool = False
    spa: bool = False
    listing: bool = True
    # URL folders as `devserve cgi --cgi-dir` takes them; empty: `devserve serve`.
    cgi_directories: tuple[str, ...] = ()
    # _redirects and _headers at the root are read, as `serve` reads them (--no-host-files).
    host_files: bool = True
    ignore: frozenset[str] = frozenset()
    # None: read from /proc/sys/fs/inotify/max_user_watches (no DS504 without it).
    watch_limit: int | None = None
    # None: whether this process is root (devserve then runs scripts as nobody).
    runs_as_root: bool | None = None
    # How the server would be reached (DS901): --lan, --bind, and HTTPS by --tls auto
    # or --tls-cert (the file is not read).
    lan: bool = False
    bind: str | None = None
    tls_auto: bool = False
    tls_cert: Path | None = None


@dataclass(frozen=True)
class Finding:
    """One problem: where (``path`` relative to the root, ``line`` for links), what, and the fix."""

    severity: Severity
    code: str
    path: str
    line: int | None
    message: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        """The finding as the JSON report writes it (README: "devserve check")."""
        return {
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


def display(text: str) -> str:
    """A file system string as text: bytes that are not UTF-8 shown as \\xNN."""
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Findings:
    """The findings of one run, in the order they were found."""

    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(
        self, code: str, path: str, message: str, line: int | None = None, fix: str | None = None
    ) -> None:
        """Record ``code`` at ``path`` (relative, "" for the root); the rule's fix by default."""
        rule = CODES[code]
        self.items.append(
            Finding(rule.severity, code, display(path) or ".", line, message, fix or rule.fix)
        )


@dataclass(frozen=True)
class Report:
    """The outcome of a check: the findings (sorted) and what was looked at."""

    directory: str
    config: CheckConfig
    findings: tuple[Finding, ...]
    ignored: int
    files: int
    pages: int
    links: int
    seconds: float

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in self.findings if finding.severity == severity)

    def failed(self, strict: bool = False) -> bool:
        """Whether the check fails: an error, or with ``strict`` also a warning."""
        failing = ("error", "warning") if strict else ("error",)
        return any(finding.severity in failing for finding in self.findings)

    def as_dict(self) -> dict[str, object]:
        """The JSON report (stable schema, README: "devserve check")."""
        config = self.config
        return {
            "version": SCHEMA_VERSION,
            "directory": self.directory,
            "options": {
                "show_hidden": config.show_hidden,
                "follow_symlinks": config.follow_symlinks,
                "spa": config.spa,
                "listing": config.listing,
                "cgi_directories": list(config.cgi_directories),
                "ignore": sorted(config.ignore),
                "lan": config.lan,
                "bind": config.bind,
                "tls": config.tls_auto or config.tls_cert is not None,
            },
            "summary": {
                "errors": self.count("error"),
                "warnings": self.count("warning"),
                "info": self.count("info"),
                "ignored": self.ignored,
                "files": self.files,
                "pages": self.pages,
                "links": self.links,
                "seconds": round(self.seconds, 3),
            },
            "findings": [finding.as_dict() for finding in self.findings],
        }


def sort_key(finding: Finding) -> tuple[int, str, int, str, str]:
    """Most severe first, then by place (path, line), then code and message."""
    return (
        SEVERITIES.index(finding.severity),
        finding.path,
        finding.line or 0,
        finding.code,
        finding.message,
    )


def build_report(
    directory: str,
    config: CheckConfig,
    found: Iterable[Finding],
    *,
    files: int,
    pages: int,
    links: int,
    seconds: float,
) -> Report:
    """The report of ``found``: the codes ``config.ignore`` names left out (and counted), sorted."""
    found = list(found)
    kept = sorted((f for f in found if f.code not in config.ignore), key=sort_key)
    return Report(
        directory=directory,
        config=config,
        findings=tuple(kept),
        ignored=len(found) - len(kept),
        files=files,
        pages=pages,
        links=links,
        seconds=seconds,
    )


def parse_ignore(codes: Iterable[str]) -> frozenset[str]:
    """The codes ``--ignore`` names: exact codes or a family such as ``DS5xx``.

    Raises CheckError for a code that does not exist.
    """
    chosen: set[str] = set()
    for text in codes:
        code = text.strip().upper()
        if code in CODES:
            chosen.add(code)
            continue
        family = [known for known in CODES if code.endswith("XX") and known[:3] == code[:3]]
        if len(code) != 5 or not family:
            raise CheckError(f"unknown finding code for --ignore: {text!r} (see devserve check -h)")
        chosen.update(family)
    return frozenset(chosen)


def check_ignore(codes: Iterable[str]) -> None:
    """Raise CheckError when a code in a built `CheckConfig.ignore` does not exist."""
    unknown = sorted(code for code in codes if code not in CODES)
    if unknown:
        raise CheckError(f"unknown finding code for --ignore: {unknown[0]!r}")
