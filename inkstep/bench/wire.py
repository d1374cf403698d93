"""A lean WebSocket client for the load generator: an asyncio protocol that hands each text
message to a callback the moment its bytes arrive.

Profiled under `bench fanout --sessions 10`, the generator spent most of its CPU inside the
`websockets` client (frame parsing, an assembler, a task wake-up per message) and stamped
each receipt only after that wake-up. The server sees the same RFC 6455 frames; this client
only leaves out what the benchmark does not use (subprotocols, other extensions).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import time
import zlib
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from websockets.speedups import apply_mask

OnText = Callable[[str, float], None]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
_ABNORMAL_CLOSE = 1006
_RSV1 = 0x40
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


class HandshakeError(ConnectionError):
    """The server did not switch to WebSocket."""


def frame(opcode: int, payload: bytes, rsv: int = 0) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2)."""
    length, first = len(payload), 0x80 | rsv | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = random.getrandbits(32).to_bytes(4, "big")
    return header + mask + apply_mask(payload, mask)


class Deflate:
    """permessage-deflate (RFC 7692) as the server agreed to it in its answer."""

    def __init__(self, agreed: str) -> None:
        params = {name.strip(): value.strip() for name, _, value in
                  (part.partition("=") for part in agreed.split(";")[1:])}  # fmt: skip
        self._client_bits = int(params.get("client_max_window_bits") or 15)
        self._reset_compressor = "client_no_context_takeover" in params
        self._reset_decompressor = "server_no_context_takeover" in params
        self._compressor = zlib.compressobj(wbits=-self._client_bits)
        self._decompressor = zlib.decompressobj(wbits=-15)

    def compress(self, data: bytes) -> bytes:
        if self._reset_compressor:
            self._compressor = zlib.compressobj(wbits=-self._client_bits)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[: -len(_DEFLATE_TAIL)] if out.endswith(_DEFLATE_TAIL) else out

    def decompress(self, data: bytes) -> bytes:
        if self._reset_decompressor:
            self._decompressor = zlib.decompressobj(wbits=-15)
        return self._decompressor.decompress(data + _DEFLATE_TAIL)


class WireSocket(asyncio.Protocol):
    """One client connection. Messages wait in a queue for `recv()` until `deliver_to` names
    a callback, which then gets each one with its receipt time."""

    def __init__(self, key: bytes, request: bytes) -> None:
        self._key, self._request = key, request
        self._deflate: Deflate | None = None
        self._compressed = False  # the message being received
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._on_text: OnText | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False

    # ---- opening ----------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, timeout_s: float, deflate: bool = False) -> WireSocket:
        """Open `ws://host:port/path?query` and complete the upgrade; `deflate` offers
        permessage-deflate."""
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"only ws:// URLs: {url}")
        port = parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        key = base64.b64encode(random.getrandbits(128).to_bytes(16, "big"))
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {_DEFLATE_OFFER}\r\n" if deflate else "")
            + "\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            _, socket = await loop.create_connection(
                lambda: cls(key, request), parts.hostname, port
            )
            await socket._upgraded
        return socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def _finish_upgrade(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:])
        }
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if not head[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != accept:
            self._upgraded.set_exception(HandshakeError(f"no upgrade: {head[0]}"))
            self._abort()
            return
        if (agreed := headers.get("sec-websocket-extensions", "")).startswith("permessage-deflate"):
            self._deflate = Deflate(agreed)
        self._upgraded.set_result(None)

    # ---- receiving --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._buffer += data
        if not self._upgraded.done():
            self._finish_upgrade()
            if not self._upgraded.done() or self._upgraded.exception() is not None:
                return
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if second & 0x80:
                self._fail(1002, "a server frame was masked")
                return
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            self._on_frame(first, payload, now)

    def _on_frame(self, first: int, payload: bytes, now: float) -> None:
        opcode = first & 0x0F
        if opcode in (_TEXT, _BINARY, _CONTINUATION):
            if opcode != _CONTINUATION:
                self._compressed = bool(first & _RSV1)
            self._fragments.append(payload)
            if first & 0x80:
                data = b"".join(self._fragments)
                self._fragments.clear()
                if self._compressed:
                    if self._deflate is None:
                        self._fail(1002, "a compressed frame without permessage-deflate")
                        return
                    data = self._deflate.decompress(data)
                message = data.decode()
                if self._on_text is not None:
                    self._on_text(message, now)
                else:
                    self._queue.put_nowait(message)
        elif opcode == _PING:
            self._write(frame(_PONG, payload))
        elif opcode == _CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._record_close(code, payload[2:].decode(errors="replace"))
            self._send_close(code if code != 1005 else 1000)
            if self._transport is not None:
                self._transport.close()

    def deliver_to(self, on_text: OnText) -> None:
        """From now on, hand each message to `on_text`, starting with any still queued."""
        while not self._queue.empty():
            if (message := self._queue.get_nowait()) is not None:
                on_text(message, time.monotonic())
        self._on_text = on_text

    async def recv(self) -> str:
        """The next message (only before `deliver_to`); ConnectionError once closed."""
        message = await self._queue.get()
        if message is None:
            raise ConnectionError(f"closed: {self.close_code} {self.close_reason}".strip())
        return message

    # ---- sending and closing ----------------------------------------------------------

    def send(self, text: str) -> None:
        if self.close_code is not None or self._close_sent:
            raise ConnectionError(f"closed: {self.close_code}")
        if self._deflate is not None:
            self._write(frame(_TEXT, self._deflate.compress(text.encode()), _RSV1))
        else:
            self._write(frame(_TEXT, text.encode()))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close 1000 and wait for the server's close (or the connection's end)."""
        self._send_close(1000)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._closed)
        except TimeoutError:
            self._abort()

    def _send_close(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(frame(_CLOSE, code.to_bytes(2, "big")))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _record_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    def _fail(self, code: int, reason: str) -> None:
        self._record_close(code, reason)
        self._send_close(code)
        self._abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._record_close(_ABNORMAL_CLOSE, "" if exc is None else str(exc))
        if not self._upgraded.done():
            self._upgraded.set_exception(exc or HandshakeError("closed during the upgrade"))
        if not self._closed.done():
            self._closed.set_result(None)
        self._queue.put_nowait(None)
