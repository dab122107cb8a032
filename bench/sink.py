"""An HTTP action target in a process of its own, for benchmarks that must not share their
load generator's event loop with it: every request is 200 and counted; `GET /_count` tells
how many. Listens on 127.0.0.1 (port 0) and prints its URL on the first line.

    python -m bench.sink
"""

from __future__ import annotations

import asyncio

from aiohttp import web


def app() -> web.Application:
    seen = [0]

    async def count(_: web.Request) -> web.Response:
        return web.Response(text=str(seen[0]))

    async def any_request(request: web.Request) -> web.Response:
        await request.read()
        seen[0] += 1
        return web.Response(text="ok")

    served = web.Application()
    served.router.add_get("/_count", count)
    served.router.add_route("*", "/{tail:.*}", any_request)
    return served


async def serve() -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until the parent terminates this process
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
