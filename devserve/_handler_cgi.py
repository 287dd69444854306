"""CGIHTTPRequestHandler: the CGI/1.1 gateway (RFC 3875).

Part of the documented API re-exported by `devserve.server`; see there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import IO, Any, NamedTuple, cast

from devserve import _cgi
from devserve._handler_base import Body
from devserve._handler_static import SimpleHTTPRequestHandler
from devserve._io import is_tls
from devserve._paths import may_serve
from devserve._protocol import MAX_LINE, BodyTooLarge, build_message
from devserve._scripts import ScriptGroup, ScriptOutput, ScriptRun, ScriptStdout, unmarked_run


class ScriptFound(NamedTuple):
    """The script a CGI request runs: its file and how the URL splits around it."""

    path: str
    where: _cgi.ScriptLocation


class ScriptRefused(NamedTuple):
    """Why a CGI request runs no script: the status and message it is answered with."""

    status: int
    message: str


def find_script(
    target: str, directory: str, translate: Callable[[str], str], allowed: Callable[[str], bool]
) -> ScriptFound | ScriptRefused:
    """The script ``target`` (below the CGI ``directory``) runs, or why none (404, 403).

    ``translate`` maps a URL path to the disk (the handler's ``translate_path``);
    ``allowed`` is the hidden-file and symlink policy. `devserve check` asks this too.
    """

    def fs_path(decoded_url: str) -> str:
        return translate(_cgi.url_for_decoded(decoded_url))

    where = _cgi.locate_script(target, directory, lambda url: os.path.isdir(fs_path(url)))
    if where is None:
        return ScriptRefused(HTTPStatus.NOT_FOUND, "No such CGI script")
    scriptfile = fs_path(where.script_name)
    if not allowed(scriptfile) or not os.path.exists(scriptfile):
        return ScriptRefused(HTTPStatus.NOT_FOUND, f"No such CGI script ({where.script_name!r})")
    if not os.path.isfile(scriptfile):
        return ScriptRefused(
            HTTPStatus.FORBIDDEN, f"CGI script is not a plain file ({where.script_name!r})"
        )
    return ScriptFound(scriptfile, where)


def nobody_uid() -> int:
    """The uid scripts run as when the server runs as root."""
    return _cgi.nobody_uid()


def executable(path: str) -> bool:
    """Whether ``path`` is executable (any execute bit)."""
    return _cgi.is_executable(path)


def script_base_env(pass_env: tuple[str, ...] | None) -> Mapping[str, str]:
    """The server's variables a script starts from: all of them (None), or those named.

    `_cgi.cgi_environment` adds the request's on top. `devserve check` asks this too.
    """
    if pass_env is None:
        return os.environ
    return {name: os.environ[name] for name in pass_env if name in os.environ}


def script_user(server_is_root: bool | None = None) -> tuple[int, int] | None:
    """(uid, gid) a script runs as, with no other groups; None: the server's own user.

    A server running as root (``server_is_root`` None: this process) drops every
    privilege: nobody's uid and group, and none of root's groups. `devserve
    check` asks this too.
    """
    if server_is_root is None:
        server_is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (nobody_uid(), _cgi.nobody_gid()) if server_is_root else None


class CGIHTTPRequestHandler(SimpleHTTPRequestHandler):
    """Serve files, or the output of CGI scripts below ``cgi_directories`` (documented).

    Unlike the stdlib's, the script's own header block is parsed: ``Status:`` and
    ``Location:`` work, a script with broken headers gets 502, and the body is
    framed so HTTP/1.1 keep-alive survives.
    """

    cgi_directories: list[str] = ["/cgi-bin", "/htbin"]  # noqa: RUF012 (documented)
    have_fork = hasattr(os, "fork")
    # The stdlib reads unbuffered because its forked child inherits the socket as
    # stdin; the body reaches our scripts through a pipe, so buffering is safe.
    rbufsize = -1
    # devserve's gateway settings; the defaults keep the documented behaviour.
    cgi_timeout: float | None = None  # seconds a script may run
    # The server's record of scripts it started (marked, so that even descendants
    # that left the script's process group can be ended); None: no record.
    cgi_scripts: ScriptGroup | None = None
    cgi_max_body: int | None = None  # larger request bodies get 413
    # None passes the server's whole environment (as the stdlib does); a tuple
    # passes only those names.
    cgi_pass_env: tuple[str, ...] | None = None
    cgi_extra_env: Mapping[str, str] = {}
    # Hand the Authorization field to scripts as HTTP_AUTHORIZATION (unverified).
    cgi_pass_authorization = False
    cgi_info: tuple[str, str]
    # devserve's site answers as this class does (see devserve._loop.reproduces).
    _site_base = True
    _redirects = 0

    def do_POST(self) -> None:
        """Run a CGI script, or refuse with 501 outside CGI directories (documented)."""
        if self.is_cgi():
            self.answered_by = "cgi"
            self.run_cgi()
        else:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Can only POST to CGI scripts")

    def send_head(self) -> Body | None:
        """Run the script for CGI paths, else serve the file (documented)."""
        if self.is_cgi():
            self.answered_by = "cgi"
            self.run_cgi()
            return None
        return super().send_head()

    def handle_expect_100(self) -> bool:
        """Say 100 Continue only for a body the gateway will accept (documented hook).

        A body over ``cgi_max_body``, or in a transfer coding the gateway cannot
        read, gets its final status at once instead of an invitation to upload it.
        """
        if self.is_cgi():
            coding = self.headers.get("Transfer-Encoding")
            if coding is not None and coding.strip().lower() != "chunked":
                self.close_connection = True
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported transfer coding {coding!r}"
                )
                return False
            length = (self.headers.get("Content-Length") or "").strip()
            limit = self.cgi_max_body
            if limit is not None and length.isdigit() and int(length) > limit:
                self.close_connection = True
                self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request body too large")
                return False
        return super().handle_expect_100()

    def is_cgi(self) -> bool:
        """Whether the path is in a CGI directory; sets ``cgi_info`` (documented)."""
        found = _cgi.find_cgi_directory(_cgi.collapse_url_path(self.path), self.cgi_directories)
        if found is None:
            return False
        self.cgi_info = found
        return True

    def _may_run(self, scriptfile: str) -> bool:
        """Whether the hidden-file and symlink policies let ``scriptfile`` be run."""
        return may_serve(scriptfile, self.directory, self.follow_symlinks, self.show_hidden)

    def is_executable(self, path: str) -> bool:
        """Whether ``path`` is executable (documented)."""
        return executable(path)

    def is_python(self, path: str) -> bool:
        """Whether ``path`` is a Python script, by suffix (documented)."""
        return _cgi.is_python_script(path)

    def run_cgi(self) -> None:
        """Run the CGI script and relay its reply (documented)."""
        directory, _ = self.cgi_info

        def fs_path(decoded_url: str) -> str:
            return self.translate_path(_cgi.url_for_decoded(decoded_url))

        found = find_script(self.path, directory, self.translate_path, self._may_run)
        if isinstance(found, ScriptRefused):
            self.send_error(found.status, found.message)
            return
        scriptfile, where = found
        ispy = self.is_python(where.script_name)
        # The documented rule: where fork exists every script must be executable;
        # elsewhere Python scripts run through the interpreter.
        if (self.have_fork or not ispy) and not self.is_executable(scriptfile):
            self.send_error(
                HTTPStatus.FORBIDDEN, f"CGI script is not executable ({where.script_name!r})"
            )
            return

        body = self._request_body()
        if body is None:
            return
        source, length = body
        facts = _cgi.RequestFacts(
            method=str(self.command),
            protocol=self.protocol_version,
            script_name=where.script_name,
            path_info=where.path_info,
            path_translated=fs_path(where.path_info),
            query=where.query,
            remote_addr=str(self.client_address[0]),
            server_name=str(getattr(self.server, "server_name", "")),
            server_port=int(getattr(self.server, "server_port", 0)),
            server_software=self.version_string(),
            headers=self.headers,
            https=is_tls(self.connection),
            content_length=length if length or self._has_body() else None,
            extra=self.cgi_extra_env,
            auth=self._script_auth(),
            pass_authorization=self.cgi_pass_authorization,
        )
        env = _cgi.cgi_environment(facts, script_base_env(self.cgi_pass_env))
        args = [scriptfile]
        if not self.have_fork and ispy:
            args = [sys.executable, "-u", scriptfile]
        decoded_query = where.query.replace("+", " ")
        if "=" not in decoded_query and decoded_query:
            args.append(decoded_query)
        nph = os.path.basename(scriptfile).startswith("nph-")
        try:
            redirect = self._run_script(args, env, source, length, os.path.dirname(scriptfile), nph)
        finally:
            if source is not cast(IO[bytes], self.rfile):
                source.close()
        if redirect is not None:
            self._internal_redirect(redirect)

    def _script_auth(self) -> tuple[str, str | None] | None:
        """(AUTH_TYPE, REMOTE_USER) for the script.

        The documented gateway names the user of any ``Authorization: Basic``
        field, unverified, as the stdlib does; devserve's own handler overrides
        this to name only users it verified itself.
        """
        auth_type, user = _cgi.basic_auth_user(self.headers.get("authorization"))
        return (auth_type, user) if auth_type else None

    def _has_body(self) -> bool:
        return "content-length" in self.headers or "transfer-encoding" in self.headers

    def _request_body(self) -> tuple[IO[bytes], int] | None:
        """Where the request body comes from and its length; answers errors itself.

        A chunked body is de-chunked into a spooled temporary file (memory up to
        1 MiB, disk beyond), because the script must be told CONTENT_LENGTH first.
        """
        rfile = cast(IO[bytes], self.rfile)
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            if coding.strip().lower() != "chunked":
                self.close_connection = True
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported transfer coding {coding!r}"
                )
                return None
            spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
            try:
                length = _cgi.dechunk(rfile, cast(IO[bytes], spool), self.cgi_max_body)
            except BodyTooLarge:
                spool.close()
                self.close_connection = True
                self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request body too large")
                return None
            except (ValueError, OSError):
                spool.close()
                self.close_connection = True
                self.send_error(HTTPStatus.BAD_REQUEST, "Malformed chunked request body")
                return None
            spool.seek(0)
            return cast(IO[bytes], spool), length
        value = self.headers.get("Content-Length")
        if value is None:
            return rfile, 0
        value = value.strip()
        if not value.isdigit():
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return None
        length = int(value)
        if self.cgi_max_body is not None and length > self.cgi_max_body:
            self.close_connection = True
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request body too large")
            return None
        return rfile, length

    def _launch(
        self, args: list[str], env: dict[str, str], cwd: str
    ) -> subprocess.Popen[bytes] | None:
        """Start the script; answer 403/500 saying why when it cannot be started."""
        identity: dict[str, Any] = {}
        user = script_user()
        if user is not None:
            identity = {"user": user[0], "group": user[1], "extra_groups": []}
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
                **identity,
            )
        except PermissionError as error:
            self.log_error("CGI script %s: permission denied (%s)", args[0], error.strerror)
            self.send_error(HTTPStatus.FORBIDDEN, "CGI script could not be run: permission denied")
        except FileNotFoundError:
            why = f"interpreter not found: {_cgi.shebang(args[0]) or '?'}"
            self.log_error("CGI script %s: %s", args[0], why)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"CGI script could not be run: {why}")
        except OSError as error:
            why = error.strerror or str(error)
            if error.errno == errno.ENOEXEC:
                why = "not a program (no #! line?)"
            self.log_error("CGI script %s: %s", args[0], why)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"CGI script could not be run: {why}")
        return None

    def _run_script(
        self,
        args: list[str],
        env: dict[str, str],
        source: IO[bytes],
        length: int,
        cwd: str,
        nph: bool,
    ) -> str | None:
        """Run the script and relay its reply; returns a local redirect's path, if any."""
        group = self.cgi_scripts
        run = group.new_run(env) if group is not None else unmarked_run()
        process = self._launch(args, env, cwd)
        if process is None:
            run.finished()
            if source is cast(IO[bytes], self.rfile) and length:
                self.close_connection = True  # the body was not read
            return None
        run.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        stdout = ScriptStdout(process.stdout, run)
        body = _BodyFeeder(source, process.stdin, length)
        feeder = threading.Thread(target=body.run, daemon=True)
        feeder.start()
        errors: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
        reader.start()
        timed_out = threading.Event()
        watchdog = None
        if self.cgi_timeout is not None:
            watchdog = threading.Timer(self.cgi_timeout, _expire, (run, timed_out))
            watchdog.daemon = True
            watchdog.start()
        relayed = threading.Event()
        threading.Thread(
            target=_reap_orphans, args=(run, relayed), name="devserve-cgi-orphans", daemon=True
        ).start()
        redirect = None
        try:
            if nph:
                self._relay_raw(stdout)
            else:
                redirect = self._relay_reply(stdout, timed_out)
        finally:
            relayed.set()
            stdout.close()
            status = process.wait()
            run.finished()
            if watchdog is not None:
                watchdog.cancel()
            # stderr ends with the script, unless something that escaped an ended
            # run still holds it: then it is not waited for.
            reader.join(0.5 if run.ended.is_set() else 5)
            feeder.join(_BODY_GRACE)
            if feeder.is_alive() or not body.complete:
                # Unread body bytes would be taken for the next request (smuggling):
                # this connection cannot be reused.
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RD)
                feeder.join(5)
            for line in b"".join(errors).decode("utf-8", "replace").splitlines():
                self.log_error("CGI script: %s", line)
            if timed_out.is_set():
                self.close_connection = True
                self.log_error(
                    "CGI script %s timed out after %s s and was killed", args[0], self.cgi_timeout
                )
            elif status:
                self.log_error("CGI script exit code %d", status)
        return redirect

    def _relay_raw(self, stdout: ScriptOutput) -> None:
        """An nph- script writes the whole response itself; pass it through untouched."""
        self.close_connection = True
        first = stdout.readline(MAX_LINE + 1)
        words = first.split()
        if len(words) >= 2 and words[1].isdigit():
            self._status = int(words[1])
        self.wfile.write(first)
        while data := _read_some(stdout):
            self.wfile.write(data)

    def _relay_reply(self, stdout: ScriptOutput, timed_out: threading.Event) -> str | None:
        """Parse the script's header block and relay its reply; returns a local redirect."""
        block = bytearray()
        line = b""
        while len(block) <= MAX_LINE:
            line = stdout.readline(MAX_LINE + 1)
            if not line or line in (b"\r\n", b"\n"):
                break
            block += line
        if not line or len(block) > MAX_LINE:
            if timed_out.is_set():
                self.send_error(HTTPStatus.GATEWAY_TIMEOUT, "CGI script timed out")
            else:
                self.send_error(HTTPStatus.BAD_GATEWAY, "CGI script did not send a header block")
            return None
        try:
            reply = _cgi.parse_script_headers(bytes(block))
        except _cgi.ScriptReplyError as error:
            self.log_error("%s", str(error))
            self.send_error(HTTPStatus.BAD_GATEWAY, "CGI script sent malformed headers")
            return None
        if reply.is_local_redirect:
            return reply.location
        self.send_response(reply.status, reply.reason)
        length = reply.header("content-length")
        chunked = (
            length is None
            and self.request_version >= "HTTP/1.1"
            and self.protocol_version >= "HTTP/1.1"
            and self.command != "HEAD"
            and reply.status not in (204, 304)
        )
        for name, value in reply.headers:
            if name.lower() not in ("connection", "transfer-encoding"):
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return None
        while data := _read_some(stdout):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            if timed_out.is_set():
                self.close_connection = True  # no last chunk: the client sees the cut
            else:
                self.wfile.write(b"0\r\n\r\n")
        return None

    def _internal_redirect(self, location: str) -> None:
        """Serve a script's local ``Location: /path`` as a GET of that path (RFC 3875 6.2.2)."""
        depth = self._redirects
        if depth >= _MAX_LOCAL_REDIRECTS:
            self.send_error(HTTPStatus.LOOP_DETECTED, "Too many local redirects from CGI scripts")
            return
        self._redirects = depth + 1
        try:
            self.command, self.path = "GET", location
            kept = [
                (name, value)
                for name, value in self.headers.items()
                if name.lower() not in ("content-length", "transfer-encoding", "content-type")
            ]
            self.headers = build_message(self.MessageClass, kept)
            if self.is_cgi():
                self.run_cgi()
                return
            f = self.send_head()
            if f:
                try:
                    self.copyfile(f, self.wfile)
                finally:
                    f.close()
        finally:
            self._redirects = depth


