"""The production entry point: the Django WSGI application, served by gunicorn's asyncio (ASGI)
worker through a2wsgi, behind a buffer that receives each request whole before any thread sees it.

Why not gunicorn's sync or threaded workers: a worker thread reads the request itself, so a client
that sends its headers or body slowly (a few bytes a second) holds that thread for as long as it
likes, and a handful of such clients hold every thread of a deployment, with no sign-in needed.
Here the event loop reads requests: a slow client costs a connection (at most
`worker_connections` per worker), never a thread, and `BufferedRequests` gives it at most
REQUEST_BODY_TIMEOUT_SECONDS to send its body, and refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE
by its Content-Length, before reading a byte of it. The Django application then runs, in a
thread of a2wsgi's pool, on a body already in memory.

Why not Django's own ASGI handler: it runs each synchronous middleware through a thread hop of
its own, which costs more than the whole runner read; a2wsgi runs the WSGI application once per
request, in one thread.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from django.conf import settings

from console.wsgi import application as wsgi_application
from secrets_app.error_responses import request_too_large_message

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _TooLarge(Exception):
    pass


class BufferedRequests:
    """ASGI middleware: the whole request body is received, within a deadline and a size limit,
    before the application is called. 413 for a body over the limit (by its Content-Length, before
    reading it, or while reading it); 408 for one that does not arrive in time. Both answer the
    JSON error envelope under /api/ and plain text elsewhere, and close the connection."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, max_bytes: int, timeout: float):
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


application = BufferedRequests(
    WSGIMiddleware(wsgi_application, workers=int(os.environ.get("GUNICORN_THREADS", 2))),
    max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
    timeout=settings.REQUEST_BODY_TIMEOUT_SECONDS,
)
