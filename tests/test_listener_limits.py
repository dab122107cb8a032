"""Listener limits (docs/security.md A20, A21), on real sockets: the gateway cuts requests
whose headers are too large, too many or too slow (slow-loris) and closes idle keep-alive
connections; the gRPC server closes idle connections (GOAWAY) and pings while calls run."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from jobcontrol.service.loadgen.served import free_port
from jobcontrol.service.server import RunningServer, start_server
from tests.conftest import RunningGateway, make_settings, start_gateway
from tests.test_process import ServerProcess

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
REQUEST_LINE = b"GET /readyz HTTP/1.1\r\nHost: gateway\r\n"


async def _connect(base_url: str) -> Connection:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 response: status, head, body (by content-length), bounded in time."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(head.split(b" ", 2)[1]), head, body


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the peer closes the connection within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@asynccontextmanager
async def _gateway(server: RunningServer, **limits: float) -> AsyncIterator[RunningGateway]:
    """The gateway in front of `server` with `limits` (GatewaySettings fields)."""
    running, stop = await start_gateway(server.address, **limits)
    try:
        yield running
    finally:
        await stop()


async def test_a20_oversized_headers_get_431_and_close(server: RunningServer) -> None:
    """A20: request line and headers beyond max_header_bytes -> 431 "request headers too
    large" and the connection is closed; just under the limit is served."""
    async with _gateway(server, max_header_bytes=8192) as limited:
        reader, writer = await _connect(limited.base_url)
        writer.write(REQUEST_LINE + b"X-Big: " + b"a" * 8000 + b"\r\n\r\n")
        status, head, body = await _response(reader)
        assert status == 200
        writer.write(REQUEST_LINE + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n")
        status, head, body = await _response(reader)
        assert (status, body) == (431, b"request headers too large")
        assert b"connection: close" in head
        assert await _closed(reader, 2)
        writer.close()


async def test_a20_refusal_is_read_whole_while_the_client_still_sends(
    server: RunningServer,
) -> None:
    """A20: a refused connection lingers (FIN sent, input discarded, closed at the peer's
    EOF or after 2 s): a client still sending the rest of an oversized request reads the
    whole 431 and a clean end of stream, never a connection reset."""
    async with _gateway(server, max_header_bytes=8192) as limited:
        reader, writer = await _connect(limited.base_url)
        writer.write(REQUEST_LINE + b"X-Big: ")
        for _ in range(10):
            writer.write(b"v" * 16384)
            await writer.drain()
            await asyncio.sleep(0.05)
        answer = await asyncio.wait_for(reader.read(), 5)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert (head.split(b" ", 2)[1], body) == (b"431", b"request headers too large")
        assert b"connection: close" in head
        writer.close()


async def test_a20_too_many_headers_get_431(server: RunningServer) -> None:
    """A20: more than max_headers (100) headers -> 431 "too many request headers" and
    close; exactly 100 are served."""
    async with _gateway(server) as limited:
        for count, expected in ((100, 200), (101, 431)):
            reader, writer = await _connect(limited.base_url)
            extra = b"".join(b"X-H%d: v\r\n" % i for i in range(count - 1))  # + Host
            writer.write(REQUEST_LINE + extra + b"\r\n")
            status, _, body = await _response(reader)
            assert status == expected, count
            if expected == 431:
                assert body == b"too many request headers"
                assert await _closed(reader, 2)
            writer.close()


async def test_a20_limits_count_per_request_on_keep_alive(server: RunningServer) -> None:
    """A20: the header budget is per request: 40 requests of 3 KiB headers on one
    keep-alive connection (120 KiB in all) are all served, then an oversized one -> 431."""
    async with _gateway(server, max_header_bytes=8192) as limited:
        reader, writer = await _connect(limited.base_url)
        for _ in range(40):
            writer.write(REQUEST_LINE + b"X-Pad: " + b"p" * 3000 + b"\r\n\r\n")
            status, _, _ = await _response(reader)
            assert status == 200
        writer.write(REQUEST_LINE + b"X-Pad: " + b"p" * 9000 + b"\r\n\r\n")
        status, _, body = await _response(reader)
        assert (status, body) == (431, b"request headers too large")
        writer.close()


async def test_a20_slow_loris_connections_get_408_and_close(server: RunningServer) -> None:
    """A20: 300 connections trickling header lines are each answered 408 "the request
    headers took too long" and closed after header_timeout (1 s), while an ordinary request
    made meanwhile is served."""
    async with _gateway(server, header_timeout=1.0) as limited:

        async def trickle() -> tuple[int, bytes, float]:
            reader, writer = await _connect(limited.base_url)
            started = time.monotonic()
            writer.write(REQUEST_LINE)
            line = 0
            try:
                while not reader.at_eof() and time.monotonic() - started < 8:
                    try:  # the wait between header lines is also the wait for an answer
                        first = await asyncio.wait_for(reader.read(1), 0.1)
                    except TimeoutError:
                        writer.write(b"X-Trickle-%d: v\r\n" % line)
                        line += 1
                        continue
                    rest = await asyncio.wait_for(reader.read(), 5)
                    head, _, body = (first + rest).partition(b"\r\n\r\n")
                    return int(head.split(b" ", 2)[1]), body, time.monotonic() - started
                raise AssertionError("never answered")
            finally:
                writer.close()

        trickles = [asyncio.create_task(trickle()) for _ in range(300)]
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=limited.base_url) as http:
            assert (await http.get("/readyz")).status_code == 200
        results = await asyncio.wait_for(asyncio.gather(*trickles), 20)
        assert {(status, body) for status, body, _ in results} == {
            (408, b"the request headers took too long")
        }
        assert max(elapsed for _, _, elapsed in results) < 6


