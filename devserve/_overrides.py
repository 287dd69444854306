"""Which handler classes devserve's site may answer for, instead of the class's own code.

The site (`devserve._site`) reproduces the documented handlers and devserve's own.
A subclass that overrides a hook the site would bypass (``send_head``,
``guess_type``, ``log_message``...) must run its override: the event loop does
not answer for it, and devserve's threaded handler takes the documented path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Methods the site's answers stand in for; a handler class overriding one gets no
# answers from the loop unless the class that overrides it declares
# ``_site_safe = True`` in its own body (it promises the site gives its responses).
SITE_HOOKS = frozenset(
    {
        "handle_one_request", "parse_request", "handle_expect_100", "do_GET", "do_HEAD",
        "send_head", "copyfile", "translate_path", "guess_type", "list_directory",
        "send_response", "send_response_only", "send_header", "end_headers", "flush_headers",
        "send_error", "log_request", "log_message", "log_error", "version_string",
        "date_time_string", "address_string", "MessageClass", "error_message_format",
        "error_content_type", "responses", "index_pages", "extensions_map",
        "default_content_type",
    }
)  # fmt: skip
# Overriding one of these means the handler manages the connection itself.
LOOP_HOOKS = frozenset({"setup", "handle", "finish"})


def reproduces(handler_class: Any, hooks: Iterable[str] = SITE_HOOKS) -> bool:
    """Whether no class of ``handler_class`` overrides ``hooks`` without being site-safe.

    The walk stops at a class that declares ``_site_base = True`` (the documented
    handlers, whose behaviour devserve's classes build on).
    """
    cls = getattr(handler_class, "func", handler_class)  # functools.partial(Handler, ...)
    if not isinstance(cls, type):
        return False
    names = frozenset(hooks)
    for klass in cls.__mro__:
        own = vars(klass)
        if own.get("_site_base", False):
            return True
        if own.get("_site_safe", False):
            if names & LOOP_HOOKS & own.keys():
                return False  # site-safe is no promise about the connection
        elif names & own.keys():
            return False
    return False
