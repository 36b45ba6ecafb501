"""SignIn: begin a login, finish it into a session, find and end sessions (contract §15).

Every way a callback can be wrong ends in SignInFailed before a session row or cookie exists:
an unknown, replayed or expired `state`; a browser other than the one that began the login
(the binding cookie); a response naming another issuer (RFC 9207); a code the provider will
not redeem with this login's PKCE verifier; an ID token failing its checks or this login's
nonce; an access token the Authenticator refuses (wrong issuer, audience, signature, claims).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio.to_thread
import structlog

from gateway.authn import Authenticator
from gateway.errors import Unauthenticated
from gateway.ratelimit import AttemptLimiter
from gateway.signin.client import OidcClient, SignInFailed, now, random_token
from gateway.signin.discovery import ProviderUnavailable
from gateway.signin.store import PendingLogin, Session, SignInStore, digest
from gateway.types import Principal

log = structlog.get_logger(__name__)

# Where the console was (its hash route), to return there after signing in: `#/…`, printable
# ASCII, bounded. Anything else returns to the console's default view.
RETURN_TO = re.compile(r"#/[\x21-\x7e]{0,500}", re.ASCII)
MAX_PARAM = 2048


@dataclass(frozen=True, slots=True)
class Started:
    """A login begun: where to send the browser, and the binding cookie's value."""

    location: str
    binding: str


@dataclass(frozen=True, slots=True)
class Finished:
    """A session started: the cookie's value, when it ends, and where the console goes."""

    session_id: str
    expires_at: float
    return_to: str
    principal: Principal


class SignIn:
    """The gateway's sign-in through its identity provider."""

    def __init__(
        self,
        client: OidcClient,
        store: SignInStore,
        authn: Authenticator,
        attempts: AttemptLimiter,
    ) -> None:
        self.client = client
        self.store = store
        self._authn = authn
        # Every /auth/login writes a row before anyone has signed in: the same per-address
        # budget as unauthenticated footage requests keeps that from filling the database.
        self.attempts = attempts

    async def begin(self, return_to: str | None) -> Started:
        """A fresh state, nonce and PKCE verifier, remembered; the provider's sign-in URL."""
        state, nonce, verifier, binding = (random_token() for _ in range(4))
        target = return_to if return_to and RETURN_TO.fullmatch(return_to) else ""
        location = await self.client.authorization_url(state=state, nonce=nonce, verifier=verifier)
        login = PendingLogin(digest(binding), nonce, verifier, target, now())
        await anyio.to_thread.run_sync(self.store.add_login, state, login)
        return Started(location, binding)

    async def finish(
        self,
        *,
        state: str | None,
        code: str | None,
        iss: str | None,
        error: str | None,
        binding: str | None,
    ) -> Finished:
        """Turn the provider's answer into a session; SignInFailed (nothing kept) otherwise."""
        if not state or len(state) > MAX_PARAM:
            raise SignInFailed("no state")
        # Taken (deleted) first, whatever follows: a state is good for one answer only.
        login = await anyio.to_thread.run_sync(self.store.take_login, state, now())
        if login is None:
            raise SignInFailed("unknown, used or expired state")
        if binding is None or digest(binding) != login.binding_hash:
            raise SignInFailed("the login was begun in another browser")
        if error is not None:
            raise SignInFailed(f"the provider answered {error[:60]!r}")
        if not code or len(code) > MAX_PARAM:
            raise SignInFailed("no code")
        try:
            meta = await self.client.discovery.metadata()
        except ProviderUnavailable as exc:
            raise SignInFailed("provider unavailable") from exc
        self.client.check_issuer_parameter(meta, iss)
        tokens = await self.client.exchange(code, login.code_verifier, login.nonce)
        try:
            principal = await self._authn.authenticate(f"Bearer {tokens.access_token}")
        except Unauthenticated as exc:
            raise SignInFailed("the access token is not one this gateway accepts") from exc
        session_id, csrf = random_token(), random_token()
        session = Session(principal.sub, tokens.access_token, csrf, principal.expires_at)
        await anyio.to_thread.run_sync(self.store.add_session, session_id, session, now())
        log.info("signin.session_started", principal=principal.sub)
        return Finished(session_id, principal.expires_at, login.return_to, principal)

    async def session(self, session_id: str | None) -> Session | None:
        """The live session a cookie names, or None."""
        if not session_id or len(session_id) > MAX_PARAM:
            return None
        return await anyio.to_thread.run_sync(self.store.session, session_id, now())

    async def principal(self, session: Session) -> Principal | None:
        """Who the session's access token says is signed in, verified as any bearer token."""
        try:
            return await self._authn.authenticate(f"Bearer {session.access_token}")
        except Unauthenticated:
            return None

    async def end(self, session_id: str | None) -> bool:
        """End the session a cookie names (a no-op for none)."""
        if not session_id or len(session_id) > MAX_PARAM:
            return False
        ended = await anyio.to_thread.run_sync(self.store.end_session, session_id)
        if ended:
            log.info("signin.session_ended")
        return ended
