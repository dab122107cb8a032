"""What every use-case shares: the store, limits, and the reaper's wake-up."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jobcontrol.service.core import access, replay
from jobcontrol.service.core.access import Policy
from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.model import now_us
from jobcontrol.service.core.ports import NO_METRICS, Metrics, Store, Tracing, Tx

T = TypeVar("T")
MAX_REQUEST_ID = 128


@dataclass
class Context:
    """Shared by the use-case classes of one server."""

    store: Store
    idempotency_window: float = 24 * 3600.0
    purge_chunk: int = 500
    policy: Policy = field(default_factory=lambda: Policy(open=True))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # background work: this replica's name as a lease owner, and how long a lease lasts
    replica: str = field(default_factory=lambda: default_replica())
    lease_duration: float = 30.0
    # scheduled jobs: the shortest recurrence and retry interval, the timeout of one
    # action, and the scheduler's wake-up (a job became due sooner than it would look)
    scheduler_min_interval: float = 60.0
    action_timeout: float = 60.0
    schedule_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # wakes workers' LeaseWork calls waiting on this server when work may be available
    # (this server's use-cases, and on PostgreSQL every replica's notices: Store.on_work);
    # a waiting LeaseWork also looks again this often (seconds): for leases that expired,
    # and as a safety net for a notice that never came
    work_signal: Signal = field(default_factory=lambda: Signal())
    work_poll_interval: float = 0.5
    # what the engine reports (the server's Prometheus registry when metrics are on)
    metrics: Metrics = NO_METRICS
    # traces of the scheduler's attempts; None: traces off
    tracing: Tracing | None = None

    async def write(self, method: str, request_id: str, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run a mutation on the writer. A `request_id` is scoped to (principal, method,
        resource): seen again within the window it returns the first reply and runs
        nothing; with a different request it is REQUEST_ID_REUSED and runs nothing."""
        if len(request_id) > MAX_REQUEST_ID:
            raise bad_field("request_id", f"longer than {MAX_REQUEST_ID} characters")
        if not request_id:
            return await self.store.write(fn)
        scope, fingerprint = _scope(method)

        async def once(tx: Tx) -> T:
            now = now_us()
            since = now - int(self.idempotency_window * 1_000_000)
            prior = await tx.get_reply(scope, request_id, since)
            if prior is not None:
                return _replay(prior, fingerprint)  # type: ignore[no-any-return]
            result = await fn(tx)
            await tx.put_reply(scope, request_id, fingerprint, replay.encode(result), now)
            return result

        return await self.store.write(once)

    async def replayed(self, method: str, request_id: str) -> Any:
        """The stored first reply of a request, if it was seen within the window (checked
        like `write`)."""
        scope, fingerprint = _scope(method)
        since = now_us() - int(self.idempotency_window * 1_000_000)
        prior = await self.store.read(lambda tx: tx.get_reply(scope, request_id, since))
        return None if prior is None else _replay(prior, fingerprint)

    def owner(self) -> str:
        """Who the call's writes are recorded as (a collection's owner); "" if anonymous."""
        principal = access.call().principal
        return "" if principal.anonymous else principal.id

    def poke(self) -> None:
        """Wake the reaper: a deletion may be able to progress."""
        self.wake.set()


class Signal:
    """Wakes every waiter at once; a waiter that arrives later waits for the next one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake everyone waiting now."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, within: float) -> bool:
        """Wait for the next notification, at most `within` seconds; whether it came."""
        try:
            await asyncio.wait_for(self._event.wait(), max(within, 0.0))
        except TimeoutError:
            return False
        return True


def default_replica() -> str:
    """<host>-<pid>-<random>: unique among the replicas sharing a database."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"[-64:]


def _scope(method: str) -> tuple[str, str]:
    """The scope of a request id (principal, method, resource) and the call's fingerprint."""
    call = access.call()
    return f"{call.principal.id}\n{method}\n{call.resource}", call.fingerprint


def _replay(prior: tuple[str, str], fingerprint: str) -> Any:
    reply, first = prior
    if first != fingerprint:
        raise bad_field(
            "request_id",
            "was already used for a different request; use a new request_id",
            Reason.REQUEST_ID_REUSED,
        )
    return replay.decode(reply)
