"""What a jobcontrol process does to its Python runtime once it has started."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything start-up made (modules, descriptors, tables, the app: hundreds of
    thousands of objects) out of the garbage collector's sight, so that its full
    collections walk only what serving allocates. Measured on the server under 16 durable
    writes in flight: each full collection held every call 50-70 ms before, none over
    2 ms after. Called by `jobctl serve` and `jobctl gateway` once they are up, never in
    a test process."""
    gc.collect()
    gc.freeze()
