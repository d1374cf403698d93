"""The load generator's lean WebSocket client against a real WebSocket server (`websockets`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from inkstep.bench.wire import HandshakeError, WireSocket

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, deflate: bool = False) -> AsyncIterator[str]:
    compression = "deflate" if deflate else None
    async with serve(handler, "127.0.0.1", 0, compression=compression) as running:
        port = running.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/ws?x=1"


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(f"{connection.request.path if connection.request else ''} {message}")


@pytest.mark.parametrize("deflate", [False, True])
async def test_messages_round_trip_queued_then_by_callback(deflate: bool) -> None:
    async with server(echo, deflate) as url:
        socket = await WireSocket.connect(url, timeout_s=5, deflate=deflate)
        socket.send("one")
        assert await socket.recv() == "/v1/ws?x=1 one"
        socket.send("two")
        socket.send("three " + "x" * 70_000)  # a 64-bit length, compressed or not
        received: list[str] = []
        got_both = asyncio.get_running_loop().create_future()

        def on_text(text: str, _: float) -> None:
            received.append(text)
            if len(received) == 2:
                got_both.set_result(None)

        await asyncio.sleep(0.2)  # "two" waits in the queue, handed over first
        socket.deliver_to(on_text)
        await asyncio.wait_for(got_both, 5)
        assert received[0] == "/v1/ws?x=1 two"
        assert received[1] == "/v1/ws?x=1 three " + "x" * 70_000
        await socket.close()
        assert socket.close_code == 1000


async def test_fragments_are_joined_and_pings_answered() -> None:
    async def fragments(connection: ServerConnection) -> None:
        await connection.send(["ab", "cd", "ef"])  # one message in three frames
        pong = await connection.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        await connection.send("pong seen")
        await connection.wait_closed()

    async with server(fragments) as url:
        socket = await WireSocket.connect(url, timeout_s=5)
        assert await socket.recv() == "abcdef"
        assert await socket.recv() == "pong seen"
        await socket.close()


async def test_the_servers_close_code_and_reason_are_kept() -> None:
    async def slow_consumer(connection: ServerConnection) -> None:
        await connection.close(4409, "too slow")

    async with server(slow_consumer) as url:
        socket = await WireSocket.connect(url, timeout_s=5)
        with pytest.raises(ConnectionError, match="4409 too slow"):
            await socket.recv()
        assert (socket.close_code, socket.close_reason) == (4409, "too slow")
        with pytest.raises(ConnectionError):
            socket.send("after the close")


async def test_a_masked_server_frame_fails_the_connection() -> None:
    async def masking(connection: ServerConnection) -> None:
        # Forge a masked frame, which a server must never send.
        data = Frame(Opcode.TEXT, b"hidden").serialize(mask=True, extensions=[])
        connection.transport.write(data)
        await connection.wait_closed()

    async with server(masking) as url:
        socket = await WireSocket.connect(url, timeout_s=5)
        with pytest.raises(ConnectionError):
            await socket.recv()
        assert socket.close_code == 1002


async def test_a_server_that_does_not_upgrade_is_a_handshake_error() -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    async with plain:
        with pytest.raises(HandshakeError, match="404"):
            await WireSocket.connect(f"ws://127.0.0.1:{port}/v1/ws", timeout_s=5)
