"""gunicorn's asyncio (ASGI) worker, with the limits a server facing slow clients needs and
gunicorn's own worker lacks: a deadline for each request's headers, and its connection limit kept.

- **Request headers** must arrive within REQUEST_HEADER_TIMEOUT_SECONDS of the connection being
  made, or of the end of the previous answer on it. Without it a client that sends nothing, or a
  header line a second, holds its connection forever (a slowloris); the body has its own deadline
  (console/asgi.py).
- **Connections** beyond `worker_connections` are answered 503 and closed at once, so that one
  worker never holds more sockets than its limit (gunicorn's asyncio worker counts them but does
  not refuse any), and the process's open-file limit is raised to fit them.

The worker swaps this protocol in for gunicorn's (`gasgi.ASGIProtocol`, which its server factory
names) in its own process, before it serves: gunicorn offers no setting for either limit.
"""

from __future__ import annotations

import resource
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

# File descriptors a worker needs besides its client connections (database, cache, logs, files).
SPARE_FILES = 256


class DeadlineProtocol(ASGIProtocol):
    """gunicorn's HTTP/1 protocol, with a deadline for request headers and a connection limit."""

    header_timeout: float = 10.0
    _deadline: Any = None
    # Whether part of a request has arrived since the deadline was armed.
    _started = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.worker.nr_conns > self.worker.worker_connections:
            self._send_error_response(503, "Too many connections to this server; try again shortly.")
            self._close_transport()
            return
        self._arm_deadline()

    def data_received(self, data: bytes) -> None:
        self._started = True
        super().data_received(data)

    def _on_headers_complete(self) -> Any:
        self._cancel_deadline()
        return super()._on_headers_complete()

    def _arm_keepalive_timer(self) -> None:
        # An answer is complete: the next request on this connection has its own deadline.
        super()._arm_keepalive_timer()
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._started = False
        self._deadline = self.worker.loop.call_later(self.header_timeout, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._started:  # an idle connection is closed without a word, as keep-alive closes it
            self._send_error_response(408, f"The request did not arrive within {self.header_timeout:g} s.")
        self._close_transport()
        # As gunicorn's keep-alive timeout does: wake the connection's task so that it sees the close.
        if self._request_ready is not None:
            self._request_ready.set()


class ConsoleWorker(gasgi.ASGIWorker):
    """gunicorn's ASGI worker serving with `DeadlineProtocol` (`worker_class` in gunicorn.conf.py)."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # The application is loaded, and with it Django's settings.
        from django.conf import settings

        DeadlineProtocol.header_timeout = float(settings.REQUEST_HEADER_TIMEOUT_SECONDS)
        gasgi.ASGIProtocol = DeadlineProtocol
        self.worker_connections = min(self.worker_connections, _open_files_for(self.worker_connections) - SPARE_FILES)


def _open_files_for(connections: int) -> int:
    """Raise this process's open-file limit to fit `connections` (up to the hard limit); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_FILES
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    return raised
