"""``require_admin``: the one check that keeps an operations route to admin keys.

Every user's records, client metadata, key ids, alerts and the fault switch are behind it; a key
without ``admin = true`` in the keys file gets 403 saying how to make one. The open server's
``anonymous`` caller (no keys file: the operator's own machine) is an admin. Reads the caller
``AccessMiddleware`` left in ``request.state``.
"""

from __future__ import annotations

from fastapi import Depends, Request

from errors import AdminOnly
from policy.keys import Caller

ADMIN_HINT = (
    "give its entry in LLM_SERVER_API_KEYS_FILE `admin = true`, or make an admin key with "
    "python -m policy.keys new --user NAME --tier TIER --admin"
)


def caller_of(request: Request) -> Caller:
    caller: Caller = request.state.caller
    return caller


async def require_admin(request: Request) -> Caller:
    caller = caller_of(request)
    if not caller.admin:
        raise AdminOnly(
            f"{request.method} {request.url.path} needs an admin key, and the key of {caller.user_id!r} is not one: "
            + ADMIN_HINT
        )
    return caller


ADMIN_ONLY = [Depends(require_admin)]  # for ``dependencies=`` of a route or a router
