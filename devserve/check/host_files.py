"""Host files: ``_redirects`` and ``_headers`` at the root, judged as the server reads them (DS8xx).

The files are read by the server's own `devserve._host_files.HostFiles` (the
site `server_model` builds), so every line the server would ignore is reported
with the reason it gives (DS801-DS803). The rules it keeps are then judged with
the server's matcher (`devserve._host_rules.first_match` and `applies`) and the
model's answer for paths: rules that can never match (DS805), redirects that
come back where they started (DS804), and destinations that are not there (DS806).

Invariants:
- Nothing here decides how a rule applies: first match, shadowing by content
  and forcing are `_host_rules`'s, what a path reaches is `server_model`'s.
- Only the two files are read; a redirect chain is followed at most `MAX_HOPS`.
- A rule whose destination takes a value from the request (``:splat``,
  ``:name``) is followed with a sample value, and its destination is not
  looked for on disk (it names many paths).
"""

from __future__ import annotations

import urllib.parse

from devserve._host_rules import (
    REDIRECT_STATUSES,
    Redirect,
    applies,
    first_match,
    substitute,
)
from devserve.check.report import Findings
from devserve.check.server_model import ServerModel

# Redirects followed from a rule before giving up (browsers stop at about 20).
MAX_HOPS = 20
CODES = {"syntax": "DS801", "status": "DS802", "unsupported": "DS803"}
_CONTENT = frozenset({"file", "index", "cgi"})  # a listing or the --spa page is no content


class HostFileChecker:
    """DS8xx for one tree: the host files' lines, then what their rules would do."""

    def __init__(self, server: ServerModel, findings: Findings) -> None:
        self.server = server
        self.add = findings.add

    def check(self) -> None:
        host = self.server.site.host
        if host is None:
            return  # --no-host-files: the server ignores them too
        state = host.current()
        for problem in state.problems:
            self.add(CODES[problem.kind], problem.file, problem.message, line=problem.line)
        rules = state.redirects
        self._shadowed(rules)
        self._loops(rules)
        self._destinations(rules)

    # -- what the server would answer

    def _has_content(self, path: str) -> bool:
        """Whether a file or index page answers ``path`` (decoded): a rule is then shadowed."""
        outcome = self.server.resolve(_encode(path), navigation=True)
        return outcome.status == "ok" and outcome.answered_by in _CONTENT

    def _redirect(
        self, rules: tuple[Redirect, ...], path: str, query: str
    ) -> tuple[int, str] | None:
        """The rule's line and the location, when the rules redirect ``path`` with ``query``."""
        match = first_match(rules, path, query)
        if match is None or not applies(match, self._has_content(path)):
            return None
        if match.rule.status not in REDIRECT_STATUSES or match.rule.external:
            return None
        return match.rule.line, match.location

    # -- DS805

    def _shadowed(self, rules: tuple[Redirect, ...]) -> None:
        for index, later in enumerate(rules):
            for earlier in rules[:index]:
                if _covers(earlier, later):
                    self.add(
                        "DS805",
                        "_redirects",
                        f"{later.source.text} never matches: line {earlier.line} "
                        f"({earlier.source.text}) matches every request it does first",
                        line=later.line,
                    )
                    break

    # -- DS804

    def _loops(self, rules: tuple[Redirect, ...]) -> None:
        reported: set[frozenset[int]] = set()
        for rule in rules:
            if rule.status not in REDIRECT_STATUSES or rule.external:
                continue
            start = (_sample(rule), _sample_query(rule))
            seen = [start]
            lines: list[int] = []
            path, query = start
            for _ in range(MAX_HOPS):
                redirect = self._redirect(rules, path, query)
                if redirect is None:
                    break
                lines.append(redirect[0])
                url = urllib.parse.urlsplit(redirect[1])
                if url.scheme or url.netloc:
                    break
                path = urllib.parse.unquote(url.path, errors="surrogateescape")
                query = url.query
                if (path, query) in seen:
                    back = seen.index((path, query))
                    cycle = frozenset(lines[back:])
                    if cycle not in reported:
                        reported.add(cycle)
                        self._report_loop([*seen[back:], (path, query)], sorted(cycle))
                    break
                seen.append((path, query))

    def _report_loop(self, chain: list[tuple[str, str]], lines: list[int]) -> None:
        shown = " → ".join(path + (f"?{query}" if query else "") for path, query in chain)
        where = ", ".join(str(line) for line in lines)
        self.add(
            "DS804",
            "_redirects",
            f"redirect loop: {shown} (line{'s' if len(lines) > 1 else ''} {where})",
            line=lines[0],
        )

    # -- DS806

    def _destinations(self, rules: tuple[Redirect, ...]) -> None:
        for rule in rules:
            if rule.external or _templated(rule):
                continue  # another site, or a destination taken from the request
            url = urllib.parse.urlsplit(rule.destination)
            path = urllib.parse.unquote(url.path, errors="surrogateescape")
            if self._has_content(path) or self._listed(path):
                continue
            if rule.status in REDIRECT_STATUSES and first_match(rules, path, url.query):
                continue  # another rule takes it from there
            what = "rewrite" if rule.status == 200 else f"{rule.status}"
            self.add(
                "DS806",
                "_redirects",
                f"{rule.source.text} → {rule.destination} ({what}): "
                f"{rule.destination} is not found (404)",
                line=rule.line,
            )

    def _listed(self, path: str) -> bool:
        outcome = self.server.resolve(_encode(path), navigation=True)
        return outcome.status == "ok" and outcome.answered_by == "listing"


def _covers(earlier: Redirect, later: Redirect) -> bool:
    """Whether ``earlier`` matches every request ``later`` matches (so it is chosen first).

    ``later``'s pattern is tried as a path: a placeholder stays ``:name`` (only a
    placeholder or the splat of ``earlier`` takes it), and its splat is tried
    empty and as two segments.
    """
    text = urllib.parse.unquote(later.source.text, errors="surrogateescape")
    samples = [text.replace("*", ""), text.replace("*", ":s/:s")] if "*" in text else [text]
    if not all(earlier.source.match(sample) is not None for sample in samples):
        return False
    wanted = dict(later.query)
    for key, value in earlier.query:
        if key not in wanted or (not value.startswith(":") and wanted[key] != value):
            return False
    return True


def _names(rule: Redirect) -> list[str]:
    """What a rule captures: its placeholders, the splat, ``:name`` query values."""
    return [*rule.source.names, *(value[1:] for _, value in rule.query if value.startswith(":"))]


def _templated(rule: Redirect) -> bool:
    """Whether the destination takes a value from the request."""
    return any(f":{name}" in rule.destination for name in _names(rule))


def _sample(rule: Redirect) -> str:
    """A path the rule's pattern matches: each placeholder and the splat given ``x``."""
    decoded = urllib.parse.unquote(rule.source.text, errors="surrogateescape")
    return substitute(decoded.replace("*", "x"), dict.fromkeys(rule.source.names, "x"))


def _sample_query(rule: Redirect) -> str:
    return "&".join(f"{key}={'x' if value.startswith(':') else value}" for key, value in rule.query)


def _encode(path: str) -> str:
    return urllib.parse.quote(path, safe="/", errors="surrogateescape")
