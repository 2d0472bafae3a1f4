"""Route dependencies: who is calling (API key or anonymous), may they, and are they within their rate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.auth import KeyRing, Principal, RateLimiter
from service.config import Scope


@dataclass(frozen=True, slots=True)
class Guard:
    keys: KeyRing
    rate: RateLimiter


def _token(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return request.headers.get("x-api-key")


def requires(scope: Scope | None) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that checks ``scope`` (None: anyone) and counts the request against its client's rate."""

    async def check(request: Request) -> Principal:
        guard: Guard = request.app.state.guard
        principal = guard.keys.identify(_token(request), request.client.host if request.client else "unknown")
        if scope is not None:
            guard.keys.require(principal, scope)
        guard.rate.take(principal.client)
        return principal

    return check


Reader = Annotated[Principal, Depends(requires(Scope.read))]
Writer = Annotated[Principal, Depends(requires(Scope.write))]
