"""The response stream: one write for headers and a small body, sendfile for large ones.

`SocketWriter` is the handler's ``wfile``: every ``write`` goes to the socket at
once (handlers that stream keep working), except that header bytes *held* by
`hold` wait for the next write or flush and leave in the same packet. That avoids
the Nagle/delayed-ACK stall of a header write followed by a body write without
delaying anything a handler writes itself.

Bodies of regular files go out with ``socket.sendfile`` (zero-copy where the
kernel and socket allow, plain sends under TLS), so memory stays flat whatever
the file size.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

from devserve._protocol import ByteRange

if TYPE_CHECKING:
    from typing_extensions import Buffer

try:
    import ssl
except ImportError:  # a Python built without it: everything but HTTPS still works
    HAVE_SSL = False
else:
    HAVE_SSL = True

# A client that went away mid-response; its connection is closed without a word.
CLIENT_GONE: tuple[type[BaseException], ...] = (
    (ConnectionError, TimeoutError, ssl.SSLError) if HAVE_SSL else (ConnectionError, TimeoutError)
)


# A TLS socket with nothing to give yet (a record that carried no application data).
TLS_WOULD_BLOCK: tuple[type[BaseException], ...] = (
    (ssl.SSLWantReadError, ssl.SSLWantWriteError) if HAVE_SSL else ()
)


def is_tls(sock: object) -> bool:
    """Whether ``sock`` is a TLS socket."""
    return HAVE_SSL and isinstance(sock, ssl.SSLSocket)


# A file a body is read from: a stdlib file object or our OpenFile.
Readable = BinaryIO | io.RawIOBase

# Files up to this size are read and sent with the headers in one write; larger
# ones go through sendfile after the headers.
SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024


class TruncatedBody(ConnectionAbortedError):
    """The file changed under the response: fewer bytes than promised were sent.

    The connection must close, or the client would wait for the missing bytes.
    """


class SocketWriter(io.BufferedIOBase):
    """A write-through binary stream over a socket that can hold header bytes back."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._held: list[bytes] = []
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def hold(self, data: bytes) -> None:
        """Keep ``data`` until the next write or flush, to leave together with it."""
        self._held.append(data)

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        size = view.nbytes
        if self._held:
            held = b"".join(self._held)
            self._held.clear()
            if size <= SMALL_BODY:
                self._send(held + view.tobytes())
                return size
            self._send(held)
        self._send(view)
        return size

    def flush(self) -> None:
        if self._held:
            held = b"".join(self._held)
            self._held.clear()
            self._send(held)

    def _send(self, data: Buffer) -> None:
        self._sock.sendall(data)
        self.bytes_written += memoryview(data).nbytes

    def send_file(self, file: Readable, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` from ``offset``; small ones with the held headers."""
        if isinstance(file, MemoryFile):
            self.write(file.view()[offset : offset + count])
            return
        if count <= SMALL_BODY:
            data = os.pread(file.fileno(), count, offset)
            if len(data) < count:
                raise TruncatedBody(f"file shrank before it was sent ({len(data)} of {count})")
            self.write(data)
            return
        self.flush()
        sent = self._sock.sendfile(cast(BinaryIO, file), offset, count)
        self.bytes_written += sent
        if sent < count:
            raise TruncatedBody(f"file shrank while being sent ({sent} of {count} bytes)")

    def send_body(self, source: object, size: int | None = None) -> None:
        """Send a body as efficiently as its kind allows (the default ``copyfile``).

        ``size`` is the size of a regular file just opened (position 0), when known.
        """
        if isinstance(source, FileSlice):
            self.send_file(source.file, source.offset, source.length)
        elif isinstance(source, MultipartBody):
            for part in source.parts:
                if isinstance(part, FileSlice):
                    self.send_file(part.file, part.offset, part.length)
                else:
                    self.write(part)
        elif isinstance(source, (OpenFile, io.BufferedReader)) and size is not None:
            self.send_file(source, 0, size)
        elif isinstance(source, io.BufferedReader) and _is_regular(source):
            position = source.tell()
            size = os.fstat(source.fileno()).st_size
            self.send_file(cast(BinaryIO, source), position, max(0, size - position))
        else:
            shutil.copyfileobj(cast(BinaryIO, source), self, CHUNK)


def _is_regular(file: io.BufferedReader) -> bool:
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):
        return False


class OpenFile(io.RawIOBase):
    """A readable, seekable binary file over a descriptor that is already open.

    ``open(fd, "rb")`` would fstat and ioctl the descriptor again (each syscall a
    GIL round trip on a busy server); the caller has already looked at it.
    """

    def __init__(self, fd: int, name: str) -> None:
        super().__init__()
        self._fd = fd
        self.name = name
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: Buffer) -> int:
        return os.readv(self._fd, [buffer])

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


class MemoryFile(OpenFile):
    """An OpenFile whose contents are already in memory (a cached small file)."""

    def __init__(self, data: bytes, name: str) -> None:
        io.RawIOBase.__init__(self)
        self._data = memoryview(data)
        self._position = 0
        self.name = name
        self.mode = "rb"

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a cached file has no descriptor")

    def view(self) -> memoryview:
        """The whole contents, without a copy."""
        return self._data

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer)
        chunk = self._data[self._position : self._position + view.nbytes]
        view[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: len(self._data)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        io.RawIOBase.close(self)


def file_reader(fd: int | None, data: bytes | None, name: str) -> OpenFile:
    """An `OpenFile` on a file found on disk: its open descriptor, or its cached bytes."""
    if fd is not None:
        return OpenFile(fd, name)
    assert data is not None
    return MemoryFile(data, name)


class FileSlice(io.RawIOBase):
    """A readable view of ``length`` bytes of an open file from ``offset`` (a range body).

    It reads like a file, so a subclass's ``copyfile`` works on it unchanged; the
    default ``copyfile`` sends it with sendfile instead.
    """

    def __init__(self, file: Readable, offset: int, length: int) -> None:
        super().__init__()
        self.file = file
        self.offset = offset
        self.length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer)
        remaining = self.length - self._position
        if remaining <= 0:
            return 0
        self.file.seek(self.offset + self._position)
        data = self.file.read(min(view.nbytes, remaining))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.file.close()
        super().close()


class MultipartBody(io.RawIOBase):
    """A multipart/byteranges body: delimiter and header bytes between file slices."""

    def __init__(self, parts: Sequence[bytes | FileSlice], file: Readable) -> None:
        super().__init__()
        self.parts = list(parts)
        self._file = file
        self._index = 0
        self._pending = b""

    @property
    def length(self) -> int:
        return sum(p.length if isinstance(p, FileSlice) else len(p) for p in self.parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer)
        while not self._pending and self._index < len(self.parts):
            part = self.parts[self._index]
            if isinstance(part, FileSlice):
                self._pending = part.read(min(view.nbytes, CHUNK)) or b""
                if not self._pending:
                    self._index += 1
            else:
                self._pending = part
                self._index += 1
        count = min(view.nbytes, len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def layout_body(
    f: OpenFile, parts: tuple[bytes | ByteRange, ...], size: int
) -> OpenFile | FileSlice | MultipartBody | None:
    """The body to copy for a response whose layout is ``parts`` over the file ``f``.

    The whole file is ``f`` itself; one range is a `FileSlice`; several, with
    their delimiter bytes, a `MultipartBody`. None: there is no body.
    """
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], ByteRange):
        only = parts[0]
        if only.first == 0 and only.length == size:
            return f
        return FileSlice(f, only.first, only.length)
    return MultipartBody(
        [FileSlice(f, p.first, p.length) if isinstance(p, ByteRange) else p for p in parts], f
    )


class ReplayedInput(io.RawIOBase):
    """A socket's input with bytes already read from it (by the event loop) put back first.

    The handler's ``rfile`` is a buffered reader over this, so it reads a request
    the loop started receiving exactly as if it came straight from the socket.
    """

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._socket_io = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._socket_io.fileno()

    def readinto(self, buffer: Buffer) -> int | None:
        if self._prefix:
            view = memoryview(buffer).cast("B")
            count = min(len(view), len(self._prefix))
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._socket_io.readinto(buffer)

    def unread(self) -> bytes:
        """The put-back bytes not read yet."""
        return self._prefix.tobytes()

    def close(self) -> None:
        if not self.closed:
            self._socket_io.close()
        super().close()


def unread_input(reader: object, sock: socket.socket, timeout: float | None) -> bytes | None:
    """Bytes the client sent that ``reader`` (a handler's ``rfile``) holds unread.

    Reads the socket only if it has data ready, never waiting. None when the
    reader's buffer cannot be looked into (then the connection stays with its thread).
    """
    if not isinstance(reader, io.BufferedReader):
        return None
    try:
        sock.settimeout(0.0)
        try:
            data = reader.peek(1)
        finally:
            sock.settimeout(timeout)
    except (OSError, ValueError):
        return None
    raw = reader.raw
    if isinstance(raw, ReplayedInput):
        data += raw.unread()
    return bytes(data)
