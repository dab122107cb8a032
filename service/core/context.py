"""What every use-case shares: the store, limits, and the reaper's wake-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jobcontrol.service.core import replay
from jobcontrol.service.core.errors import bad_field
from jobcontrol.service.core.model import now_us
from jobcontrol.service.core.ports import Store, Tx

T = TypeVar("T")
MAX_REQUEST_ID = 128


@dataclass
class Context:
    """Shared by the use-case classes of one server."""

    store: Store
    idempotency_window: float = 24 * 3600.0
    purge_chunk: int = 500
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def write(self, method: str, request_id: str, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run a mutation on the writer; a repeated `request_id` (same method, within the
        window) returns the first reply and runs nothing."""
        if len(request_id) > MAX_REQUEST_ID:
            raise bad_field("request_id", f"longer than {MAX_REQUEST_ID} characters")
        if not request_id:
            return await self.store.write(fn)

        async def once(tx: Tx) -> T:
            now = now_us()
            since = now - int(self.idempotency_window * 1_000_000)
            prior = await tx.get_reply(method, request_id, since)
            if prior is not None:
                return replay.decode(prior)  # type: ignore[no-any-return]
            result = await fn(tx)
            await tx.put_reply(method, request_id, replay.encode(result), now)
            return result

        return await self.store.write(once)

    async def replayed(self, method: str, request_id: str) -> Any:
        """The stored first reply of a request, if it was seen within the window."""
        since = now_us() - int(self.idempotency_window * 1_000_000)
        prior = await self.store.read(lambda tx: tx.get_reply(method, request_id, since))
        return None if prior is None else replay.decode(prior)

    def poke(self) -> None:
        """Wake the reaper: a deletion may be able to progress."""
        self.wake.set()
