"""A TCP proxy in front of a database server, for tests of a network or a database that fails.

`cut` drops the open connections, as a failed network does; `cut_before` does so once a client
is about to send given bytes (a COMMIT, say), which then never reach the server. While
`refusing`, each new connection is reset at once, as a stopped server's port answers, and
counted (`wait_refused`).
"""

import asyncio
from contextlib import suppress
from typing import Self


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._refusing = False
        self._cut_before: bytes | None = None
        self._refused = asyncio.Condition()
        self.refused = 0
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection (both ends see a reset)."""
        for writer in list(self._writers):
            writer.transport.abort()

    def cut_before(self, needle: bytes) -> None:
        """Cut every connection when a client next sends `needle`, before the server sees it."""
        self._cut_before = needle

    def refuse(self) -> None:
        """From now on the database is out of reach: open connections dropped, new ones reset."""
        self._refusing = True
        self.cut()

    def accept(self) -> None:
        """The database is back: new connections reach it again."""
        self._refusing = False
        self._cut_before: bytes | None = None

    async def wait_refused(self, count: int) -> None:
        """Return once `count` connections have been refused in all."""
        async with self._refused:
            await self._refused.wait_for(lambda: self.refused >= count)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            async with self._refused:
                self.refused += 1
                self._refused.notify_all()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        pair = (writer, upstream_writer)
        self._writers.update(pair)
        try:
            await asyncio.gather(
                self._pump(reader, upstream_writer, watched=True),
                self._pump(upstream_reader, writer, watched=False),
            )
        finally:
            for each in pair:
                each.transport.abort()
                self._writers.discard(each)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, watched: bool
    ) -> None:
        """Copy bytes one way (`watched`: from the client) until either side ends."""
        with suppress(ConnectionError):
            while data := await reader.read(65536):
                if watched and self._cut_before is not None and self._cut_before in data:
                    self._cut_before = None
                    self.cut()
                    return
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side ended: so does the other
