"""Process counters exposed at /metrics in the Prometheus text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

HELP = {
    "inkstep_ws_connections": ("gauge", "Open WebSocket connections on this gateway"),
    "inkstep_ws_frames_in_total": ("counter", "Frames received from clients"),
    "inkstep_ops_forwarded_total": ("counter", "Client ops written to session inboxes"),
    "inkstep_ops_refused_total": ("counter", "Client frames refused at the gateway"),
    "inkstep_presence_total": ("counter", "Presence updates received"),
    "inkstep_events_delivered_total": ("counter", "Ordered events queued to clients"),
    "inkstep_closed_too_slow_total": ("counter", "Connections closed with 4409"),
}


@dataclass
class Metrics:
    counters: Counter[str] = field(default_factory=Counter)

    def inc(self, name: str, by: int = 1) -> None:
        self.counters[name] += by

    def render(self, gauges: dict[str, float]) -> str:
        values: dict[str, float] = {**self.counters, **gauges}
        lines = []
        for name, (kind, text) in HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines.append(f"{name} {values.get(name, 0)}")
        return "\n".join(lines) + "\n"
