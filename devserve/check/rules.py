"""The finding catalogue: every code `devserve check` reports, its severity, title and fix.

Invariants:
- A code is ``DS`` and three digits; the hundreds say the family (1 exposure,
  2 symlinks, 3 links, 4 content types, 5 live reload, 6 CGI, 7 names, 8 host
  files: ``_redirects`` and ``_headers``, 9 serving to other machines). Codes
  are sorted and unique here, and never renumbered or reused: reports and
  ``--ignore`` lists name them.
- A code's severity is fixed here, whatever the tree; the README's table says
  the same (tests/test_check_rules.py holds both to it).
- Nothing here looks at a tree: this is data, imported by everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
# Most severe first: the order reports are sorted and shown in.
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Rule:
    """What one finding code means: its fixed severity, a title and the usual fix."""

    code: str
    severity: Severity
    title: str
    fix: str


RULES: tuple[Rule, ...] = (
    # -- DS1xx exposure: files that would be served and look secret
    Rule("DS101", "error", "environment file served", "move it out of the served folder"),
    Rule("DS102", "error", "version-control folder served", "serve a build folder, not the repo"),
    Rule("DS103", "error", "private key served", "move the key out of the served folder"),
    Rule("DS104", "error", ".htpasswd served", "move it out of the served folder"),
    Rule("DS105", "error", "JSON with credentials served", "move it out of the served folder"),
    Rule("DS106", "error", "credential file or folder served", "move it out of the served folder"),
    Rule(
        "DS107",
        "error",
        "access key or token served (AWS, GitHub, GitLab, Slack, Stripe)",
        "remove it from the served files and revoke it: anyone may have copied it",
    ),
    Rule(
        "DS108",
        "error",
        "password in a served config file or backup copy",
        "move the file out of the served folder, and change the password",
    ),
    Rule(
        "DS109",
        "warning",
        "Google API key served (meant for pages only when restricted)",
        "restrict the key to your sites and APIs, or move it out of the served files",
    ),
    # -- DS2xx symlinks
    Rule(
        "DS201",
        "warning",
        "symlink leaves the folder: refused (404)",
        "copy the target in, or serve with --follow-symlinks if exposing it is intended",
    ),
    Rule(
        "DS202",
        "warning",
        "symlink leaves the folder: served because of --follow-symlinks",
        "replace the link with a copy, or serve without --follow-symlinks",
    ),
    Rule("DS203", "warning", "broken symlink (404)", "fix or remove the link"),
    Rule("DS204", "warning", "symlink loop (404)", "fix or remove one of the links"),
    Rule(
        "DS205",
        "warning",
        "directory symlink to a folder above it: URLs without end",
        "remove the link (crawlers and wget -r would never finish)",
    ),
    # -- DS3xx links in pages and stylesheets
    Rule("DS301", "error", "broken link (404)", "fix the link or add the missing file"),
    Rule(
        "DS302",
        "error",
        "link differs from the file name in letter case (404 on Linux)",
        "write the name with the file's exact case",
    ),
    Rule(
        "DS303",
        "error",
        "link to a folder without an index page under --no-listing (404)",
        "add an index.html, link to a file, or serve without --no-listing",
    ),
    Rule(
        "DS304",
        "error",
        "link to a file the server refuses (a hidden name, or a symlink leaving the folder)",
        "link to a visible file, or serve with the flag the message names",
    ),
    Rule(
        "DS305",
        "warning",
        "relative link in the --spa entry page breaks on nested routes",
        'use a root-relative URL (/app.js) or add <base href="/">',
    ),
    # -- DS4xx content types browsers reject for the use
    Rule(
        "DS401",
        "error",
        "module script not served as JavaScript",
        "give it a .js or .mjs name (browsers refuse module scripts of any other type)",
    ),
    Rule("DS402", "warning", "script not served as JavaScript", "give it a .js name"),
    Rule("DS403", "error", "stylesheet not served as text/css", "give it a .css name"),
    Rule(
        "DS404",
        "error",
        "WebAssembly not served as application/wasm",
        "give it a .wasm name (instantiateStreaming refuses any other type)",
    ),
    Rule("DS405", "warning", "font not served as a font type", "name it .woff2, .woff, .ttf, .otf"),
    Rule("DS406", "warning", "manifest not served as JSON", "name it .webmanifest or .json"),
    Rule(
        "DS407",
        "info",
        "page link to a file served as application/octet-stream (downloaded, not shown)",
        "give it a name with a known type (.txt, .html, .pdf ...)",
    ),
    # -- DS5xx live reload
    Rule(
        "DS501",
        "info",
        "no </body> or </head>: the reload script is appended at the very end",
        "close the page's <body>",
    ),
    Rule(
        "DS502",
        "warning",
        "page is not UTF-8 and declares no charset (browsers guess the encoding)",
        "save it as UTF-8, or declare its charset with <meta charset>",
    ),
    Rule(
        "DS503",
        "warning",
        "UTF-32 page, or UTF-16 without a byte-order mark: the reload script would corrupt it",
        "save it as UTF-8",
    ),
    Rule(
        "DS504",
        "warning",
        "more folders than the inotify watch limit: --reload falls back to polling",
        "serve a smaller folder, or raise fs.inotify.max_user_watches",
    ),
    Rule(
        "DS505",
        "info",
        "file over 100 MiB served (usually there by accident)",
        "move it out of the served folder unless it is meant to be downloaded",
    ),
    # -- DS6xx CGI (with --cgi-dir)
    Rule("DS601", "error", "CGI script not executable (403)", "chmod +x it"),
    Rule(
        "DS602",
        "error",
        "CGI script has no #! line (500)",
        "start it with a line such as #!/usr/bin/env python3",
    ),
    Rule(
        "DS603",
        "error",
        "CGI script's interpreter cannot be found (500; 502 through env)",
        "fix the #! line or install the interpreter",
    ),
    Rule(
        "DS604",
        "error",
        "CGI script's #! line ends with CR (Windows line endings; 500)",
        "convert the script to Unix line endings (dos2unix)",
    ),
    Rule(
        "DS605",
        "error",
        "world-writable CGI script or folder: anyone on the machine can change what runs",
        "chmod o-w it",
    ),
    Rule(
        "DS606",
        "error",
        "CGI script the user nobody cannot run "
        "(devserve runs scripts as nobody when root; 403, or 502 through env)",
        "make the script, its interpreter and every folder above them readable and searchable "
        "by others",
    ),
    Rule(
        "DS607",
        "warning",
        "--cgi-dir names no folder in the tree",
        "create the folder or fix --cgi-dir",
    ),
    # -- DS7xx names
    Rule("DS701", "warning", "control character in a file name", "rename the file"),
    Rule(
        "DS702",
        "warning",
        "file name is not valid UTF-8 (hand-written links cannot reach it)",
        "rename the file with a UTF-8 name",
    ),
    Rule("DS703", "warning", "file name starts or ends with a space", "rename the file"),
    Rule(
        "DS704",
        "error",
        "link to a name with # or ? that does not percent-encode it (404)",
        "write # as %23 and ? as %3F in the link",
    ),
    Rule(
        "DS705",
        "warning",
        "link to a name with a space that does not percent-encode it",
        "write the space as %20 in the link",
    ),
    # -- DS8xx host files: _redirects and _headers at the root (unless --no-host-files)
    Rule(
        "DS801",
        "error",
        "host file line not understood: ignored",
        "write the line as Netlify and Cloudflare Pages read it (README: supported subset)",
    ),
    Rule(
        "DS802",
        "error",
        "_redirects status no rule can give: the rule is ignored",
        "use 301, 302, 303, 307, 308 (redirects), 200 (rewrite) or 404",
    ),
    Rule(
        "DS803",
        "info",
        "host feature devserve does not preview (conditions, proxying, a host in the rule)",
        "try it on the host: devserve ignores the line",
    ),
    Rule(
        "DS804",
        "error",
        "redirect loop: the rules send a request back where it started",
        "change one of the rules so the chain ends on a page",
    ),
    Rule(
        "DS805",
        "warning",
        "_redirects rule that never matches: an earlier rule matches first",
        "move it above the earlier rule, or remove it",
    ),
    Rule(
        "DS806",
        "error",
        "_redirects destination not found locally (404)",
        "fix the destination, or add the page",
    ),
    # -- DS9xx serving to other machines (with --lan or --bind)
    Rule(
        "DS901",
        "warning",
        "page or script uses an API only secure contexts have, served over plain HTTP "
        "to other machines",
        "serve with --tls auto (or --tls-cert); on this machine, http://localhost is secure",
    ),
)
CODES: dict[str, Rule] = {rule.code: rule for rule in RULES}
