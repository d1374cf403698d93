"""User and session tokens (JWT): minting for local use and verification for the gateway."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from inkstep.settings import Settings

SESSION_AUDIENCE = "inkstep-session"


class TokenError(Exception):
    """A token that is missing, malformed, expired or signed with another key."""


@dataclass(frozen=True)
class UserClaims:
    user_id: str
    plan: str
    teacher: bool


@dataclass(frozen=True)
class SessionClaims:
    session_id: str
    user_id: str
    role: str
    expires_at: int


def signing_secret(settings: Settings) -> str:
    """INKSTEP_SECRET_KEY, else a secret created once and kept in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_suffix(".tmp")
        candidate.write_text(secrets.token_urlsafe(48))
        candidate.chmod(0o600)
        candidate.replace(path)
    return path.read_text().strip()


def _verify_key(settings: Settings) -> str:
    if settings.jwt_algorithm.startswith("RS"):
        if not settings.jwt_public_key:
            raise TokenError("RS256 needs INKSTEP_JWT_PUBLIC_KEY")
        return settings.jwt_public_key
    return signing_secret(settings)


def _encode(settings: Settings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, signing_secret(settings), algorithm="HS256")


def _decode(token: str, key: str, algorithm: str, **options: Any) -> dict[str, Any]:
    # One algorithm per key: accepting HS256 with an RS public key would let anyone sign.
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[algorithm], options={"require": ["exp", "sub"]}, **options
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    return claims


def mint_user_token(
    settings: Settings, user_id: str, plan: str = "free", teacher: bool = False,
    ttl_s: int = 7 * 24 * 3600,
) -> str:  # fmt: skip
    now = int(time.time())
    claims = {"sub": user_id, "plan": plan, "teacher": teacher, "iat": now, "exp": now + ttl_s}
    return _encode(settings, claims)


def verify_user_token(settings: Settings, token: str) -> UserClaims:
    claims = _decode(token, _verify_key(settings), settings.jwt_algorithm)
    if claims.get("aud") is not None:
        raise TokenError("a session token cannot be used as a user token")
    plan = claims.get("plan", "free")
    if plan not in ("free", "pro"):
        raise TokenError(f"unknown plan {plan!r}")
    return UserClaims(str(claims["sub"]), plan, bool(claims.get("teacher", False)))


def mint_session_token(
    settings: Settings, session_id: str, user_id: str, role: str
) -> tuple[str, int]:
    expires_at = int(time.time()) + settings.session_token_ttl_s
    claims = {"sub": user_id, "sid": session_id, "role": role, "exp": expires_at,
              "aud": SESSION_AUDIENCE}  # fmt: skip
    return _encode(settings, claims), expires_at


def verify_session_token(settings: Settings, token: str) -> SessionClaims:
    claims = _decode(token, signing_secret(settings), "HS256", audience=SESSION_AUDIENCE)
    try:
        return SessionClaims(
            str(claims["sid"]), str(claims["sub"]), str(claims["role"]), int(claims["exp"])
        )
    except KeyError as exc:
        raise TokenError(f"session token lacks {exc}") from None
