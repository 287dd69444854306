"""The report of `devserve check`, and its progress bar.

Findings come as data from devserve.check; this module only presents them:
pretty (grouped by severity), json (the stable schema of ``Report.as_dict``),
github (Actions workflow commands, one per finding), and a transient progress bar
that shows only on a terminal and only for a large tree. Text from the checked
tree is scrubbed and escaped before it goes through rich markup.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.markup import escape

from devserve.config import plural
from devserve.console.text import scrub

if TYPE_CHECKING:
    from rich.progress import Progress as _RichProgress
    from rich.progress import TaskID

    from devserve.check import Finding, Report

CheckFormat = Literal["pretty", "json", "github"]
CHECK_FORMATS: tuple[CheckFormat, ...] = ("pretty", "json", "github")

_SEVERITY_HEADINGS = {"error": "Errors", "warning": "Warnings", "info": "Info"}
_SEVERITY_MARKERS = {"error": "✗", "warning": "!", "info": "i"}
_GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def print_check_report(console: Console, report: Report, output_format: CheckFormat) -> None:
    """Write a check's findings in ``output_format`` (pretty, json or github)."""
    if output_format == "json":
        console.file.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=True) + "\n")
        console.file.flush()
    elif output_format == "github":
        console.file.write("".join(github_annotation(report, f) + "\n" for f in report.findings))
        console.file.write(check_summary(report) + "\n")
        console.file.flush()
    else:
        _print_pretty_report(console, report)


def _print_pretty_report(console: Console, report: Report) -> None:
    print_ = console.print
    print_(f"[devserve.label]devserve check[/] {escape(scrub(report.directory))}")
    for severity, heading in _SEVERITY_HEADINGS.items():
        found = [f for f in report.findings if f.severity == severity]
        if not found:
            continue
        style = f"devserve.{severity}"
        print_()
        print_(f"[{style}]{_SEVERITY_MARKERS[severity]} {heading} ({len(found)})[/]")
        for finding in found:
            where = scrub(finding.path) + (f":{finding.line}" if finding.line else "")
            print_(
                f"  [{style}]{finding.code}[/] [devserve.path]{escape(where)}[/]  "
                f"{escape(scrub(finding.message))}"
            )
            print_(f"        [devserve.hint]fix: {escape(scrub(finding.fix))}[/]")
    print_()
    style = "devserve.error" if report.count("error") else "devserve.label"
    if not report.findings:
        style = "devserve.status.2xx"
    print_(f"[{style}]{escape(check_summary(report))}[/]")


def check_summary(report: Report) -> str:
    """The one summary line: counts by severity, and what was looked at."""
    errors, warnings, info = (report.count(s) for s in ("error", "warning", "info"))
    if report.findings:
        counts = f"{plural(errors, 'error')}, {plural(warnings, 'warning')}, {info} info"
        mark = "✗" if errors else "!"
    else:
        counts, mark = "no problems", "✓"
    ignored = f" ({report.ignored} ignored)" if report.ignored else ""
    return (
        f"{mark} {counts}{ignored} in {plural(report.files, 'file')}, "
        f"{plural(report.pages, 'page')}, {plural(report.links, 'link')} ({report.seconds:.2f} s)"
    )


def github_annotation(report: Report, finding: Finding) -> str:
    """One GitHub Actions workflow command (``::error file=...,line=...::message``)."""
    path = os.path.join(report.directory, finding.path)
    relative = os.path.relpath(path)
    file = relative if not relative.startswith("..") else path
    properties = [f"file={_github_property(file)}"]
    if finding.line:
        properties.append(f"line={finding.line}")
    from devserve.check import CODES

    properties.append(f"title={_github_property(f'{finding.code} {CODES[finding.code].title}')}")
    message = _github_data(f"{finding.message} (fix: {finding.fix})")
    return f"::{_GITHUB_LEVELS[finding.severity]} {','.join(properties)}::{message}"


def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


class CheckProgress:
    """A transient progress bar for `devserve check`, on a terminal and for large trees only.

    Called by the check with a stage ("scan": entries so far; "pages": pages and
    stylesheets parsed of a known total). Nothing shows until the scan passes
    ``min_entries`` or there are ``min_pages`` pages to parse.
    """

    def __init__(self, console: Console, min_entries: int = 5000, min_pages: int = 300) -> None:
        self.console = console
        self.min_entries = min_entries
        self.min_pages = min_pages
        self._progress: _RichProgress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.console.is_terminal:
            return
        if self._progress is None:
            scan = stage == "scan"
            if (scan and done < self.min_entries) or (not scan and (total or 0) < self.min_pages):
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[devserve.label]{task.description}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        if stage not in self._tasks:
            description = "scanning" if stage == "scan" else "checking pages"
            self._tasks[stage] = self._progress.add_task(description, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
