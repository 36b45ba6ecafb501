"""moto's S3 server behind a gate that checks presigned URLs the way S3 does.

moto (5.x) serves a presigned URL without checking its signature or its expiry: its IAM auth
mode reads only the Authorization header. So a test of "this URL serves that object, that
range, for that long, and nothing else" needs the check S3 performs, written independently of
botocore's signer from the SigV4 specification
(https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html):

- the canonical request is the method, the path as sent, every query parameter but
  X-Amz-Signature (sorted and URI-encoded), each header named in X-Amz-SignedHeaders with the
  value this request carries, and UNSIGNED-PAYLOAD;
- the signature is HMAC-SHA256 down the AWS4 key chain of the credential's scope;
- the request is refused once X-Amz-Date + X-Amz-Expires has passed (the gate's clock can be
  moved forward, so no test waits for real time).

Requests signed in the Authorization header (boto3's own calls that seed the bucket) pass
through to moto unchecked, as before; a request with neither is refused, as by a private
bucket. Every checked request's headers are kept in `seen` for assertions.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 24 * 3600


class PresignGate:
    """WSGI middleware: verify SigV4 query-string auth, then hand the request to moto."""

    def __init__(self, app: WSGIApp, secrets: dict[str, str]) -> None:
        self.app = app
        self.secrets = secrets
        self.skew = 0.0  # seconds added to the real clock
        self.seen: list[dict[str, str]] = []

    def now(self) -> float:
        return time.time() + self.skew

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = _parse_query(environ.get("QUERY_STRING", ""))
        if "X-Amz-Signature" not in query:
            if "HTTP_AUTHORIZATION" in environ:
                return self.app(environ, start_response)
            return _deny(start_response, "AccessDenied", "Anonymous access is not allowed")
        self.seen.append(_headers(environ))
        problem = self.problem(environ, query)
        if problem:
            return _deny(start_response, *problem)
        return self.app(environ, start_response)

    def problem(self, environ: Environ, query: dict[str, str]) -> tuple[str, str] | None:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            return "AuthorizationQueryParametersError", "unsupported algorithm"
        if "HTTP_AUTHORIZATION" in environ:
            return "InvalidArgument", "Only one auth mechanism allowed"
        access_key, _, scope = query.get("X-Amz-Credential", "").partition("/")
        secret = self.secrets.get(access_key)
        if secret is None:
            return "InvalidAccessKeyId", "unknown access key"
        signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(query.get("X-Amz-Expires", "0"))
        if not 0 < expires <= MAX_EXPIRES:
            return "AuthorizationQueryParametersError", "X-Amz-Expires out of range"
        if self.now() > signed.timestamp() + expires:
            return "AccessDenied", "Request has expired"
        expected = signature(secret, scope, query, environ)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return "SignatureDoesNotMatch", "The request signature we calculated does not match"
        return None


def signature(secret: str, scope: str, query: dict[str, str], environ: Environ) -> str:
    """The SigV4 signature S3 computes for this request and these query parameters."""
    date, region, service, terminal = scope.split("/")
    canonical = canonical_request(environ, query)
    to_sign = "\n".join(
        [ALGORITHM, query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, terminal):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def canonical_request(environ: Environ, query: dict[str, str]) -> str:
    names = query["X-Amz-SignedHeaders"].split(";")
    headers = _headers(environ)
    canonical_headers = "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names)
    canonical_query = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()) if k != "X-Amz-Signature"
    )
    raw_path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/").split("?")[0]
    return "\n".join(
        [
            environ["REQUEST_METHOD"],
            raw_path,
            canonical_query,
            canonical_headers,
            query["X-Amz-SignedHeaders"],
            "UNSIGNED-PAYLOAD",
        ]
    )


def _parse_query(raw: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in raw.split("&") if item)
    return {unquote(k): unquote(v) for k, _, v in pairs}


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _headers(environ: Environ) -> dict[str, str]:
    out = {
        k[5:].lower().replace("_", "-"): str(v) for k, v in environ.items() if k.startswith("HTTP_")
    }
    return out


def _deny(start_response: StartResponse, code: str, message: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    start_response(
        "403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


class GatedMotoServer:
    """moto's S3 behind a PresignGate, on 127.0.0.1 and an ephemeral port, in a thread."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.gate = PresignGate(DomainDispatcherApplication(create_backend_app), secrets)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._server = make_server(
            "127.0.0.1", 0, self.gate, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
