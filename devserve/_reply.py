"""A static request and its reply, as plain data: what `devserve._site.Site.respond`
reads and returns, and what the event loop and the threaded handler exchange.

Invariants:
- A `Reply`'s ``parts`` are literal bytes or ranges of its ``source``; its
  ``length`` is exactly the body's length.
- A `Reply` with ``deps`` may be sent again only while they hold, and with
  ``fresh_until`` only until then.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from devserve._files import Dependencies, Found
from devserve._protocol import ByteRange
from devserve._static_rules import Fields


class SiteRequest(NamedTuple):
    """What the site reads of a request: method, target and its fields.

    ``fields`` maps lower-cased names to values; where a name repeats, the first
    value counts (as ``Message.get`` reads it).
    """

    method: str
    target: str
    fields: Mapping[str, str]


def site_request(method: str, target: str, items: Sequence[tuple[str, str]]) -> SiteRequest:
    """A SiteRequest from a request's (name, value) pairs, in the order they came."""
    return SiteRequest(method, target, {name.lower(): value for name, value in reversed(items)})


class Reply(NamedTuple):
    """A static response: status, the handler's own fields, and the body's layout.

    ``parts`` holds literal bytes and ranges of ``source`` (a file `locate`
    found: its bytes, or an open descriptor the sender closes). ``served`` says
    what answered (for the log); ``note`` is shown beside the request line.
    """

    status: int
    fields: Fields
    parts: tuple[bytes | ByteRange, ...] = ()
    source: Found | None = None
    served: str = ""
    note: str = ""
    uncacheable: bool = False  # Cache-Control: no-store instead of the configured one
    logged: bool = True  # plumbing (the reload worker) is logged only when it fails
    # While these paths keep their identities, the same request gets this reply
    # again (None: no such promise; see `devserve._files.Found.deps`).
    deps: Dependencies | None = None
    # Wall-clock time after which it must be computed again even if ``deps`` hold
    # (a listing's sizes and dates change without its folder changing).
    fresh_until: float | None = None

    @property
    def length(self) -> int:
        return sum(p.length if isinstance(p, ByteRange) else len(p) for p in self.parts)

    def close_source(self) -> None:
        """Close the file descriptor the body would have been read from."""
        if self.source is not None and self.source.fd is not None:
            os.close(self.source.fd)
