"""Bearer-token check for a daemon exposed beyond localhost.

Compared with :func:`hmac.compare_digest` so the time a wrong token takes to refuse
does not tell an attacker how many leading characters were right.
"""

from __future__ import annotations

import hmac

#: The one unauthenticated path: load balancers and systemd watchdogs probe it.
PUBLIC_PATHS = frozenset({"/healthz"})


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when an ``Authorization`` header carries ``Bearer <token>``."""
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8"))


def needs_token(path: str, token: str | None) -> bool:
    """True when a request to ``path`` must present the token."""
    return token is not None and path not in PUBLIC_PATHS
