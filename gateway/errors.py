"""The contract's errors (§5): one base, status and code as class attributes (a leaf module)."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error that becomes a JSON error response."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        # Further members of the error object beside code and message (a 403 no_grant's
        # `how_to_ask`, contract §13): never anything the caller did not already know.
        self.extra: dict[str, Any] = dict(extra or {})
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    """The request is malformed; nothing was changed."""

    status, code = 400, "bad_request"


class Unauthenticated(GatewayError):
    """No valid bearer token."""

    status, code = 401, "unauthenticated"


class Forbidden(GatewayError):
    """Authenticated but not allowed; `code` names the contract's reason."""

    status, code = 403, "forbidden"


class NotFound(GatewayError):
    """No such object (only said to callers who may see it)."""

    status, code = 404, "not_found"


class Conflict(GatewayError):
    """The object is no longer in a state that allows this (an answered access request)."""

    status, code = 409, "request_not_pending"


class DeletionBlocked(GatewayError):
    """The store keeps a version of the clip under an object lock or legal hold: nothing goes."""

    status, code = 409, "deletion_blocked"

    def __init__(
        self, message: str, *, blocked: tuple[str, ...], removed: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.blocked = blocked  # the version ids the store keeps
        self.removed = removed  # version ids already gone when the store refused (a race)

    def as_detail(self) -> dict[str, list[str]]:
        """A footage.delete_failed event's detail: the versions kept, any removed first."""
        return {"blocked": list(self.blocked), "removed": list(self.removed)}


class MethodNotAllowed(GatewayError):
    """The path exists; the method does not (with an `Allow` header)."""

    status, code = 405, "method_not_allowed"


class RetentionExpired(GatewayError):
    """The footage is older than the retention period and is never served."""

    status, code = 410, "retention_expired"


class RangeNotSatisfiable(GatewayError):
    """The one requested range lies outside the clip."""

    status, code = 416, "range_not_satisfiable"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message, headers={"Content-Range": f"bytes */{size}"})
        self.size = size


class PreconditionFailed(GatewayError):
    """An `If-Match` the clip does not satisfy (RFC 9110 §13.1.1)."""

    status, code = 412, "precondition_failed"


class RateLimited(GatewayError):
    """Too many unauthenticated footage requests from one client address."""

    status, code = 429, "rate_limited"


class StorageUnavailable(GatewayError):
    """The footage store could not be reached."""

    status, code = 502, "storage_unavailable"


class AuditUnavailable(GatewayError):
    """The audit log could not be written, so nothing is served."""

    status, code = 503, "audit_unavailable"


class DetectionUnavailable(GatewayError):
    """Detection's counters cannot be read, so staff are refused rather than left uncounted."""

    status, code = 503, "detection_unavailable"


class ConfigError(Exception):
    """A missing or contradictory setting; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
