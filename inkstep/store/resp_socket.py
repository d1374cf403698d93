"""A blocking Redis connection with nothing between the socket and the RESP parser.

The session loop's link sends a batch's writes and its next inbox read, then reads the
replies, once per batch. Through redis-py's connection that cost ~63 µs of CPU a batch,
measured here against a local Redis; on a plain socket with hiredis packing and parsing it
cost ~38 µs. Part of the difference is the socket's timeout: a Python socket with a timeout
polls before every send and every receive, one more system call each. Here the socket is
blocking and the kernel enforces the timeout (SO_RCVTIMEO, SO_SNDTIMEO), so a Redis that
stops answering still ends in an error rather than a hung session.

redis-py opens the connection (host or Unix socket, TLS, AUTH, SELECT, protocol version are
all in the URL), then this takes over its socket and never hands it back.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

Command = tuple[Any, ...]

RECEIVE_BUFFER_BYTES = 65536


class RespSocket:
    """One connection, one thread: `send` commands, then take each reply with `reply`."""

    def __init__(self, pool: redis.ConnectionPool, timeout_s: float) -> None:
        # Kept for `close`: redis-py closes the socket when its connection is collected.
        self._connection = pool.connection_class(**pool.connection_kwargs)
        self._connection.connect()
        # redis-py keeps the open socket here; only this object reads and writes it now.
        self._sock: socket.socket = self._connection._sock
        self._sock.settimeout(None)
        seconds, micros = int(timeout_s), int((timeout_s % 1) * 1_000_000)
        limit = struct.pack("ll", seconds, micros)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)

    def send(self, commands: list[Command]) -> None:
        """Write the commands in one send."""
        self._sock.sendall(b"".join(map(hiredis.pack_command, commands)))

    def reply(self) -> Any:
        """The next reply, waiting for it; an error reply raises ResponseError, a closed or
        silent connection (past the timeout) raises ConnectionError."""
        while (answer := self._reader.gets()) is False:
            try:
                received = self._sock.recv(RECEIVE_BUFFER_BYTES)
            except OSError as exc:  # BlockingIOError when the receive timeout passed
                raise RedisConnectionError(f"error reading from redis: {exc}") from exc
            if not received:
                raise RedisConnectionError("redis closed the connection")
            self._reader.feed(received)
        if isinstance(answer, ResponseError):
            raise answer
        return answer

    def close(self) -> None:
        self._connection.disconnect()
