"""The dashboard's cookie, CSRF token and who may see what."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from core.i18n import N_, TranslatableError
from core.signin import Session, SigninService

COOKIE = "paylinks_session"
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf"
# The sign-in page's own CSRF token (no session exists yet): a cookie sent only back to the sign-in URLs.
SIGNIN_COOKIE = "paylinks_signin"
SIGNIN_COOKIE_PATH = "/dashboard/signin"


class Forbidden(TranslatableError):
    """A staff member on an owner's page, or a POST without its CSRF token: a 403 page. The message is a
    catalog msgid (N_), shown in the page's language."""


class NotSignedIn(Exception):
    pass


def set_cookie(response: web.StreamResponse, secret: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, secret, path=COOKIE_PATH, httponly=True, samesite="Lax", secure=secure)


def set_signin_cookie(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    # Strict: sent only by pages of this site, so a form on another site cannot carry it.
    response.set_cookie(SIGNIN_COOKIE, token, path=SIGNIN_COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=secure, max_age=3600)


def check_signin_csrf(form: Mapping[str, Any], cookie: str) -> None:
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or len(cookie) < 20 or not hmac.compare_digest(token.encode(), cookie.encode()):
        raise Forbidden(N_("This sign-in form was missing its security token (or cookies are off). Open the "
                           "sign-in link again and press Sign in."))


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
        raise Forbidden(N_("This form was missing its security token (or it was from an old page). "
                           "Go back, reload the page and try again."))


def owner_only(session: Session) -> None:
    if not session.is_owner:
        raise Forbidden(N_("Only the shop's owner can open this page. Ask them if you need something here."))
