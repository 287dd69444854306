"""What ``--proxy`` routes take away from the site: the targets a backend answers,
and every other spelling of a file in a folder a route's prefix names.

Invariants:
- The site never answers a target a route claims, nor one whose file lies in a
  routed folder however it is spelled (``api/x``, ``/api%2Fx``, ``/API/x`` on a
  case-insensitive file system): the router reads the target as sent, the file
  mapper decodes it, and a gap between the two must never serve a hidden file.
- A target a route claims but will not forward (a dot segment a backend could
  read, `devserve._proxy.hides_dot_segment`) is refused (400), never served.
"""

from __future__ import annotations

import os
from http import HTTPStatus

from devserve._paths import is_within, url_to_fs_path
from devserve._protocol import ProtocolError
from devserve._proxy import BadTarget, Routes


class RoutedTargets:
    """The site's view of the ``--proxy`` routes."""

    def __init__(self, routes: Routes, root: str, reserved: str | None) -> None:
        self.routes = routes
        self.root = root
        self.reserved = reserved  # live reload's own URL folder: never a file
        # The folders the prefixes name, case-folded: what `hides` hides.
        self._folders = tuple(
            os.path.normcase(url_to_fs_path(route.path_key or "/", root)).casefold()
            for route in routes.routes
        )

    def takes(self, target: str) -> bool:
        """Whether the site must leave ``target`` to a thread: a route forwards it, or
        it spells a file in a routed folder (which the thread refuses)."""
        return self.routes.claims(target) or self.hides(target)

    def refusal(self, target: str) -> ProtocolError | None:
        """Why a target is refused (400) because of the routes, or None."""
        try:
            if self.routes.forward(target) is not None:
                return None
        except BadTarget as error:
            return ProtocolError(HTTPStatus.BAD_REQUEST, "Bad request target", str(error))
        if self.hides(target):
            return ProtocolError(
                HTTPStatus.BAD_REQUEST,
                "Bad request target",
                f"{target!r} reaches a folder a --proxy route hides",
            )
        return None

    def hides(self, target: str) -> bool:
        """Whether the file ``target`` maps to is in a folder a route's prefix names.

        The router matches the target as sent (``/api%2Fx`` and ``api/x`` match no
        prefix); the file mapper decodes it (both are ``./api/x``). A target that a
        route does not take but whose file is below a routed prefix is refused, so a
        spelling never serves a file the route hides; with ``/`` routed, that is every
        file. Compared case-folded: on a case-insensitive file system (macOS,
        Windows) ``/API/x`` is ``./api/x`` though ``/api`` does not match it; on a
        case-sensitive one this also refuses a folder that differs from a routed
        prefix only in case. Live reload's own paths are never files.
        """
        if self.reserved is not None and target.startswith(self.reserved):
            return False
        path = os.path.normcase(url_to_fs_path(target, self.root)).casefold()
        return any(is_within(path, folder) for folder in self._folders)
