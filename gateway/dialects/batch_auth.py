"""Azure Batch shared-key authentication: the accounts, the signed string, the request date."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime

import grpc

from jobcontrol.gateway.errors import GatewayError, gateway_error
from jobcontrol.gateway.http import Request

__all__ = [
    "CLOCK_SKEW", "authenticate", "parse_accounts", "request_time", "string_to_sign",
    "strings_to_sign",
]  # fmt: skip

SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type",
    "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)  # fmt: skip
# Batch: "The Batch service must receive a request within 15 minutes of when it is created"
CLOCK_SKEW = 900.0
# Azure's rule for Batch account names (3-24 letters and digits); compared in lower case.
# It also keeps glob characters out of the grant `owner=batch-<account>`.
ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
# shorter keys are no secret (Azure's are 64 bytes)
MIN_KEY_BYTES = 16
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RFC1123 = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) (" + "|".join(MONTHS) + r") (\d{4}) "
    r"(\d{2}):(\d{2}):(\d{2}) GMT"
)
_NO_KEY = os.urandom(32)
BAD_SIGNATURE = (
    "The MAC signature found in the HTTP request is not the same as any computed signature."
)


# --- accounts ------------------------------------------------------------------------------


def _account(item: str) -> tuple[str, bytes]:
    name, sep, key = (part.strip() for part in item.partition("="))
    if not sep or not name:
        raise SystemExit(f"batch accounts: expected name=base64key, got {item!r}")
    if not ACCOUNT_NAME.fullmatch(name.lower()):
        raise SystemExit(f"batch account {name!r}: a name is 3-24 letters and digits")
    try:
        secret = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SystemExit(f"batch account {name!r}: the key is not base64") from exc
    if len(secret) < MIN_KEY_BYTES:
        raise SystemExit(f"batch account {name!r}: the key has fewer than {MIN_KEY_BYTES} bytes")
    return name, secret


def parse_accounts(text: str) -> dict[str, bytes]:
    """`name=base64key[,name=base64key]` -> {lower-case name: key bytes}. Names are compared
    case-insensitively (as Azure's are): two that differ only in case are an error."""
    accounts: dict[str, bytes] = {}
    spelled: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, secret = _account(item)
        canonical = name.lower()
        if canonical in accounts:
            raise SystemExit(
                f"batch accounts {spelled[canonical]!r} and {name!r} are the same account "
                "(names are compared case-insensitively)"
            )
        accounts[canonical], spelled[canonical] = secret, name
    return accounts


# --- the string to sign --------------------------------------------------------------------


def _canonical_query(pairs: Iterable[tuple[str, str]], lower: bool) -> str:
    """Every parameter and every one of its values: names (lower-cased by Azure's rule),
    values URL-decoded, each name's values sorted and comma-joined, names sorted."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower() if lower else name, []).append(value)
    lines = []
    for name in sorted(grouped):
        values = sorted(grouped[name])
        # azure-batch's policy leaves out parameters without a value; one that also has a
        # value keeps the empty one, so nothing can be added unsigned next to a signed one
        if lower or any(values):
            lines.append(f"\n{name}:{','.join(values)}")
    return "".join(lines)


def string_to_sign(request: Request, account: str, lower: bool = True) -> str:
    """The canonical string of a Batch shared-key request (HMAC-SHA256): the verb, the
    standard headers, the `ocp-*` headers, `/{account}{path}` and the whole query.
    `lower=False`: parameter names as sent, the way the azure-batch Python SDK signs."""
    headers = request.headers
    values = {name: headers.get(name, "") for name in SIGNED_HEADERS}
    if request.method not in ("GET", "HEAD") and not values["content-length"]:
        values["content-length"] = "0"
    text = request.method + "\n" + "\n".join(values[h] for h in SIGNED_HEADERS) + "\n"
    ocp = sorted((k, v) for k, v in headers.items() if "ocp-" in k and v)
    text += "".join(f"{k}:{v}\n" for k, v in ocp)
    text += f"/{account}{request.path}"
    return text + _canonical_query(request.query(), lower)


def strings_to_sign(request: Request, account: str) -> tuple[str, ...]:
    """The strings a valid signature may be of: Azure's (parameter names lower-cased) and the
    azure-batch SDK's (names as sent, e.g. `timeOut`). Both cover every value."""
    return tuple(dict.fromkeys((string_to_sign(request, account),
                                string_to_sign(request, account, lower=False))))  # fmt: skip


# --- the request -----------------------------------------------------------------------------


def auth_failed(detail: str) -> GatewayError:
    """403 AuthenticationFailed with Batch's AuthenticationErrorDetail."""
    return gateway_error(grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_FAILED", detail,
                         metadata={"AuthenticationErrorDetail": detail})  # fmt: skip


def request_time(headers: dict[str, str]) -> datetime:
    """When the request was made: `ocp-date`, else `Date` (RFC 1123, GMT)."""
    name = "ocp-date" if headers.get("ocp-date") else "date"
    raw = headers.get(name, "")
    if not raw:
        raise auth_failed("The request has no ocp-date or Date header.")
    m = RFC1123.fullmatch(raw.strip())
    try:
        if m is None:
            raise ValueError(raw)
        day, month, year, hour, minute, second = m.groups()
        return datetime(int(year), MONTHS.index(month) + 1, int(day), int(hour), int(minute),
                        int(second), tzinfo=UTC)  # fmt: skip
    except ValueError:
        raise auth_failed(f"The {name} header is not an RFC 1123 date: '{raw[:64]}'.") from None


def _check_time(headers: dict[str, str], skew: float, now: datetime) -> None:
    when = request_time(headers)
    if abs((now - when).total_seconds()) > skew:
        raise auth_failed(
            f"The request date '{format_datetime(when, usegmt=True)}' is more than {skew:g} "
            "seconds from the server's time."
        )


def _mac(key: bytes, text: str) -> bytes:
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest())


def authenticate(
    request: Request, accounts: dict[str, bytes], skew: float, now: datetime | None = None
) -> str:
    """The (lower-case) account whose key signed the request, made within `skew` seconds of
    `now`; else 403 AuthenticationFailed. An unknown account and a wrong key answer alike."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    account, _, signature = credential.strip().partition(":")
    if scheme != "SharedKey" or not account or not signature:
        raise auth_failed("The Authorization header is not SharedKey {account}:{signature}.")
    key = accounts.get(account.lower())
    # an unknown account is checked against a key nobody has: it takes as long as a wrong key
    secret = key if key is not None else _NO_KEY
    given = signature.encode("latin-1")  # the header's own bytes: any of them compare
    # the account as the client spelled it is what it signed
    matched = [
        hmac.compare_digest(_mac(secret, t), given) for t in strings_to_sign(request, account)
    ]
    if key is None or not any(matched):
        raise auth_failed(BAD_SIGNATURE)
    _check_time(request.headers, skew, now or datetime.now(UTC))
    return account.lower()
