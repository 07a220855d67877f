"""One write per response: uvicorn's response head held until its body follows.

uvicorn's HTTP protocol writes a response's head and its body with two
`transport.write` calls. With TCP_NODELAY (see `server.NoDelayHTTPProtocol`) each is a
send() system call and a TCP segment of its own, and on the loopback each wakes the
client: a profile of a one-row prediction under load (py-spy, wrk at 8 connections)
spent about half of the worker's time inside those sends. `CoalescingTransport` holds a
write that is a response head (`HTTP/1.1 ...` up to the blank line) and sends it with
the next write, the body, which starlette sends in the same step of the event loop; a
head that no write follows in that step (a streamed body, `100 Continue`) is sent on the
loop's next iteration, and before the transport closes. Everything else passes through.
"""

from __future__ import annotations

import asyncio
from typing import Any

HEAD_START = b"HTTP/1."
HEAD_END = b"\r\n\r\n"


class CoalescingTransport:
    """An asyncio transport that sends a response head together with what follows it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif data[:7] == HEAD_START and data[-4:] == HEAD_END:
            self._held = bytes(data)
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (nothing followed it in the same step)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # everything else (is_closing, get_extra_info, pause_reading, ...) is the transport's
        return getattr(self._transport, name)
