"""The production entry point: the Django WSGI application behind two ASGI layers, served by
gunicorn's asyncio worker (console/worker.py), so that slow clients cost connections, never threads.

Why not gunicorn's sync or threaded workers: a worker thread reads the request and writes the
answer itself, so a client that sends its request slowly, or reads its answer slowly, holds that
thread for as long as it likes, and a handful of such clients hold every thread of a deployment,
with no sign-in needed. Here the event loop reads requests and writes answers; threads only run
the application, on a request already received, into an answer already taken:

- `BufferedRequests` receives each body whole, within REQUEST_BODY_TIMEOUT_SECONDS (else 408),
  refusing one over DATA_UPLOAD_MAX_MEMORY_SIZE by its Content-Length, before reading it, or as
  soon as that much has arrived (413).
- `SpooledWSGI` runs the application in one of GUNICORN_THREADS threads and takes its answer whole
  there: an answer in memory as it is, a streamed one (an audit export, a static file) into a
  temporary file (in memory up to SPOOL_MEMORY_BYTES). The thread is free before a byte is sent;
  the loop then sends the answer, and drops a client that takes nothing for
  RESPONSE_SEND_TIMEOUT_SECONDS.

Why not a2wsgi's WSGIMiddleware (used before; its `build_environ` is still used): it sends each
part of the answer from the application's thread, which waits for the client to take it, and a
client that stopped reading left that thread blocked for good. Why not Django's own ASGI handler:
it hops threads for each synchronous middleware, which costs more than the whole runner read.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ
from django.conf import settings

from console.wsgi import application as wsgi_application
from secrets_app.error_responses import request_too_large_message

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A streamed answer is kept in memory up to this size, on disk beyond it.
SPOOL_MEMORY_BYTES = 1024 * 1024
SEND_CHUNK_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


class BufferedRequests:
    """ASGI middleware: the whole request body is received, within a deadline and a size limit,
    before the application is called. 413 for a body over the limit (by its Content-Length, before
    reading it, or while reading it); 408 for one that does not arrive in time. Both answer the
    JSON error envelope under /api/ and plain text elsewhere, and close the connection."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, send, 413, "request_too_large", request_too_large_message())
            return
        try:
            body = await asyncio.wait_for(self._body(receive), self.timeout)
        except _TooLarge:
            await self._refuse(scope, send, 413, "request_too_large", request_too_large_message())
            return
        except TimeoutError:
            await self._refuse(
                scope, send, 408, "request_timeout", f"The request body did not arrive within {self.timeout:g} s."
            )
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise TimeoutError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        if scope["path"].startswith("/api/"):
            content_type, body = b"application/json", json.dumps({"error": {"code": code, "message": message}})
        else:
            content_type, body = b"text/plain; charset=utf-8", message
        encoded = body.encode()
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(encoded)).encode()),
            (b"connection", b"close"),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})


class _Answer:
    """A WSGI application's answer, taken whole: status, headers, and the body in memory or in a
    temporary file."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes | Any) -> None:
        self.status, self.headers, self.body = status, headers, body

    def chunks(self) -> Iterable[bytes]:
        if isinstance(self.body, bytes):
            yield self.body
            return
        while chunk := self.body.read(SEND_CHUNK_BYTES):
            yield chunk

    def close(self) -> None:
        if not isinstance(self.body, bytes):
            self.body.close()


class SpooledWSGI:
    """ASGI application that runs a WSGI application in a pool of `threads` and sends its answer
    from the event loop (see the module's docstring). The request body is what the ASGI server
    gives in one message (`BufferedRequests` before this one makes it so)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *, threads: int, send_timeout: float) -> None:
        self.app, self.send_timeout = app, send_timeout
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="console")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        message = await receive()
        environ = build_environ(scope, io.BytesIO(message.get("body", b"")))
        running = asyncio.get_running_loop().run_in_executor(self.executor, self._answer, environ)
        try:
            answer = await asyncio.shield(running)
        except asyncio.CancelledError:
            # The client went away while the application ran: its answer is dropped when done.
            running.add_done_callback(_close_answer)
            raise
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            for chunk in answer.chunks():
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": chunk, "more_body": True}), self.send_timeout
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            # The client takes nothing: stop; the server closes the connection of an unfinished answer.
            return
        finally:
            answer.close()

    def _answer(self, environ: dict[str, Any]) -> _Answer:
        """In a thread: run the application and take its whole answer, then close it (which ends
        Django's request: its database connection goes back with the thread)."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        result = self.app(environ, start_response)
        try:
            if getattr(result, "streaming", True):
                body: bytes | Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
                body.writelines(written)
                for chunk in result:
                    body.write(chunk)
                body.seek(0)
            else:
                body = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return _Answer(int(status.split(" ", 1)[0]), encoded, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _close_answer(running: asyncio.Future) -> None:
    if not running.cancelled() and running.exception() is None:
        running.result().close()


application = BufferedRequests(
    SpooledWSGI(
        wsgi_application,
        threads=int(os.environ.get("GUNICORN_THREADS", 2)),
        send_timeout=settings.RESPONSE_SEND_TIMEOUT_SECONDS,
    ),
    max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    timeout=settings.REQUEST_BODY_TIMEOUT_SECONDS,
)
