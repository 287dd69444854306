"""What the server reports to whoever presents it: plain data, no printing.

`serving` produces these; `console` renders them. Strings here may come from the
network and are not yet scrubbed: scrubbing is the presenter's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol


class RequestRecord(NamedTuple):
    """One answered request (a named tuple: one is made per request, so it is cheap)."""

    when: float  # time.time() when the request arrived
    client: str
    method: str
    path: str
    status: int
    size: int  # bytes sent, headers included
    duration: float  # seconds
    served: str = ""  # what answered: file, index, listing, spa, cgi, redirect...
    note: str = ""  # e.g. a 404's suggestion


@dataclass(frozen=True, slots=True)
class LogEvent:
    """Something worth telling that is not a request line (an error, a warning)."""

    when: float
    level: Literal["error", "warning", "info"]
    message: str
    detail: str = ""


@dataclass(frozen=True)
class ReadyInfo:
    """What the start-up banner shows."""

    version: str
    directory: str
    urls: tuple[str, ...]
    lan_urls: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    hint: str = ""
    moved_from: int | None = None
    # --tls auto: the certificate's file, its SHA-256 fingerprint, and whether this run made it.
    certificate: str = ""
    fingerprint: str = ""
    certificate_made: bool = False


@dataclass(frozen=True)
class Summary:
    """Totals printed when the server stops."""

    requests: int
    size: int
    errors: int
    seconds: float


def refusal(client: str, when: float) -> RequestRecord:
    """The record of a connection refused for being over the limit (503, no request read)."""
    return RequestRecord(when, client, "", "", 503, 0, 0.0, "", "server busy: connection refused")


class Journal(Protocol):
    """Where a server reports what it answered: every request once, on whichever path.

    The event loop and devserve's threaded handler both report through this, so
    the request log and the stop summary see each request exactly once.
    """

    def answered(self, record: RequestRecord) -> None:
        """One request was answered (any status, including refusals and errors)."""

    def repeats(self, record: RequestRecord) -> Callable[[float, float], None]:
        """A cheaper sink for more requests like ``record`` but for time and duration."""
        ...

    def error(self, message: str, detail: str = "") -> None:
        """Something worth an error line happened while answering (a script's stderr, say)."""

    def failed(self, client: str, detail: str) -> None:
        """Answering a request from ``client`` raised; ``detail`` is the traceback."""
