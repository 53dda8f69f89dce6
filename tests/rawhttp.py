"""A bare HTTP/1.1 API on 127.0.0.1 for tests that must see the bytes on the wire: when each
connection was accepted, every request body and when it arrived, and requests cut short (bytes
written without a whole request). It answers each request 200 with a call_control_id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable


class RawApi:
    def __init__(self, delay: Callable[[int], float] = lambda n: 0.0) -> None:
        #: Seconds to wait before answering the n-th request (1-based).
        self._delay = delay
        self.accepted: list[float] = []  # time.monotonic() of each connection
        self.bodies: list[bytes] = []
        self.arrived: list[float] = []  # time.monotonic() of each whole request
        self.partial: list[bytes] = []  # what came of requests cut short
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> RawApi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v2"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if getattr(exc, "partial", b""):
                    self.partial.append(exc.partial)  # type: ignore[union-attr]
                return
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = await reader.readexactly(length)
            self.bodies.append(body)
            self.arrived.append(time.monotonic())
            await asyncio.sleep(self._delay(len(self.bodies)))
            try:
                ccid = "v3:" + json.loads(body)["command_id"]
            except (ValueError, KeyError, TypeError):
                ccid = "v3:call"
            answer = json.dumps({"data": {"call_control_id": ccid}}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
