"""The realtime gateway: REST, WebSocket, fan-out and presence."""
