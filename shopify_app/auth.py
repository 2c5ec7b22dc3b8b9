"""Who is asking: ID-token (session token) auth for every embedded request, and the
authorization-code OAuth flow for installs that start outside Shopify admin."""
from __future__ import annotations

import functools
import hmac
import logging
import re
import secrets
import unicodedata
from urllib.parse import urlencode, urlparse, urlsplit

import shopify
from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, session, url_for
from shopify import session_token

from . import orders, security, shops
from .shopify_admin import ShopifyAuthError, ShopifyUnavailable

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

RETRY_HEADER = "X-Shopify-Retry-Invalid-Session-Request"


class InvalidSession(Exception):
    pass


def decode_id_token(token: str) -> tuple[str, dict]:
    """Verify an App Bridge ID token (HS256, our client id as audience, iss/dest on the same
    shop, exp and nbf required, with ShopifyAPI's 10 s leeway) against the current and the old secret.
    Returns (shop domain, claims)."""
    settings = current_app.config["SETTINGS"]
    last = None
    for secret in settings.webhook_secrets:
        try:
            claims = session_token.decode_from_header(f"Bearer {token}", settings.api_key, secret)
            break
        except session_token.SessionTokenError as exc:
            last = exc
        except (TypeError, ValueError, AttributeError) as exc:   # a claim of the wrong type
            last = exc
    else:
        raise InvalidSession(str(last))
    # PyJWT checks exp and nbf only when present, and ShopifyAPI does not require them: a token
    # without them would never expire.
    for claim in ("exp", "nbf"):
        if claims.get(claim) is None:
            raise InvalidSession(f"the token has no {claim}")
    if not isinstance(claims.get("dest"), str):
        raise InvalidSession("the token has no destination")
    shop = shops.valid_shop_domain(urlparse(claims["dest"]).hostname)
    if not shop:
        raise InvalidSession("the token's destination is not a myshopify.com shop")
    return shop, claims


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    if not header.startswith("Bearer "):
        raise InvalidSession("the Authorization header does not carry a Bearer token")
    return header[len("Bearer "):]


def _frame_ancestors(response, shop: str | None):
    response.headers["Content-Security-Policy"] = security.frame_ancestors(shop)
    return response


# The bounce page runs inside Shopify admin's frame before any ID token is verified: it may be
# framed by any shop's admin, never by whatever `?shop=` names (security.add_headers: 'none'
# for every other page without a verified token).
BOUNCE_CSP = "frame-ancestors https://*.myshopify.com https://admin.shopify.com;"


def _invalid_session():
    """401 with the header that makes App Bridge retry the fetch with a fresh ID token."""
    resp = jsonify(error="invalid session token")
    resp.status_code = 401
    resp.headers[RETRY_HEADER] = "1"
    return resp


def embedded(view):
    """Authenticate an embedded request by its ID token; sets g.shop (domain) and g.claims.

    Fetches carry the token as `Authorization: Bearer` (failure: 401 plus the header that makes
    App Bridge retry with a fresh token); document loads carry it as `id_token` (missing: a
    bounce page lets App Bridge add it). The first valid token of a shop that has no Admin API
    token is exchanged for one (Shopify's managed installation); so is the next one after
    Shopify refused the stored token for good, which the Admin client then drops."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        is_fetch = "Authorization" in request.headers
        if not is_fetch and request.method not in ("GET", "HEAD"):
            # A token in the query string authenticates a page load only: a URL (with its token)
            # ends up in histories, logs and referers, and must not be able to change anything.
            log.info("refused a %s authenticated by the query string", request.method)
            return _invalid_session()
        try:
            token = _bearer() if is_fetch else request.args.get("id_token")
            if token is None:
                return _bounce()
            shop, claims = decode_id_token(token)
        except InvalidSession as exc:
            log.info("refused session token: %s", exc)
            if is_fetch:
                return _invalid_session()
            return _bounce()
        g.shop, g.claims = shop, claims
        row = shops.get(shop)
        if shops.needs_new_tokens(row):
            try:
                current_app.extensions["shopify_admin"].install_from_id_token(shop, token)
            except (ShopifyAuthError, ShopifyUnavailable) as exc:   # the stored pair still works
                log.warning("could not renew the tokens of %s: %s", shop, exc)
        elif not shops.is_installed(row):
            try:
                current_app.extensions["shopify_admin"].install_from_id_token(shop, token)
            except ShopifyAuthError:
                abort(401)
            except ShopifyUnavailable:
                abort(503)
            # Orders that could not be read while the token was refused are read now; so are
            # those the 60-day window hid, if the new grant has read_all_orders.
            row = shops.get(shop)
            orders.ask_again_after_error(row["id"], "shopify_auth")
            if shops.sees_all_orders(row["scopes"]):
                orders.ask_again_after_error(row["id"], "order_outside_window")
        return _frame_ancestors(current_app.make_response(view(*args, **kwargs)), shop)

    return wrapper


def _bounce():
    """A document load without a usable ID token goes to the 'patch ID token' page."""
    shop = shops.valid_shop_domain(request.args.get("shop"))
    if not shop:
        abort(400, "missing or invalid shop")
    params = {k: v for k, v in request.args.items() if k != "id_token"}
    target = f"{request.path}?{urlencode(params)}"
    return redirect(url_for("auth.session_token_bounce", shop=shop, **{"shopify-reload": target}))


@bp.get("/auth/session-token")
def session_token_bounce():
    """App Bridge loads here, fetches a fresh ID token and reloads `shopify-reload` with it."""
    shop = shops.valid_shop_domain(request.args.get("shop"))
    if not shop:
        abort(400, "missing or invalid shop")
    if not is_own_path(request.args.get("shopify-reload", "")):
        abort(400, "shopify-reload must be a path in this app")
    resp = current_app.make_response(render_template("session_bounce.html"))
    resp.headers["Content-Security-Policy"] = BOUNCE_CSP
    return resp


def is_own_path(target: str) -> bool:
    r"""Whether `target` is a path on this app and nothing else.

    App Bridge reloads `shopify-reload` with a fresh ID token added, so a target on another
    site would hand that token over. Browsers read "//host" and "/\host" as another host, and
    drop tabs and newlines before parsing ("/\t/host" is "//host"), hence every check."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if "\\" in target or any(unicodedata.category(c) == "Cc" for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


