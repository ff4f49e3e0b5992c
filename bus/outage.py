"""Outages: which failures mean NATS is away or still recovering, rather than a request being wrong.

While a server restarts, nats-py fails an operation in several ways: no
answer in time, the connection closed or reconnecting, the reconnect buffer
full, JetStream's API not answering yet (its streams still loading). Callers
that answer for the bus (the gateway's 503 ``bus-unavailable``, a submit's
:class:`~agents.errors.SubmitUnconfirmed`, a worker that could not record an
outcome) ask :func:`is_outage` instead of listing them each.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

from bus.errors import BusClosed, Disconnected, NotConnected

__all__ = ["OUTAGES", "describe_outage", "is_outage"]

OUTAGES: tuple[type[Exception], ...] = (
    # No answer in time: the server is away, or its JetStream is catching up.
    nats.errors.TimeoutError,
    # Nobody answers JetStream's API (or a stream's subjects): the server is still starting it.
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    # The connection is gone, going, or being made again.
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.UnexpectedEOF,
    # Reconnecting, and the buffer of what waits to be sent is full.
    nats.errors.OutboundBufferLimitError,
    Disconnected,
    NotConnected,
    BusClosed,
)
"""The errors of an outage, to catch (``except OUTAGES``)."""


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` means NATS could not be reached (or not yet), so the same operation may
    succeed once the bus is back; false for an error of the operation itself."""
    return isinstance(exc, OUTAGES)


def describe_outage(exc: BaseException) -> str:
    """What an outage error means, for a person reading a 503 or a log (nats-py's own words, such
    as "nats: timeout", say little on their own)."""
    match exc:
        case nats.errors.TimeoutError():
            said = "NATS did not answer in time: it is restarting, overloaded or out of reach"
        case (
            nats.errors.NoRespondersError()
            | nats.js.errors.NoStreamResponseError()
            | nats.js.errors.ServiceUnavailableError()
        ):
            said = "JetStream is not answering yet: NATS is starting or recovering"
        case nats.errors.OutboundBufferLimitError():
            said = "NATS is out of reach and what waits to be sent to it fills the buffer"
        case BusClosed():
            said = "this process's connection to NATS is closed (it is shutting down)"
        case _ if is_outage(exc):
            said = "the connection to NATS is down; reconnecting"
        case _:
            return str(exc) or type(exc).__name__
    return f"{said} ({type(exc).__name__}: {exc})" if str(exc) else f"{said} ({type(exc).__name__})"
