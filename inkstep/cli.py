"""The `inkstep` command: serve, gateway, token, replay, lessons, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys
from contextlib import ExitStack
from pathlib import Path

from inkstep.settings import Settings

BENCHES = ("fanout", "join", "scoring", "recovery", "chaos", "memory", "checkpoint")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The benchmarks import Ray, which reads its settings once: only `bench` loads them.
    parser = build_parser(with_benches=argv[:1] == ["bench"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    use_data_dir(getattr(args, "data_dir", None))
    result: int = args.func(args)
    return result


def build_parser(with_benches: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inkstep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # The commands that work on a local server's data: its services, its secret, its blobs.
    local_data = argparse.ArgumentParser(add_help=False)
    local_data.add_argument(
        "--data-dir", type=Path, default=None, help="the data folder of `inkstep serve`"
    )

    serve = commands.add_parser(
        "serve", help="run everything locally on embedded defaults", parents=[local_data]
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--workers", type=int, default=1, help="gateway processes on one port")
    serve.set_defaults(func=cmd_serve)

    gateway = commands.add_parser(
        "gateway", help="run a gateway against configured services", parents=[local_data]
    )
    gateway.add_argument("--host", default="0.0.0.0")
    gateway.add_argument("--port", type=int, default=8765)
    gateway.add_argument("--workers", type=int, default=1)
    gateway.set_defaults(func=cmd_gateway)

    token = commands.add_parser(
        "token", help="print a user token signed with the local secret", parents=[local_data]
    )
    token.add_argument("--user", required=True)
    token.add_argument("--plan", choices=("free", "pro"), default="free")
    token.add_argument("--teacher", action="store_true")
    token.add_argument("--ttl-s", type=int, default=7 * 24 * 3600)
    token.set_defaults(func=cmd_token)

    replay = commands.add_parser("replay", help="session replays")
    replay_commands = replay.add_subparsers(dest="replay_command", required=True)
    export = replay_commands.add_parser(
        "export", help="write every event of a session as NDJSON", parents=[local_data]
    )
    export.add_argument("session_id")
    export.add_argument("-o", "--output", type=Path, default=None, help="file (default stdout)")
    export.set_defaults(func=cmd_replay_export)

    lessons = commands.add_parser("lessons", help="lesson definitions")
    lesson_commands = lessons.add_subparsers(dest="lessons_command", required=True)
    load = lesson_commands.add_parser(
        "import", help="validate lesson files and upsert them", parents=[local_data]
    )
    load.add_argument("paths", nargs="+", type=Path)
    load.set_defaults(func=cmd_lessons_import)

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    benches = bench.add_subparsers(dest="bench", required=True)
    for name in BENCHES if with_benches else ():
        try:
            module = importlib.import_module(f"inkstep.bench.{name}")
        except ImportError:
            continue
        sub = benches.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def _uvicorn_run(host: str, port: int, workers: int, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_interval_s * 2,
        timeout_graceful_shutdown=5,
        log_level="warning",
    )


def refuse_busy_port(host: str, port: int) -> None:
    """Stop with a clear message, before anything starts, when the port is taken."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        raise SystemExit(
            f"inkstep: cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(is another server running there? choose another with --port)"
        ) from None


def cmd_gateway(args: argparse.Namespace) -> int:
    from inkstep.running import ray_of_running_server

    refuse_busy_port(args.host, args.port)
    settings = Settings()
    if settings.ray_address is None and (address := ray_of_running_server(settings.data_dir)):
        # Before Ray is imported: it reads its authentication mode once, at start.
        os.environ["INKSTEP_RAY_ADDRESS"] = address
        settings = Settings()
    _uvicorn_run(args.host, args.port, args.workers, settings)
    return 0


def use_data_dir(data_dir: Path | None) -> None:
    """`--data-dir` as INKSTEP_DATA_DIR, so the processes this one starts use it too."""
    if data_dir is not None:
        os.environ["INKSTEP_DATA_DIR"] = str(data_dir.resolve())


