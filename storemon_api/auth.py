"""The optional bearer token (STOREMON_API_TOKEN)."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPBearer

# auto_error=False: a missing header must give our 401 (with WWW-Authenticate), not a 403.
bearer = HTTPBearer(auto_error=False, description="STOREMON_API_TOKEN, when the server sets one.")


def require_token(request: Request) -> None:
    """A FastAPI dependency: passes when no token is configured or the right one is sent."""
    expected: str | None = request.app.state.settings.token
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid bearer token is required (Authorization: Bearer <STOREMON_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )

