"""A real backend for the --proxy tests and bench: a small ASGI app under uvicorn.

Run as ``python -m tests.proxy_backend``: it binds 127.0.0.1 port 0 itself and
prints the port it got on the first line of stdout (``--tls CERT KEY``: it
speaks HTTPS). What it answers:

- ``/echo...``: JSON of what it received (method, target, headers, the body's
  length and SHA-256, the client port: one port per connection devserve opened).
- ``/log``: every target received so far, with its client port.
- ``/stream?n=N``: N pieces, chunked. ``/big?size=N``: N bytes with a length.
- ``/sse``: an event stream; the second event waits for a GET of ``/release``.
- ``/slow?s=S``: answers after S seconds. ``/cut``: promises 1000 bytes, sends
  100, then fails (uvicorn closes the connection mid-response).
- ``/page``, ``/gzip-page``: HTML (the second gzip-encoded); ``/redirect``: a
  302 to the backend's own absolute URL; ``/refuse``: 413 without reading the body.
- ``/ws``: a WebSocket echo.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import sys
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

LOG: list[dict[str, Any]] = []
RELEASE: asyncio.Event | None = None
PORT = 0
PAGE = (
    b"<!doctype html><html><head><title>backend</title></head>"
    b"<body><h1>from the backend</h1></body></html>"
)


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        piece: bytes = message.get("body", b"")
        body += piece
        if not message.get("more_body"):
            return body


async def _answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    fields = headers if headers is not None else [(b"content-type", b"application/json")]
    fields = [*fields, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global RELEASE
    if scope["type"] == "lifespan":
        return
    path = scope["path"]
    query = urllib.parse.parse_qs(scope["query_string"].decode())
    client_port = scope["client"][1] if scope.get("client") else 0
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    if scope["type"] == "websocket":
        LOG.append({"target": target, "port": client_port})
        await _echo_websocket(receive, send)
        return
    if path != "/log":
        LOG.append({"target": target, "port": client_port})
    if RELEASE is None:
        RELEASE = asyncio.Event()
    if path.startswith("/echo"):
        body = await _read_body(receive)
        report = {
            "method": scope["method"],
            "target": target,
            "http_version": scope["http_version"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "port": client_port,
        }
        await _answer(send, 200, json.dumps(report).encode())
    elif path == "/log":
        await _answer(send, 200, json.dumps(LOG).encode())
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(int(query.get("n", ["3"])[0])):
            part = f"part {index}\n".encode()
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        size = int(query["size"][0])
        headers = [(b"content-type", b"application/octet-stream")]
        headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = b"x" * (256 * 1024)
        while size > 0:
            piece = block[: min(size, len(block))]
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
    elif path == "/sse":
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        await asyncio.wait_for(RELEASE.wait(), 30)
        RELEASE.clear()
        await send({"type": "http.response.body", "body": b"data: two\n\n"})
    elif path == "/release":
        RELEASE.set()
        await _answer(send, 200, b"{}")
    elif path == "/slow":
        await asyncio.sleep(float(query.get("s", ["2"])[0]))
        await _answer(send, 200, b"{}")
    elif path == "/cut":
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"y" * 100, "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("the backend fails mid-response (on purpose)")
    elif path == "/page":
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"etag", b'"v1"'),
            (b"cache-control", b"max-age=600"),
        ]
        await _answer(send, 200, PAGE, headers)
    elif path == "/gzip-page":
        headers = [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")]
        await _answer(send, 200, gzip.compress(PAGE, mtime=0), headers)
    elif path == "/redirect":
        location = f"http://127.0.0.1:{PORT}/echo/next".encode()
        await _answer(send, 302, b"", [(b"location", location)])
    elif path == "/refuse":
        await _answer(send, 413, b"too large", [(b"content-type", b"text/plain")])
    else:
        await _answer(send, 404, b"no such thing", [(b"content-type", b"text/plain")])


async def _echo_websocket(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            reply: dict[str, Any] = {"type": "websocket.send"}
            if message.get("text") is not None:
                reply["text"] = message["text"]
            else:
                reply["bytes"] = message["bytes"]
            await send(reply)
        else:
            return


def main() -> None:
    import uvicorn

    global PORT
    # proto given: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    # (else Nagle holds each body write until the previous one is acknowledged).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    PORT = sock.getsockname()[1]
    print(PORT, flush=True)
    tls = sys.argv[1:2] == ["--tls"]  # --tls CERT KEY: https://
    config = uvicorn.Config(
        app,
        ssl_certfile=sys.argv[2] if tls else None,
        ssl_keyfile=sys.argv[3] if tls else None,
        log_level="critical",
        lifespan="off",
        timeout_keep_alive=30,
        access_log=False,
        proxy_headers=False,  # the tests read what devserve sent, untouched
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
