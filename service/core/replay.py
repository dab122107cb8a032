"""JSON codec for stored replies of idempotent requests (`request_id`)."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from typing import Any

from jobcontrol.service.core import model

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        model.Job,
        model.Collection,
        model.Task,
        model.Operation,
        model.HistoryEntry,
        model.Quota,
        model.OperationError,
    )
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__t": type(value).__name__, **fields}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode(result: Any) -> str:
    """A reply as JSON."""
    return json.dumps(_plain(result), separators=(",", ":"))


def _build(data: Any) -> Any:
    if not (isinstance(data, dict) and "__t" in data):
        return data
    cls = _TYPES[data["__t"]]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = data.get(f.name)
        kwargs[f.name] = _revive(hints[f.name], _build(raw))
    return cls(**kwargs)


def _revive(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    for candidate in typing.get_args(hint) or (hint,):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate(value)
    return value


def decode(text: str) -> Any:
    """The reply stored by `encode`."""
    return _build(json.loads(text))