_MAX_LOCAL_REDIRECTS = 5


def _read_some(stream: ScriptOutput) -> bytes:
    """What the script has written so far (up to 64 KiB), waiting only for the first byte."""
    return stream.read1(65536)


# Seconds a script's own process may be gone while something it started still
# holds its stdout open; then that is ended too (its group, and what carries its mark).
_ORPHAN_GRACE = 1.0


def _reap_orphans(run: ScriptRun, relayed: threading.Event) -> None:
    """A script that forked and exited must not hold the response open for ever."""
    assert run.process is not None
    run.process.wait()
    if not relayed.wait(_ORPHAN_GRACE):
        run.end()


def _expire(run: ScriptRun, timed_out: threading.Event) -> None:
    """The watchdog: the script ran too long; end it and everything it started."""
    timed_out.set()
    run.end()


# Seconds to wait, once the script is done, for the rest of a request body it
# did not read; after that the connection is closed instead of reused.
_BODY_GRACE = 2.0


class _BodyFeeder:
    """Streams the request body to the script, then discards what it did not read.

    Reading the whole body keeps the connection reusable even when the script
    ignores its input; ``complete`` says whether every promised byte was read.
    """

    def __init__(self, source: IO[bytes], sink: IO[bytes], length: int) -> None:
        self.source = source
        self.sink: IO[bytes] | None = sink
        self.remaining = length
        self.complete = length == 0

    def run(self) -> None:
        try:
            while self.remaining > 0:
                data = self.source.read(min(self.remaining, 65536))
                if not data:
                    break
                self.remaining -= len(data)
                if self.sink is not None:
                    try:
                        self.sink.write(data)
                    except OSError:  # the script closed its stdin: keep draining
                        self._close_sink()
            self.complete = self.remaining == 0
        except (OSError, ValueError):
            pass
        finally:
            self._close_sink()

    def _close_sink(self) -> None:
        if self.sink is not None:
            with contextlib.suppress(OSError):
                self.sink.close()
            self.sink = None


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    """Collect a script's stderr (bounded), so a chatty script cannot block on it."""
    kept = 0
    for chunk in iter(lambda: stream.read(4096), b""):
        if kept < 64 * 1024:
            into.append(chunk)
            kept += len(chunk)
    stream.close()
