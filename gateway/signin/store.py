"""Logins in progress and console sessions, in the gateway's database (shared by replicas).

Only hashes of the browser's secrets are keys: a copy of the database names no cookie. A login
is taken at most once (`take_login` deletes the row it reads, in one statement's transaction),
so a replayed callback finds nothing. Expired rows are swept whenever a row is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.db import console_sessions, oidc_logins

LOGIN_TTL = 600.0  # seconds a person has to finish signing in at the provider


def digest(secret: str) -> str:
    """The sha256 hex of a browser secret: what the database keeps instead of it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the gateway remembers between sending the browser out and its return."""

    binding_hash: str
    nonce: str
    code_verifier: str
    return_to: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in console: the provider's access token, held server-side."""

    sub: str
    access_token: str
    csrf_token: str
    expires_at: float


class SignInStore:
    """Queries on `oidc_logins` and `console_sessions`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_login(self, state: str, login: PendingLogin) -> None:
        """Remember a login in progress under its `state`, sweeping stale ones."""
        with self._engine.begin() as conn:
            conn.execute(
                oidc_logins.delete().where(oidc_logins.c.created_at < login.created_at - LOGIN_TTL)
            )
            conn.execute(
                oidc_logins.insert().values(
                    state_hash=digest(state),
                    binding_hash=login.binding_hash,
                    nonce=login.nonce,
                    code_verifier=login.code_verifier,
                    return_to=login.return_to,
                    created_at=login.created_at,
                )
            )

    def take_login(self, state: str, now: float) -> PendingLogin | None:
        """The login `state` began, removed so that it can never be taken again; None if none.

        Whoever deletes the row owns it: of two callbacks racing with one state, one deletes
        one row and the other deletes none, so at most one of them goes on to a session.
        """
        key = digest(state)
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(oidc_logins).where(oidc_logins.c.state_hash == key)
            ).first()
            if row is None:
                return None
            deleted = conn.execute(oidc_logins.delete().where(oidc_logins.c.state_hash == key))
            if deleted.rowcount != 1 or row.created_at < now - LOGIN_TTL:
                return None
        return PendingLogin(
            row.binding_hash, row.nonce, row.code_verifier, row.return_to, row.created_at
        )

    def add_session(self, session_id: str, session: Session, now: float) -> None:
        """Start a session under the cookie value `session_id`, sweeping expired ones."""
        with self._engine.begin() as conn:
            conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= now))
            conn.execute(
                console_sessions.insert().values(
                    session_hash=digest(session_id),
                    sub=session.sub,
                    access_token=session.access_token,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )

    def session(self, session_id: str, now: float) -> Session | None:
        """The live session the cookie value names, or None (unknown, ended or expired)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(console_sessions).where(
                    console_sessions.c.session_hash == digest(session_id),
                    console_sessions.c.expires_at > now,
                )
            ).first()
        if row is None:
            return None
        return Session(row.sub, row.access_token, row.csrf_token, row.expires_at)

    def end_session(self, session_id: str) -> bool:
        """End the session the cookie value names; True if there was one."""
        with self._engine.begin() as conn:
            result = conn.execute(
                console_sessions.delete().where(
                    console_sessions.c.session_hash == digest(session_id)
                )
            )
        return bool(result.rowcount)

    def count(self) -> tuple[int, int]:
        """(logins in progress, sessions): for tests and operators."""
        with self._engine.connect() as conn:
            logins = conn.execute(sa.select(sa.func.count()).select_from(oidc_logins)).scalar()
            sessions = conn.execute(
                sa.select(sa.func.count()).select_from(console_sessions)
            ).scalar()
        return int(logins or 0), int(sessions or 0)
