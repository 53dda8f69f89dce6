"""Limits on the HTTP servers that face the network (the engine's receiver, webhook workers).

aiohttp on its own waits for ever for a request's head and keeps every connection it accepts:
a few hundred slow or half-sent requests hold as many file descriptors, and with a low
descriptor limit valid webhooks were starved. So every server started with `start_site`:
- closes a connection that has not sent a complete request head within `header_timeout_secs`
  of opening (or of its previous request, on a kept-alive connection);
- refuses a body not received within `body_timeout_secs` (408; the receiver times its read
  with `BODY_TIMEOUT_SECS`);
- keeps at most `max_connections` open (half the descriptor limit by default, leaving room for
  the database and the Telnyx client): a connection past the cap is closed at once;
- logs a malformed request (bad HTTP) as one WARNING line, at most one a second plus a count of
  the others, instead of aiohttp's ERROR with a traceback for each.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("dialer.http")

#: The receiver's deadline for reading a webhook's body (Telnyx's are a few KB).
BODY_TIMEOUT_SECS = 15.0


def default_max_connections() -> int:
    """Half the soft descriptor limit, between 16 and 4,096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft // 2))


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_secs: float = 10.0
    body_timeout_secs: float = BODY_TIMEOUT_SECS
    #: aiohttp's own idle limit (its default is an hour); the head deadline, shorter, closes an
    #: idle kept-alive connection first: this is the backstop.
    keepalive_secs: float = 15.0
    max_connections: int = 0  # 0: default_max_connections()
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for web.AppRunner (passed on to each connection's handler)."""
        return {"access_log": None, "keepalive_timeout": self.keepalive_secs,
                "max_line_size": self.max_line_size, "max_field_size": self.max_field_size,
                "max_headers": self.max_headers, "lingering_time": 1.0,
                "logger": _OneLineLogger(log)}


class _OneLineLogger(logging.LoggerAdapter):
    """What aiohttp logs about a connection (malformed requests, mostly): one WARNING line
    without traceback, at most one a second; the others counted in the next line."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._last = 0.0
        self._suppressed = 0

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None,
            **kwargs: Any) -> None:
        if level < logging.WARNING:
            if self.isEnabledFor(level):
                self.logger.log(level, msg, *args)
            return
        now = time.monotonic()
        if now - self._last < 1.0:
            self._suppressed += 1
            return
        exc = exc_info if isinstance(exc_info, BaseException) else None
        reason = " ".join(str(exc).split())[:200] if exc is not None else ""
        more = f" ({self._suppressed} more since)" if self._suppressed else ""
        self._last, self._suppressed = now, 0
        text = str(msg) % args if args else str(msg)
        self.logger.warning("%s%s%s", text, f": {type(exc).__name__}: {reason}" if exc else "",
                            more)

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info)


class ConnectionGuard:
    """Head deadlines and the connection cap for one aiohttp Server."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections or default_max_connections()
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._open = 0
        self.refused = 0
        self.timed_out = 0

    def attach(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._open += 1
            if self._open > self.max_connections:
                self.refused += 1
                if self.refused == 1 or self.refused % 100 == 0:
                    log.warning("%d connections open, the cap: refused a connection (%d so "
                                "far)", self.max_connections, self.refused)
                transport.abort()
                return
            self._arm(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._open -= 1
            self._disarm(handler)
            lost(handler, exc)

        # The Server is aiohttp's protocol factory's manager: each connection's handler calls
        # these two (instance attributes shadow the methods).
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _arm(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._disarm(handler)
        loop = asyncio.get_running_loop()
        self._timers[handler] = loop.call_later(self.limits.header_timeout_secs,
                                                self._expire, handler, transport)

    def _disarm(self, handler: RequestHandler) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._timers.pop(handler, None)
        self.timed_out += 1
        transport.abort()

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        """A request head arrived: no deadline while it is served; then the next one's."""
        protocol = request.protocol
        self._disarm(protocol)
        try:
            return await handler(request)
        finally:
            if protocol.transport is not None and not protocol.transport.is_closing():
                self._arm(protocol, protocol.transport)


async def start_site(app: web.Application, host: str, port: int, *,
                     limits: HttpLimits | None = None, reuse_port: bool = False,
                     **runner_kwargs: Any) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port with the limits; the runner (to clean up) and the bound port."""
    limits = limits or HttpLimits()
    guard = ConnectionGuard(limits)
    app.middlewares.insert(0, guard.middleware)
    app[GUARD] = guard
    runner = web.AppRunner(app, **{**limits.runner_kwargs(), **runner_kwargs})
    await runner.setup()
    assert runner.server is not None
    guard.attach(runner.server)
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    server = getattr(site, "_server", None)
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    return runner, int(bound)


GUARD = web.AppKey("http_guard", ConnectionGuard)
