"""A response head leaves in the same send as its body, never later than one loop turn.

The transport under `CoalescingTransport` is a real asyncio socket transport (a
socketpair); what the peer reads, and how many writes reached the transport, are counted.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from loopline.serving.online._coalesce import CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def _pair() -> tuple[Any, socket.socket, list[bytes]]:
    ours, peer = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    writes: list[bytes] = []
    real_write = transport.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = counted  # type: ignore[method-assign]
    peer.setblocking(False)
    return transport, peer, writes


def _read(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


def test_a_head_and_its_body_go_out_in_one_write() -> None:
    async def scenario() -> None:
        transport, peer, writes = await _pair()
        coalescing = CoalescingTransport(transport)
        coalescing.write(HEAD)
        coalescing.write(b"{}")
        assert writes == [HEAD + b"{}"]
        await asyncio.sleep(0.01)
        assert _read(peer) == HEAD + b"{}"
        coalescing.close()
        peer.close()

    asyncio.run(scenario())


def test_a_head_alone_leaves_on_the_next_loop_turn_and_before_close() -> None:
    async def scenario() -> None:
        transport, peer, writes = await _pair()
        coalescing = CoalescingTransport(transport)
        coalescing.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert writes == []
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert _read(peer) == b"HTTP/1.1 100 Continue\r\n\r\n"
        coalescing.write(HEAD)
        coalescing.close()  # a held head is sent before the transport closes
        assert writes[-1] == HEAD
        peer.close()

    asyncio.run(scenario())


def test_other_writes_pass_through_untouched() -> None:
    async def scenario() -> None:
        transport, peer, writes = await _pair()
        coalescing = CoalescingTransport(transport)
        for chunk in (b"5\r\nhello\r\n", b"HTTP/1.1 not a head", b"0\r\n\r\n"):
            coalescing.write(chunk)
        assert writes == [b"5\r\nhello\r\n", b"HTTP/1.1 not a head", b"0\r\n\r\n"]
        assert coalescing.is_closing() is False  # everything else is the transport's
        coalescing.close()
        peer.close()

    asyncio.run(scenario())
