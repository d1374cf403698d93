"""One settings object for every process; `INKSTEP_*` environment variables override it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable, with embedded defaults that need no setup."""

    model_config = SettingsConfigDict(env_prefix="INKSTEP_", extra="ignore")

    data_dir: Path = Path.home() / ".inkstep"
    redis_url: str | None = None
    database_url: str | None = None
    blob_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    ray_address: str | None = None
    ray_namespace: str = "inkstep"

    secret_key: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_public_key: str | None = None
    session_token_ttl_s: int = 3600
    local_sign_in: bool = False
    # Where a user's plan comes from: the token's claim (embedded) or the subscriptions table.
    plans_from: Literal["token", "database"] = "token"

    lessons_dir: Path = PACKAGE_ROOT / "lessons"
    scoring_params: Path | None = None

    auth_timeout_s: float = 5.0
    idle_timeout_s: float = 30.0
    ws_ping_interval_s: float = 10.0
    max_frame_bytes: int = 64 * 1024
    send_queue_frames: int = 2048
    ops_per_second: float = 60.0
    ops_burst: int = 120
    abuse_refusals: int = 200
    presence_per_second: float = 20.0
    presence_ttl_s: int = 30
    op_confirm_timeout_s: float = 2.0
    # A gateway that stopped renewing its presence for this long is gone (killed, or its
    # machine lost): sessions let its connections leave.
    gateway_ttl_s: float = 15.0
    resume_tail_max_events: int = 5000

    actor_batch_ops: int = 256
    # 0: each live session is a Ray actor of its own. N: sessions share N named host actors
    # (actors/session_host.py), far less CPU and memory per session. Every gateway and every
    # run against the same Redis must use the same N: it decides where a session lives.
    session_hosts: int = Field(default=0, ge=0)
    stream_tail_events: int = 2000
    checkpoint_every_events: int = 2000
    checkpoint_every_s: float = 60.0
    idle_exit_s: float = 60.0

    public_url: str | None = None

    def resolved_redis_url(self) -> str:
        return self.redis_url or self._running_service("redis_url", "INKSTEP_REDIS_URL")

    def resolved_database_url(self) -> str:
        return self.database_url or self._running_service("database_url", "INKSTEP_DATABASE_URL")

    def _running_service(self, name: str, variable: str) -> str:
        """The embedded service of an `inkstep serve` running on this data folder."""
        from inkstep.running import running_urls

        url = running_urls(self.data_dir).get(name)
        if url is None:
            raise RuntimeError(
                f"{variable} is not set and no `inkstep serve` is running with data in "
                f"{self.data_dir} (start one, or pass its --data-dir)"
            )
        return url

    def resolved_blob_url(self) -> str:
        """The blob store URL; a folder in the data dir by default."""
        return self.blob_url or (self.data_dir / "blobs").resolve().as_uri()
