"""A header timeout for uvicorn's HTTP/1.1 protocol, which has none of its own.

uvicorn closes idle keep-alive connections, but a connection that sends its request
headers a byte at a time is kept for ever, and enough of them fill the connection
limit (slowloris). Each connection here must complete a request's headers within
``--header-timeout`` seconds of opening, or of its previous answer; otherwise it gets
a 408 and is closed. A connection that sent nothing at all is closed without an answer,
and an idle keep-alive connection is left to uvicorn's own keep-alive timeout (an
unasked-for 408 there could be read as the answer to the client's next request).
Bodies have their own limit (``--body-timeout``, in the API).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

_BODY = json.dumps({"error": "request headers took too long (--header-timeout)"}).encode()
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY)}\r\nconnection: close\r\n\r\n".encode()
    + _BODY
)


def header_timeout_protocol(
    seconds: float, *, on_timeout: Callable[[], None] = lambda: None
) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with a deadline on each request's headers."""

    class HeaderTimeoutProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _answered = False  # at least one response sent on this connection
        _bytes = False  # bytes received since the deadline was armed

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._bytes = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._answered = True
            super().on_response_complete()
            self._arm()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._bytes = False
            # A request has started once uvicorn made a new cycle for it; the timer
            # remembers the cycle it was armed under and fires only if none came.
            self._deadline = self.loop.call_later(seconds, self._expire, self.cycle)

        def _expire(self, armed_under: object) -> None:
            # Only a connection still between requests: same cycle as when armed, and
            # that one answered (a pipelined request may have started under it).
            waiting = self.cycle is armed_under and (
                armed_under is None or armed_under.response_complete
            )
            if self.transport.is_closing() or not waiting:
                return
            if not self._bytes:
                if not self._answered:  # opened and silent: close without a word
                    on_timeout()
                    self.transport.close()
                return  # idle keep-alive: uvicorn's keep-alive timeout closes it
            on_timeout()
            self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()

    return HeaderTimeoutProtocol
