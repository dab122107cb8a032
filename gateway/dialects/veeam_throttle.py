"""Failed Veeam logons, counted per user name and per client address, and their back-off."""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# names and addresses tracked per table (the least recently failed are forgotten first)
MAX_TRACKED = 10_000
# the longest back-off, in seconds (15 minutes)
MAX_BACKOFF = 900.0


@dataclass
class _Record:
    failures: int = 0
    # logons are refused until this clock time
    until: float = 0.0


class _Counts:
    """Failure records by key, at most `capacity` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._records: OrderedDict[bytes, _Record] = OrderedDict()

    def get(self, key: bytes) -> _Record | None:
        return self._records.get(key)

    def touch(self, key: bytes) -> _Record:
        """The key's record, made the most recent (a new one may push out the oldest)."""
        record = self._records.pop(key, None) or _Record()
        self._records[key] = record
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        return record

    def drop(self, key: bytes) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)


def _key(kind: str, value: str) -> bytes:
    # a fixed-size digest: a 60 KiB user name costs what a short one does
    data = f"{kind}\0{value}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()


class LogonThrottle:
    """After `failures` failed logons of a user name, or from a client address, further
    logons of that name or from that address wait `backoff` seconds, doubling with each
    further failure up to MAX_BACKOFF; a successful logon clears both counts."""

    def __init__(
        self,
        failures: int = 5,
        backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = MAX_TRACKED,
    ) -> None:
        self.failures = max(1, failures)
        self.backoff = max(0.0, backoff)
        self.clock = clock
        self.names = _Counts(capacity)
        self.addresses = _Counts(capacity)

    def _keys(self, name: str | None, address: str) -> list[tuple[_Counts, bytes]]:
        """The records a logon counts against: its name (if the credentials named one) and
        its address (if the peer's is known: an unknown one would lump callers together)."""
        keys = []
        if name is not None:
            keys.append((self.names, _key("user", name)))
        if address:
            keys.append((self.addresses, _key("address", address)))
        return keys

    def wait(self, name: str | None, address: str) -> float:
        """Seconds until a logon of `name` from `address` may be tried (0: now)."""
        now = self.clock()
        found = [table.get(key) for table, key in self._keys(name, address)]
        return max([r.until - now for r in found if r is not None] + [0.0])

    def failed(self, name: str | None, address: str) -> None:
        """Count a failed logon; from the `failures`-th on, each starts a back-off."""
        now = self.clock()
        for table, key in self._keys(name, address):
            record = table.touch(key)
            record.failures += 1
            over = record.failures - self.failures
            if over >= 0:
                # the exponent is capped so that a long run of failures cannot overflow
                delay = min(MAX_BACKOFF, self.backoff * 2.0 ** min(over, 32))
                record.until = now + delay

    def succeeded(self, name: str, address: str) -> None:
        """A successful logon clears the name's and the address's counts."""
        for table, key in self._keys(name, address):
            table.drop(key)


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
