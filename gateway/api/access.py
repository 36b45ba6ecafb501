"""Who may call an administrative route: `requires`, one decorator every such route wears.

Like starlette's `authentication.requires`, but over our two kinds of standing (contract §6):
the customer who owns the data a route touches, and a role the policy gives an administrative
action (`policies/policy.csv`, purpose `-`). Footage requests are not decided here: they go
through the flow, which audits every decision (gateway/pipeline.py).

The caller is authenticated first (401), and a suspended caller is refused (403
`principal_suspended`) before anything else, by the same question footage requests ask
(gateway/facts.py). Then the route's own path parameters are read (400), then standing (403).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import authorization, services
from gateway.authz import PolicyEngine
from gateway.errors import Forbidden
from gateway.types import Principal, Role

Handler = Callable[[Request, Principal], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
# The customer whose data a route touches, from its path; raises BadRequest if malformed.
OwnerOf = Callable[[Request], str]

ROLE_REFUSAL = "Your role may not do this."


def requires(
    action: str | None = None,
    *,
    owner: OwnerOf | None = None,
    customer: bool = False,
    message: str = ROLE_REFUSAL,
    code: str = "forbidden",
) -> Callable[[Handler], Endpoint]:
    """Decorate a handler(request, principal): call it only for a caller with standing.

    Standing is any one of: the policy gives one of their roles `action`; they own the
    customer `owner(request)` names; `customer` and they are a customer (acting on their own
    data). With none of these given, any authenticated, not suspended caller qualifies.
    Otherwise: 403 with `message` and `code`.
    """
    open_to_all = action is None and owner is None and not customer

    def decorate(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            principal = await caller(request)
            customer_id = owner(request) if owner is not None else None
            if not open_to_all and not (
                (customer and is_customer(principal))
                or permits(services(request).policy, principal, action, customer_id)
            ):
                raise Forbidden(message, code=code)
            return await handler(request, principal)

        return endpoint

    return decorate


async def caller(request: Request) -> Principal:
    """The authenticated, not suspended principal (401 / 403 principal_suspended otherwise)."""
    return await services(request).flow.authenticate(authorization(request))


def permits(
    policy: PolicyEngine,
    principal: Principal,
    action: str | None = None,
    owner_of: str | None = None,
) -> bool:
    """The administrative rule: the owner of customer `owner_of`, or a role given `action`."""
    if owner_of is not None and owns(principal, owner_of):
        return True
    return action is not None and bool(policy.may(principal, action))


def owns(principal: Principal, customer_id: str) -> bool:
    """A customer whose token names this customer_id owns its cameras, clips and grants."""
    return is_customer(principal) and principal.customer_id == customer_id


def is_customer(principal: Principal) -> bool:
    return Role.CUSTOMER in principal.known_roles and bool(principal.customer_id)