def cmd_serve(args: argparse.Namespace) -> int:
    """Embedded Redis, Postgres and Ray, then the gateway; everything stops on Ctrl+C."""
    from inkstep.embedded import EmbeddedPostgres, EmbeddedRedis
    from inkstep.keeper import KeptService, ServiceKeeper
    from inkstep.local_ray import RAY_HEAD_PROCESSES, RayHeadProcess
    from inkstep.running import clear_running, running_server, write_running

    refuse_busy_port(args.host, args.port)
    settings = Settings()
    if other := running_server(settings.data_dir):
        # Two servers on one folder would run two Redis appending to the same file.
        raise SystemExit(
            f"inkstep: a server (pid {other['pid']}) is already running with data in "
            f"{settings.data_dir}; stop it, or give this one another --data-dir"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        kept: list[KeptService] = []
        if settings.redis_url is None:
            redis = stack.enter_context(EmbeddedRedis(settings.data_dir / "redis"))
            os.environ["INKSTEP_REDIS_URL"] = redis.url
            kept.append(redis)
        if settings.database_url is None:
            postgres = stack.enter_context(EmbeddedPostgres(settings.data_dir / "postgres"))
            assert postgres.url is not None
            os.environ["INKSTEP_DATABASE_URL"] = postgres.url
            kept.append(postgres)
        # Entered before Ray, so it stops watching only after the sessions' last checkpoint.
        keeper = stack.enter_context(ServiceKeeper(kept, stop_server=_stop_this_server))
        if settings.ray_address is None:
            os.environ["INKSTEP_RAY_ADDRESS"] = _start_local_ray(stack, settings)
            for process_name in RAY_HEAD_PROCESSES:
                keeper.watch_vital(RayHeadProcess(process_name))
            stack.callback(keeper.forget_vital)
        os.environ.setdefault("INKSTEP_LOCAL_SIGN_IN", "true")
        settings = Settings()
        services = {"redis_url": settings.resolved_redis_url(),
                    "database_url": settings.resolved_database_url(),
                    "ray_address": settings.ray_address or "auto",
                    "ray_auth_mode": os.environ.get("RAY_AUTH_MODE", "")}  # fmt: skip
        write_running(settings.data_dir, services)
        stack.callback(clear_running, settings.data_dir)
        print(f"inkstep serving on http://{args.host}:{args.port}/  (data in {settings.data_dir})")
        # uvicorn takes SIGTERM over while it serves, and raises it again once drained under the
        # handler it found (ray.init's exits with 15 there and then; the default kills). This
        # one lets the stack stop Ray, PostgreSQL and Redis, and a requested stop exit with 0.
        signal.signal(signal.SIGTERM, _stop_requested)
        _uvicorn_run(args.host, args.port, args.workers, settings)
    # Not 0 when Ray failed under it, so that a supervisor restarts it.
    return 1 if keeper.vital_lost else 0


def _stop_requested(signum: int, frame: object) -> None:
    """Everything stops when uvicorn returns; nothing is left to do here."""


def _stop_this_server() -> None:
    """As SIGTERM does: the gateway drains, then everything stops."""
    os.kill(os.getpid(), signal.SIGTERM)


def _start_local_ray(stack: ExitStack, settings: Settings) -> str:
    from inkstep.local_ray import start_local_ray

    address = start_local_ray(settings.ray_namespace)
    stack.callback(_stop_session_actors_then_ray)
    return address


def _stop_session_actors_then_ray() -> None:
    """Ask every live session to checkpoint before Ray goes away."""
    import ray

    from actors.shutdown import checkpoint_all_sessions
    from inkstep.local_ray import ray_processes_of_this_process, stop_left_over
    from inkstep.ray_check import RayCheck

    started = ray_processes_of_this_process()
    try:
        if RayCheck().answers():
            checkpoint_all_sessions()
        else:
            logging.getLogger(__name__).warning(
                "Ray's control store does not answer: stopping without the sessions' last "
                "checkpoint (their logs in Redis hold every event)"
            )
    finally:
        ray.shutdown()
        stop_left_over(started)


def cmd_replay_export(args: argparse.Namespace) -> int:
    """Archived segments, then the stream: the same lines as GET /v1/sessions/{id}/replay."""
    from inkstep.replay import export_replay

    settings = Settings()
    if args.output is None:
        count = asyncio.run(export_replay(settings, args.session_id, sys.stdout))
    else:
        with args.output.open("w") as out:
            count = asyncio.run(export_replay(settings, args.session_id, out))
    print(f"{count} events", file=sys.stderr)
    return 0 if count else 1


def cmd_lessons_import(args: argparse.Namespace) -> int:
    from inkstep.lessons import LessonError, load_lesson_file
    from inkstep.store.database import Database
    from scoring import ParamsError, ScoringParams

    try:
        lessons = [load_lesson_file(path) for path in args.paths]
        for lesson in lessons:
            for step in lesson.steps:  # per-step weights and thresholds must name real features
                ScoringParams().for_step(step)
    except (LessonError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def upsert() -> None:
        async with Database(Settings().resolved_database_url()) as db:
            await db.migrate()
            for lesson in lessons:
                await db.upsert_lesson(lesson)

    asyncio.run(upsert())
    for lesson in lessons:
        print(f"imported {lesson.id} ({len(lesson.steps)} steps)")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from inkstep.tokens import mint_user_token

    print(mint_user_token(Settings(), args.user, args.plan, args.teacher, args.ttl_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
