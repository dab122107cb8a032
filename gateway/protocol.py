"""uvicorn's httptools protocol with the limits a public listener needs (request line and
headers: bytes, count, and the time to send them, so slow-loris connections are cut and a
huge header cannot grow memory), TCP_NODELAY on every connection (a reply written in
parts is not held back by Nagle's algorithm, whoever created the listening socket), and
the TLS client certificate in the ASGI scope (the `tls` extension: `client_cert_chain`)."""

from __future__ import annotations

import socket
import ssl
from asyncio import TimerHandle, Transport
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# where the request line and headers end: llhttp accepts no bare LF, so this is exact
_END = b"\r\n\r\n"
# how long a refused connection's input is still read and discarded before it is closed
_LINGER = 2.0


@dataclass(frozen=True)
class Limits:
    """What one request may spend before its headers are complete."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0


def guarded_protocol(limits: Limits) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol class enforcing `limits` (uvicorn's `http=` takes a class)."""
    return type("GuardedHttpToolsProtocol", (_Guarded,), {"limits": limits})


class _Guarded(HttpToolsProtocol):
    limits: Limits = Limits()

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _no_delay(transport)
        self._refused = False
        self._header_bytes = 0
        self._header_count = 0
        self._reading_headers = True
        self._tail = b""  # the last bytes of headers so far, to find _END across reads
        self._timer: TimerHandle | None = None
        self._peer_pem = _peer_certificate(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        """The headers did not arrive in time: 408 and close (slow-loris)."""
        self._timer = None
        self._refuse(408, "Request Timeout", "the request headers took too long")

    def _refuse(self, status: int, phrase: str, message: str) -> None:
        """Answer `status` and close; while an earlier (pipelined) request's response is
        still being written, nothing is written in its midst: the connection closes once
        it is sent."""
        self._disarm()
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        if not self.transport.is_closing():
            body = message.encode()
            self.transport.write(
                f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            self._linger()

    def _linger(self) -> None:
        """Close after a refusal without losing it: closing a socket with unread input
        (the rest of a trickled or oversized request) sends a reset, and the peer's kernel
        may discard the refusal before it is read. So (like nginx's lingering close) send
        FIN (TLS has no half-close: the refusal's content-length ends it), discard what
        still arrives, and close at the peer's EOF or after _LINGER s."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._timer = self.loop.call_later(_LINGER, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # after our own refusal the parser's error is no news
            super().send_400_response(msg)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_headers and self._too_many_bytes(data):
            self._refuse(431, "Request Header Fields Too Large", "request headers too large")
            return
        super().data_received(data)

    def _too_many_bytes(self, data: bytes) -> bool:
        """Count the bytes of `data` that belong to the request line and headers (a body
        sent along is not theirs) before the parser buffers any of them."""
        window = self._tail + data
        end = window.find(_END)
        self._header_bytes += len(data) if end < 0 else end + len(_END) - len(self._tail)
        self._tail = window[-(len(_END) - 1) :] if end < 0 else b""
        return self._header_bytes > self.limits.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_count = True, 0
        if self._timer is None:
            self._arm()
        if self._peer_pem:
            self.scope["extensions"] = {"tls": {"client_cert_chain": [self._peer_pem]}}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, "Request Header Fields Too Large", "too many request headers")
            raise _Stop  # ends this parse; nothing of the request runs
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading_headers, self._header_bytes, self._tail = False, 0, b""
        # nothing here speaks another protocol (no WebSocket, no h2c), yet llhttp hands every
        # byte after Upgrade headers to it: a body would be lost, so such a request with a
        # body is refused, one without is answered and the connection then closed
        upgrade = self.parser.should_upgrade()
        if upgrade and _declares_body(self.headers):
            self._refuse(400, "Bad Request", "a request body cannot come with Upgrade")
            raise _Stop
        super().on_headers_complete()
        if upgrade:
            self.cycle.keep_alive = False

    def _should_upgrade(self) -> bool:
        return False  # whatever is installed, the gateway serves no WebSocket

    def _unsupported_upgrade_warning(self) -> None:
        pass  # the request is answered as HTTP (above); a warning per request floods logs

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # what the connection sends next is the next request's line and headers
        self._reading_headers, self._header_bytes, self._tail = True, 0, b""


class _Stop(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in headers
    )


def _no_delay(transport: Transport) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _peer_certificate(transport: Transport) -> str:
    """The client certificate of a TLS connection, PEM ("" without one)."""
    ssl_object: Any = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ""
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else ""
