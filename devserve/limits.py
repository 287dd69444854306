"""What devserve's limits cost in open files, and fitting them to the process's limit.

Each connection needs descriptors, and how many depends on what it is doing: a
file being sent holds the socket and the file; a CGI request adds the script's
three pipes and perhaps a spooled request body; a live-reload stream adds its
wake-up pair and its selector. The budget is the worst case of the kind the
server runs, times the connection cap, plus the extra the event streams hold,
plus a reserve for everything else. If the process cannot have that many (the
hard limit is lower), the connection cap is lowered to fit and the user is told
how to raise it: accept() failing with EMFILE under load would refuse clients
blindly instead.
"""

from __future__ import annotations

import contextlib
import dataclasses

from devserve.config import ServeConfig

FDS_PER_CONNECTION = 2  # the socket, and the file being sent
FDS_PER_SCRIPT = 5  # the socket, the script's stdin, stdout and stderr, a spooled body
FDS_PER_STREAM = 4  # the socket, the hub's wake-up pair, and the stream's selector
FDS_RESERVED = 256  # the listener, the file watcher, logs, imports, the spare


def descriptor_budget(config: ServeConfig) -> int:
    """Descriptors the server may need at once with ``config``'s limits."""
    per_connection = FDS_PER_SCRIPT if config.cgi is not None else FDS_PER_CONNECTION
    streams = config.max_event_streams if config.reload is not None else 0
    extra = streams * max(0, FDS_PER_STREAM - per_connection)
    return config.max_connections * per_connection + extra + FDS_RESERVED


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (never lower it).

    Returns the soft limit in force afterwards.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def fit_descriptors(config: ServeConfig) -> tuple[ServeConfig, int | None]:
    """Raise the open-file limit for ``config``; if it cannot go high enough, lower
    the connection cap until the budget fits. Returns the configuration to serve
    with and the cap it was lowered from (None: unchanged)."""
    limit = raise_fd_limit(descriptor_budget(config))
    fitted = config
    while descriptor_budget(fitted) > limit and fitted.max_connections > 1:
        cap = max(1, fitted.max_connections * 9 // 10)
        fitted = dataclasses.replace(fitted, max_connections=cap)
    if fitted is config:
        return config, None
    return fitted, config.max_connections


def descriptor_warning(config: ServeConfig, wanted: int) -> str:
    """What the user is told when the connection cap was lowered to fit."""
    needed = descriptor_budget(dataclasses.replace(config, max_connections=wanted))
    return (
        f"the open-file limit is too low for {wanted} connections: serving at most "
        f"{config.max_connections} (raise it with `ulimit -n {needed}`)"
    )
