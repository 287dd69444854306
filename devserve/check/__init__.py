"""`devserve check`: what would go wrong if this directory were served (findings as data).

The directory is seen exactly as `devserve serve` (or `devserve cgi`) with the
same flags would serve it: every question about serving — which file a URL
names, whether it may be served, its content type, which index page or
fallback answers, where a CGI script is, where the reload script goes — is put
to the server's own handler and helpers by `server_model`, the one module that
talks to the server (its docstring lists the rules it still has to copy).

The modules, in the order a check uses them:

- `rules`: the catalogue of finding codes (severity, title, fix).
- `report`: the config, findings as data, the report, ``--ignore`` parsing.
- `server_model`: what the server would answer for a path, asked of its code.
- `walker`: `check` itself, and the walk over what the server would serve.
- `exposure`: served files and folders that look secret, by name or contents.
- `secrets`: keys, tokens and passwords in a file's text, by their formats.
- `markup`: references in HTML and CSS, page encodings, URL resolution.
- `pages`: pages and stylesheets: links, content types, live reload.
- `cgi_scripts`: what would stop a CGI script from running.
- `host_files`: the ``_redirects`` and ``_headers`` files, and what their rules do.
- `secure_context`: APIs only secure contexts have, served over plain HTTP to
  other machines.

Invariants:
- Nothing here prints, exits, or touches the network: external URLs are never fetched.
- The checked tree is only read, never written; outside it, only the resolved
  targets of symlinks and the interpreters CGI scripts name (where ``env``
  would look for them) are looked at.
- Memory grows with the number of findings, of pages (their paths are listed
  during the walk) and of distinct link targets (resolved once each), not with
  the size of the files: pages are read and parsed one at a time, other files
  only as far as their first 256 KiB (scripts, for DS901, their first 4 MiB).
- No finding holds a secret in full (`secrets.mask`).
"""

from __future__ import annotations

from devserve.check.exposure import secret_kind
from devserve.check.markup import (
    Kind,
    css_references,
    decode_page,
    join_url,
    remove_dot_segments,
    srcset_urls,
)
from devserve.check.report import (
    SCHEMA_VERSION,
    CheckConfig,
    CheckError,
    Finding,
    Progress,
    Report,
    display,
    parse_ignore,
)
from devserve.check.rules import CODES, RULES, SEVERITIES, Rule, Severity
from devserve.check.server_model import read_watch_limit, server_context
from devserve.check.walker import check, name_problems

__all__ = [
    "CODES",
    "RULES",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "CheckConfig",
    "CheckError",
    "Finding",
    "Kind",
    "Progress",
    "Report",
    "Rule",
    "Severity",
    "check",
    "css_references",
    "decode_page",
    "display",
    "join_url",
    "name_problems",
    "parse_ignore",
    "read_watch_limit",
    "remove_dot_segments",
    "secret_kind",
    "server_context",
    "srcset_urls",
]
