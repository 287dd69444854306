"""HTTP servers and request handlers: the documented ``http.server`` API, our own code.

Code written against ``http.server`` works after changing the import. Every class,
attribute and hook the reference documents is here with the documented name,
signature, default and behaviour; where devserve deliberately differs (safer
symlinks, no header splitting, ranges and validators, a proper status line on
malformed requests) the README's "Differences from http.server" lists it.

This module never prints anything but the documented ``log_message`` stderr line
and never exits the process.
"""

from __future__ import annotations

import warnings

# Module-level names the stdlib module also has, re-exported for code that uses them.
from devserve._handler_base import DEFAULT_ERROR_CONTENT_TYPE as DEFAULT_ERROR_CONTENT_TYPE
from devserve._handler_base import DEFAULT_ERROR_MESSAGE as DEFAULT_ERROR_MESSAGE
from devserve._handler_base import BaseHTTPRequestHandler as BaseHTTPRequestHandler
from devserve._handler_base import __version__ as _version
from devserve._handler_cgi import CGIHTTPRequestHandler as CGIHTTPRequestHandler
from devserve._handler_cgi import executable as executable
from devserve._handler_cgi import nobody_uid as nobody_uid
from devserve._handler_static import SimpleHTTPRequestHandler as SimpleHTTPRequestHandler
from devserve._servers import HTTPServer as HTTPServer
from devserve._servers import HTTPSServer as HTTPSServer
from devserve._servers import ThreadingHTTPServer as ThreadingHTTPServer
from devserve._servers import ThreadingHTTPSServer as ThreadingHTTPSServer

__all__ = [
    "BaseHTTPRequestHandler",
    "CGIHTTPRequestHandler",
    "HTTPSServer",
    "HTTPServer",
    "SimpleHTTPRequestHandler",
    "ThreadingHTTPSServer",
    "ThreadingHTTPServer",
]


def __getattr__(name: str) -> object:
    """``__version__`` still answers, with the warning Python 3.15 gives for it."""
    if name == "__version__":
        warnings.warn(
            "'__version__' is deprecated and slated for removal in Python 3.20",
            DeprecationWarning,
            stacklevel=2,
        )
        return _version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    # ``python -m devserve.server``: the ``python -m http.server`` command line.
    from devserve._server_cli import main

    raise SystemExit(main())
