"""An HTTP target on 127.0.0.1 that records every request it receives: what scheduled
jobs' actions are fired at in tests and benchmarks (aiohttp, in the caller's loop). With
`TargetTls` it serves HTTPS and requires a client certificate signed by a given CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

# how long a test waits for what the scheduler should do (it looks at least every second)
WAIT = 10.0


@dataclass
class Seen:
    """One request the target received."""

    method: str
    path: str
    headers: dict[str, str]
    body: str
    at: float
    # HTTPS: the subject common name of the client certificate presented
    client_cn: str | None = None


@dataclass(frozen=True)
class TargetTls:
    """HTTPS for the target: its certificate and key (PEM files) and the CA whose client
    certificates it requires (ssl.CERT_REQUIRED: a handshake without one fails)."""

    cert: Path
    key: Path
    client_ca: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(self.cert, self.key)
        return context


def _common_name(peercert: object) -> str | None:
    """The subject CN of `getpeercert()`'s dict (None without a certificate)."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@dataclass
class Target:
    """An HTTP(S) server on 127.0.0.1 recording requests: `/ok` answers 200, `/fail` 500,
    `/slow` 200 after `slow` seconds (lowering `slow` lets requests waiting go)."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    slow: float = 0.0

    def on(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def wait_for(
        self, count: int, path: str | None = None, within: float = WAIT
    ) -> list[Seen]:
        """The first `count` requests (to `path`), waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = self.seen if path is None else self.on(path)
            if len(got) >= count:
                return got[:count]
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.seen)} requests after {within} s, wanted {count}")


@contextlib.asynccontextmanager
async def listening(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """`app` served on 127.0.0.1 (any free port) while the block runs, in the caller's
    loop; yields its base URL (https with `ssl_context`), e.g. http://127.0.0.1:40123."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        yield f"{'https' if ssl_context is not None else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving_target(tls: TargetTls | None = None) -> AsyncIterator[Target]:
    """A recording target listening on 127.0.0.1 (any free port) while the block runs;
    HTTPS requiring a client certificate with `tls`."""
    recorded = Target(url="")

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        recorded.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.headers),
                body,
                time.time(),
                _common_name(peer),
            )
        )
        if request.path == "/slow":  # until `slow` seconds have passed (or it is lowered)
            began = time.monotonic()
            while time.monotonic() - began < recorded.slow:  # noqa: ASYNC110 - re-reads slow
                await asyncio.sleep(0.05)
        status = 500 if request.path == "/fail" else 200
        return web.Response(status=status, text=f"answer to {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with listening(app, tls.context() if tls is not None else None) as url:
        recorded.url = url
        yield recorded
