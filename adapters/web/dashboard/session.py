"""The dashboard's cookie, CSRF token and who may see what."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from core.signin import Session, SigninService

COOKIE = "paylinks_session"
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf"


class Forbidden(Exception):
    """A staff member on an owner's page, or a POST without its CSRF token: a 403 page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotSignedIn(Exception):
    pass


def set_cookie(response: web.StreamResponse, secret: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, secret, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=secure)


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=COOKIE_PATH)


async def current(request: web.Request, signins: SigninService) -> Session:
    secret = request.cookies.get(COOKIE, "")
    session = await signins.session(secret) if 16 <= len(secret) <= 100 else None
    if session is None:
        raise NotSignedIn
    return session


def check_csrf(form: Mapping[str, Any], session: Session) -> None:
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise Forbidden("This form was missing its security token (or it was from an old page). "
                        "Go back, reload the page and try again.")


def owner_only(session: Session) -> None:
    if not session.is_owner:
        raise Forbidden("Only the shop's owner can open this page. Ask them if you need something here.")