async def test_a20_idle_connections_are_closed(server: RunningServer) -> None:
    """A20: a keep-alive connection idle for idle_timeout (1 s) after a response is closed;
    a connection that never sends a request is answered 408 after header_timeout."""
    async with _gateway(server, idle_timeout=1.0, header_timeout=1.0) as limited:
        reader, writer = await _connect(limited.base_url)
        writer.write(REQUEST_LINE + b"\r\n")
        assert (await _response(reader))[0] == 200
        assert not await _closed(reader, 0.3)
        assert await _closed(reader, 3)
        writer.close()
        reader, writer = await _connect(limited.base_url)
        status, _, body = await _response(reader)
        assert (status, body) == (408, b"the request headers took too long")
        writer.close()


def _rss(pid: int) -> int:
    """Resident set size of process `pid` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
async def test_a20_huge_headers_do_not_grow_gateway_memory(tmp_path: Path) -> None:
    """A20: 20 connections each sending one 16 MiB header to a `jobctl gateway` process are
    cut (431 or reset) and its resident memory grows by less than 64 MiB; it still serves."""
    server = ServerProcess(tmp_path / "jobs.db")
    address = await server.start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    gateway = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobcontrol.service.cli",
        "gateway",
        "--grpc-target",
        address,
        "--http-address",
        f"127.0.0.1:{port}",
        env={**os.environ, "JOBCONTROL_LOG_LEVEL": "WARNING"},
    )
    try:
        async with httpx.AsyncClient(base_url=base_url) as http:
            for _ in range(200):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            before = _rss(gateway.pid)

            async def flood() -> str:
                reader, writer = await _connect(base_url)
                chunk = b"a" * (256 * 1024)
                try:
                    writer.write(REQUEST_LINE + b"X-Huge: ")
                    for _ in range(64):  # 16 MiB
                        writer.write(chunk)
                        await asyncio.wait_for(writer.drain(), 10)
                    status, _, _ = await _response(reader)
                    return str(status)
                except (ConnectionError, asyncio.IncompleteReadError):
                    return "cut"
                finally:
                    writer.close()

            outcomes = await asyncio.wait_for(asyncio.gather(*(flood() for _ in range(20))), 60)
            grown = _rss(gateway.pid) - before
            assert set(outcomes) <= {"431", "cut"}, outcomes
            assert grown < 64 * 1024 * 1024, grown
            assert (await http.get("/readyz")).status_code == 200
    finally:
        gateway.kill()
        await gateway.wait()
        await server.kill9()


async def _h2_frames(address: str, open_stream: bool, seconds: float) -> list[tuple[float, int]]:
    """Speak raw HTTP/2 to the gRPC server for `seconds` (or until it closes): the preface,
    optionally one call whose message never comes; acknowledge its SETTINGS and PINGs;
    return (time, frame type) of each frame received."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b""))
    if open_stream:  # HEADERS, END_HEADERS, no END_STREAM: HPACK literals, no Huffman
        fields = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/jobcontrol.v1.DiagnosticsService/Echo"),
            (b":authority", b"jobcontrol"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
        block = b"".join(bytes([0, len(n)]) + n + bytes([len(v)]) + v for n, v in fields)
        writer.write(_frame(1, 0x4, 1, block))
    started, frames = time.monotonic(), []
    try:
        while (left := seconds - (time.monotonic() - started)) > 0:
            head = await asyncio.wait_for(reader.readexactly(9), left)
            kind, flags = head[3], head[4]
            payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
            frames.append((time.monotonic() - started, kind))
            if kind in (4, 6) and not flags & 1:  # SETTINGS or PING: acknowledge
                writer.write(_frame(kind, 1, 0, b"" if kind == 4 else payload))
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
    return frames


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


GOAWAY, PING = 7, 6


async def test_a21_idle_grpc_connections_get_goaway(tmp_path: Path) -> None:
    """A21: a gRPC connection with no call for grpc_idle_timeout (1 s) gets GOAWAY and is
    closed; one with a call open is kept (and pinged, below)."""
    running = await start_server(make_settings(tmp_path, grpc_idle_timeout=1.0))
    try:
        idle = await _h2_frames(running.address, open_stream=False, seconds=4)
        goaways = [at for at, kind in idle if kind == GOAWAY]
        assert goaways and 0.8 < goaways[0] < 3, idle
        busy = await _h2_frames(running.address, open_stream=True, seconds=2)
        assert GOAWAY not in {kind for _, kind in busy}, busy
    finally:
        await running.stop(grace=0.5)


async def test_a21_grpc_keepalive_pings_while_calls_run(tmp_path: Path) -> None:
    """A21: while a call is open the server pings every grpc_keepalive seconds (0.5 s here:
    a peer that stops answering is dropped after the keepalive timeout)."""
    running = await start_server(make_settings(tmp_path, grpc_keepalive=0.5))
    try:
        frames = await _h2_frames(running.address, open_stream=True, seconds=2.8)
        pings = [at for at, kind in frames if kind == PING]
        assert len(pings) >= 4, frames
    finally:
        await running.stop(grace=0.5)
