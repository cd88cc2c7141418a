"""What every emulator shares: serving on loopback, faults, and holding an answer."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from dataclasses import dataclass, field

from aiohttp import web

# Ports for servers a test starts as a child process (yimen run, redis-server): below
# the kernel's ephemeral range (32768-60999 here), which it also hands to every outgoing
# connection, so the PostgreSQL and HTTP clients of the other test worker can't take the
# port between the probe and the child's bind (a CI run failed so: "address already in
# use"). Each xdist worker draws from its own block.
_PORTS_FROM, _BLOCK = 20000, 2000


def free_port() -> int:
    """A loopback port nobody listens on right now, outside the ephemeral range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _PORTS_FROM + (int(worker) if worker.isdigit() else 0) % 6 * _BLOCK
    for port in random.sample(range(start, start + _BLOCK), 50):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK}")


@dataclass
class Faults:
    """Misbehaviour for the next create requests, consumed one request at a time.

    ``fail``: statuses answered *without* creating (500, 503, 403…); ``malformed``:
    create, then answer garbage; ``duplicate_id``: create, then answer the id of
    another, older case; ``delay``: create, then take this long to answer (once);
    ``hold``: create, set ``received``, and answer only once ``release`` is set.
    """

    fail: list[int] = field(default_factory=list)
    malformed: int = 0
    duplicate_id: int = 0
    delay: float = 0.0
    hold: bool = False
    received: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class Served:
    """Starts and stops an aiohttp app on a fixed loopback port (so it can come back)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        """The root URL."""
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        """The application to serve (subclasses build it)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Serve (again) on the same port."""
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Stop serving: connections are refused until ``start`` again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
