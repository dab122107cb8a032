"""Prometheus exposition shared by every process (server, gateway): one registry per
process object (never prometheus_client's global one, so that several servers or gateways
in one test process keep their own counts) and a small `/metrics` HTTP listener on
`--metrics-address` (a daemon thread; stopped with the process object)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server

# no `<name>_created` series beside each counter and histogram (the Go clients have none)
disable_created_metrics()  # type: ignore[no-untyped-call]

# go-grpc-prometheus / the Go client's DefBuckets (prometheus_client's defaults add .075,
# .75 and 7.5): the buckets operators' dashboards were built on
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def split_host_port(address: str) -> tuple[str, int]:
    """HOST:PORT (or [V6]:PORT) -> (host, port); anything else stops the start."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--metrics-address: expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


@dataclass
class MetricsServer:
    """The `/metrics` listener of one process: where it is bound, and how to stop it."""

    address: str
    httpd: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The scrape URL."""
        host, port = split_host_port(self.address)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/metrics"

    def close(self) -> None:
        """Stop serving (waits for the listener's loop, at most its 0.5 s poll)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    async def aclose(self) -> None:
        """`close` off the event loop."""
        await asyncio.to_thread(self.close)


def start_metrics_server(address: str, registry: CollectorRegistry) -> MetricsServer:
    """Serve `registry` in the text exposition format on HOST:PORT (port 0: any free
    port; `address` of the result is the bound one)."""
    host, port = split_host_port(address)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise SystemExit(f"--metrics-address {address}: {exc}") from exc
    bound = httpd.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return MetricsServer(f"{shown}:{bound}", httpd, thread)


__all__ = ["DEFAULT_BUCKETS", "MetricsServer", "split_host_port", "start_metrics_server"]
