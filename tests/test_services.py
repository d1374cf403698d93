"""What a gateway process keeps between requests."""

from __future__ import annotations

import pytest

from gateway import services as services_module
from gateway.services import Services
from inkstep.settings import Settings


def test_a_gateway_keeps_the_most_recently_used_actor_handles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services_module, "KNOWN_ACTORS", 2)
    services = Services(Settings())
    for session_id in ("s1", "s2", "s3"):
        services._remember_actor(session_id, f"handle of {session_id}")
    assert list(services.actors) == ["s2", "s3"]
    services.actors.pop("s2")  # asked again (`actor` takes it out while it asks)
    services._remember_actor("s2", "handle of s2")
    services._remember_actor("s4", "handle of s4")
    assert list(services.actors) == ["s2", "s4"]
