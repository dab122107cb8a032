"""Who a Veeam request is: throttled Basic logons, session tokens, the asserted principal."""

from __future__ import annotations

import string
from urllib.parse import quote

import grpc

from jobcontrol.gateway.dialect_state import DialectState
from jobcontrol.gateway.dialects import veeam_rows as rows
from jobcontrol.gateway.dialects import veeam_sessions as sessions
from jobcontrol.gateway.dialects.base import Assertion
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.veeam_sessions import Session, User, decode_basic
from jobcontrol.gateway.dialects.veeam_throttle import LogonThrottle, retry_after
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error

VERSIONS = ("v1_4", "v1_5", "v1_6", "v1_7")
# gRPC metadata is printable ASCII; '%' is escaped so that the encoding is unambiguous
_KEPT = "".join(c for c in string.printable if c not in "%\t\n\r\x0b\x0c")


def _unauthenticated(reason: str, message: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def logon_user(incoming: Incoming, users: dict[str, User], throttle: LogonThrottle) -> User:
    """The logon's user. A throttled name or address waits (429 with Retry-After) even
    with the right password, so that guessing stops; each failure counts for both."""
    version = incoming.query_map().get("v", "latest")
    if version not in ("latest", *VERSIONS):
        shown = version[: rows.ECHOED]
        raise bad_request("INVALID_VERSION", f"API version {shown} is not supported.")
    given = decode_basic(incoming.headers.get("authorization", ""))
    name = given[0] if given is not None else None
    address = incoming.client_address
    wait = throttle.wait(name, address)
    if wait > 0:
        seconds = retry_after(wait)
        raise gateway_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "LOGON_THROTTLED",
            f"Too many failed logons; try again in {seconds} s.",
            metadata={"retry_after": seconds},
        )
    user = sessions.verify(users, *given) if given is not None else None
    if user is None:
        # a request without Basic credentials guesses nothing (a client awaiting the
        # challenge): it is refused without counting
        if given is not None:
            throttle.failed(name, address)
        raise _unauthenticated("BAD_CREDENTIALS", "The user name or password is incorrect.")
    throttle.succeeded(user.name, address)
    return user


def _session_required() -> GatewayError:
    return _unauthenticated(
        "SESSION_REQUIRED", "A valid X-RestSvcSessionId is required; log on first."
    )


def token_of(incoming: Incoming) -> str:
    """The request's session token (the cookie wins over the header); none is 401."""
    token = rows.session_cookie(incoming.request) or incoming.headers.get(rows.TOKEN.lower(), "")
    if not token:
        raise _session_required()
    return token


async def session_of(incoming: Incoming, state: DialectState, token: str) -> Session:
    """The live session of `token`, as the core keeps it (any gateway's); its idle window
    is moved by the lookup. Unknown or expired: 401."""
    try:
        found = await state.get_session(rows.core_session_name(token))
    except GatewayError as error:
        if error.code == grpc.StatusCode.NOT_FOUND:
            raise _session_required() from None
        raise
    session = sessions.session_of(token, found)
    if session is None:
        raise _session_required()
    return session


def principal_of(user: str) -> str:
    """`veeam:<user>`, the user name percent-encoded where metadata cannot carry it."""
    return "veeam:" + quote(user, safe=_KEPT)


def assertion_of(session: Session, collection: str) -> Assertion:
    """The session's user with the core role of its Veeam role on the collection."""
    user = session.user
    return Assertion(principal_of(user.name), ((user.core_role, collection),))


async def end_session(incoming: Incoming, _: None, state: DialectState) -> None:
    """Log off: the caller's own session ends on every gateway (another id is not found)."""
    await state.delete_session(rows.core_session_name(rows.own_session(incoming).id))
