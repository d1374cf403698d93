"""inkstep: a real-time multiplayer drawing-lesson server."""

from __future__ import annotations

__version__ = "0.1.0"
