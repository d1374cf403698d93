"""Starting a Ray on this machine, the way inkstep wants it."""

from __future__ import annotations

from typing import Any

import psutil

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
    _stop_log_monitor()
    address: str = ray.get_runtime_context().gcs_address
    return address


def _stop_log_monitor() -> None:
    """Ray's log monitor tails every worker's log files to forward them to drivers that ask;
    inkstep's never do (log_to_driver=False) and the files stay where they are. It cost 0.9%
    of a core on an idle server, a quarter of all it used, and 3.3% with 50 session actors.
    `ray start` can leave it out (--include-log-monitor); ray.init cannot."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    kill = getattr(node, "kill_log_monitor", None)
    if kill is not None:
        kill(check_alive=False)


def ray_processes_of_this_process() -> list[psutil.Process]:
    """The Ray processes (raylet, its agents, the GCS, workers) this process started."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name().startswith(("ray::", "raylet", "gcs_server")) or any(
                "/ray/" in part for part in process.cmdline()[:2]
            ):
                found.append(process)
        except psutil.Error:
            continue  # gone already
    return found


def stop_left_over(processes: list[psutil.Process], grace_s: float = 5.0) -> None:
    """Kill what `ray.shutdown()` left running: with its control store gone, the raylet's
    agents outlive it by a minute or more."""
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue


class RayHeadProcess:
    """A process of the Ray this process started that Ray cannot go on without, and that
    cannot be started again under running workers: its control store, or its raylet."""

    def __init__(self, process_name: str) -> None:
        self.name = f"Ray's {process_name}"
        found = [p for p in ray_processes_of_this_process() if p.name() == process_name]
        if not found:
            raise RuntimeError(f"this process started no {process_name}")
        self.process = found[0]

    def is_running(self) -> bool:
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


RAY_HEAD_PROCESSES = ("gcs_server", "raylet")
