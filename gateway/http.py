"""Minimal ASGI request/response primitives (no framework on the hot path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""


class Request:
    """One HTTP request: method, raw path, query, lower-cased headers, lazy body."""

    __slots__ = ("_body", "_receive", "headers", "method", "path", "query_string", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        raw = scope.get("raw_path")
        self.path: str = raw.decode("latin-1").split("?", 1)[0] if raw else scope["path"]
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        self.headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[name] = f"{self.headers[name]}, {text}" if name in self.headers else text
        self._body: bytes | None = None

    def query(self) -> list[tuple[str, str]]:
        """Decoded query parameters in order, repeats kept."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    async def body(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge past `limit` bytes (checked before reading when
        Content-Length says so)."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            more = message.get("more_body", False)
        self._body = b"".join(chunks)
        return self._body


@dataclass
class Response:
    """Status, headers and a complete body."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # facts a dialect keeps about the response (e.g. its error code), never sent
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str, value: str) -> Response:
        """Add a header (chainable)."""
        self.headers.append((name, value))
        return self

    async def send(self, send: Send, head_only: bool = False) -> None:
        """Write the response to the ASGI `send` channel."""
        raw: list[tuple[bytes, bytes]] = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers
        ]
        if self.content_type is not None and self.body:
            raw.append((b"content-type", self.content_type.encode("latin-1")))
        raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})