# --- authorization-code flow ------------------------------------------------------------

def _session_class(secret: str):
    # ShopifyAPI keeps the secret as class state; a subclass per secret keeps requests apart
    # and lets the old secret (rotation) be tried too.
    settings = current_app.config["SETTINGS"]
    return type("SkilvisSession", (shopify.Session,), {"api_key": settings.api_key, "secret": secret})


TIMESTAMP = re.compile(r"[0-9]{1,12}")
STATE = re.compile(r"[A-Za-z0-9_-]{1,200}")   # what secrets.token_urlsafe makes
HMAC_HEX = re.compile(r"[0-9a-fA-F]{64}")      # hex SHA-256
# What Shopify's OAuth callback carries; each exactly once.
CALLBACK_PARAMS = ("shop", "code", "state", "hmac", "timestamp")


def valid_query_hmac(params) -> bool:
    """Shopify's signed query (install link, OAuth callback): HMAC in constant time, timestamp
    not older than 24 h (ShopifyAPI's Session.validate_params), current or old secret. A
    malformed query (a name twice, no hmac, a timestamp that is not a number) is simply not
    valid. `params`: a dict, or the request's args (a MultiDict)."""
    if hasattr(params, "listvalues"):
        if any(len(values) > 1 for values in params.listvalues()):
            return False
        params = params.to_dict()
    settings = current_app.config["SETTINGS"]
    if not isinstance(params.get("hmac"), str) or not TIMESTAMP.fullmatch(str(params.get("timestamp", ""))):
        return False
    return any(_session_class(s).validate_params(params) for s in settings.webhook_secrets)


def _callback_params() -> dict:
    """The callback's query as a dict; a malformed one is a 400 (never a 500): a name given
    twice, one of CALLBACK_PARAMS missing, a timestamp that is not a number, a state that is
    not what `begin` makes (URL-safe ASCII), an hmac that is not hex SHA-256."""
    if any(len(values) > 1 for values in request.args.listvalues()):
        abort(400, "a parameter is given more than once")
    params = request.args.to_dict()
    missing = [name for name in CALLBACK_PARAMS if not params.get(name)]
    if missing:
        abort(400, "missing " + ", ".join(missing))
    if not TIMESTAMP.fullmatch(params["timestamp"]):
        abort(400, "the timestamp is not a number")
    if not STATE.fullmatch(params["state"]):
        abort(400, "malformed state")
    if not HMAC_HEX.fullmatch(params["hmac"]):
        abort(400, "malformed hmac")
    return params


@bp.get("/auth")
def begin():
    shop = shops.valid_shop_domain(request.args.get("shop"))
    if not shop:
        abort(400, "missing or invalid shop")
    settings = current_app.config["SETTINGS"]
    state = secrets.token_urlsafe(32)
    session["oauth_state"], session["oauth_shop"] = state, shop
    permission_url = _session_class(settings.api_secret)(shop, settings.api_version).create_permission_url(
        settings.scopes.split(","), settings.app_url + url_for("auth.callback"), state)
    return redirect(permission_url)


@bp.get("/auth/callback")
def callback():
    expected_state = session.pop("oauth_state", None)
    expected_shop = session.pop("oauth_shop", None)
    params = _callback_params()
    shop = shops.valid_shop_domain(params.get("shop"))
    if not shop:
        abort(400, "missing or invalid shop")
    # The state binds the callback to the browser and shop that began the flow (login CSRF).
    if (not expected_state or not hmac.compare_digest(expected_state.encode(), params["state"].encode())
            or shop != expected_shop):
        abort(403, "the OAuth state does not match")
    if not valid_query_hmac(params):
        abort(403, "the request is not signed by Shopify")
    try:
        tokens = current_app.extensions["shopify_admin"].exchange_code(shop, params["code"])
    except ShopifyAuthError:
        abort(403, "Shopify refused the authorization code")
    except ShopifyUnavailable:
        abort(503)
    shops.save_tokens(shop, tokens)
    settings = current_app.config["SETTINGS"]
    return redirect(f"https://{shop}/admin/apps/{settings.api_key}")
