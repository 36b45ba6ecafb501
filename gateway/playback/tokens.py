"""Playback tokens: 256 random bits in the URL, only their SHA-256 anywhere else.

The token is a bearer capability for one view (contract §12), so it is treated like a
password: made by `secrets`, handed to the caller once, and never stored, logged or put in an
audit event or an error message. What is stored is its hash, which is what every lookup uses; a
hash is enough because the token has far too much entropy to be guessed from it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)


def new_token() -> str:
    """A fresh playback token (URL-safe base64 of 32 random bytes)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The only form a token is kept in: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def well_formed(token: str) -> bool:
    """Whether `token` could be one we made (anything else is not looked up at all)."""
    return TOKEN_SHAPE.fullmatch(token) is not None


def new_session_id() -> str:
    """A session's public id (in listings and events; it grants nothing)."""
    return "pb_" + secrets.token_urlsafe(12)
