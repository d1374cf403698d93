"""Starting a Ray on this machine, the way inkstep wants it."""

from __future__ import annotations

from typing import Any

SYSTEM_CONFIG: dict[str, Any] = {
    # Ray starts its workers at niceness 15 by default, to favour the driver. Session actors
    # are on the path of every op, so under load they would wait behind the gateway and the
    # clients; they run at normal priority instead.
    "worker_niceness": 0,
    # Ray would keep one idle worker per CPU waiting from the start: 1.3% of a core each
    # here, half of an idle server's CPU. A session's first actor starts ~1 s later instead.
    "prestart_worker_first_driver": False,
}


def start_local_ray(namespace: str, **options: Any) -> str:
    """ray.init() a new local Ray; answers its GCS address."""
    import ray

    ray.init(
        namespace=namespace,
        include_dashboard=False,
        log_to_driver=False,
        _system_config=SYSTEM_CONFIG,
        **options,
    )
    address: str = ray.get_runtime_context().gcs_address
    return address
