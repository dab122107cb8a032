"""Size and shape limits on client-supplied job fields."""

from __future__ import annotations

from typing import Any

import orjson

from jobcontrol.service.core.errors import bad_field

MAX_DISPLAY_NAME = 1024
MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
MAX_SPEC_BYTES = 64 * 1024


def check_document(doc: dict[str, Any], spec_key: str, field: str = "job") -> None:
    """Refuse oversized names, labels and specs with a field violation."""
    name = doc.get("display_name") or ""
    if len(name) > MAX_DISPLAY_NAME:
        raise bad_field(f"{field}.display_name", f"longer than {MAX_DISPLAY_NAME} characters")
    labels = doc.get("labels") or {}
    if len(labels) > MAX_LABELS:
        raise bad_field(f"{field}.labels", f"more than {MAX_LABELS} labels")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY:
            raise bad_field(f"{field}.labels", f"label key {key[:80]!r}: 1-{MAX_LABEL_KEY} chars")
        if len(value) > MAX_LABEL_VALUE:
            raise bad_field(f"{field}.labels", f"label {key!r}: value over {MAX_LABEL_VALUE}")
    check_properties(doc.get(spec_key) or {}, f"{field}.{spec_key}")


def check_properties(value: dict[str, Any], field: str) -> None:
    """A stored document (a spec, a task's properties) is at most MAX_SPEC_BYTES of JSON,
    counted as it is stored: compact UTF-8 (orjson, as the storage encodes it)."""
    size = len(orjson.dumps(value))
    if size > MAX_SPEC_BYTES:
        raise bad_field(field, f"{size} bytes, over {MAX_SPEC_BYTES}")
