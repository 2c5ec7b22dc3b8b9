"""OAuth of the Shopify stand-in: the token endpoint with its three grants, the access tokens
it hands out, ID (session) tokens, and the signed query strings Shopify sends an app.

Grants (shopify.md §4): the authorization code (single use, short-lived, `expiring=1` for an
expiring offline token); token exchange of an App Bridge ID token (HS256 with the client
secret, `aud` = client id, `dest` = the shop) for an offline or online token, or of an old
non-expiring offline token for an expiring one; and refresh. Refresh tokens rotate; since
2026-08-28 the one used stays valid until its replacement is used, for at most 30 days from
its first use and never past its own 90 days
(https://shopify.dev/changelog/more-resilient-refreshes-for-expiring-offline-access-tokens).

Errors, as far as they could be confirmed:
- a used or unknown code: 400 {"error": "invalid_request", "error_description": "The
  authorization code was not found or was already used"} (ShopifySharp issue #70, Laravel-
  ShopifyAPI issue #9 quote Shopify's body);
- an unknown client id: 400 invalid_request "Could not find Shopify API application with
  api_key" (gnikyt/laravel-shopify issue #104);
- a bad ID token: 400 {"error": "invalid_subject_token", "error_description": "Subject token
  is invalid"} (Shopify's own shopify-api-js token-exchange test mocks exactly this);
- `invalid_client` and `invalid_grant` are the codes Shopify's shopify-app-python handles for
  bad client credentials and a dead refresh token.
Not confirmed, chosen here: 401 for `invalid_client` (RFC 6749 §5.2), 400 for `invalid_grant`,
400 `invalid_request` for a missing parameter or an unknown grant type, the description texts
other than those quoted, the token prefixes, and a 60-second code lifetime.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
ONLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:online-access-token"
ID_TOKEN_CLAIMS = ("iss", "dest", "aud", "sub", "exp", "nbf", "iat", "jti", "sid")
LEEWAY = 10  # seconds of clock skew allowed on exp/nbf, as Shopify's own libraries allow
# JWTs are made and checked here rather than with PyJWT, which warns about the short secrets
# tests use; only HMAC algorithms are needed (Shopify signs ID tokens with HS256).
_HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
RECOVERY_WINDOW = timedelta(days=30)


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass
class _Access:
    shop: str
    expires_at: datetime | None
    online: bool = False
    revoked: bool = False


@dataclass
class _Refresh:
    shop: str
    expires_at: datetime
    parent: str | None
    first_used_at: datetime | None = None
    retired: bool = False


@dataclass
class _Code:
    shop: str
    expires_at: datetime
    used: bool = False


def _locked(method):
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    locked.__name__, locked.__doc__ = method.__name__, method.__doc__
    return locked


def _flag(value) -> bool:
    """`expiring` arrives as "1"/"0", 1/0 or true/false depending on the client."""
    return str(value).strip().lower() in ("1", "true")


def query_hmac(params: dict, secret: str) -> str:
    """Shopify's query-string signature, computed as ShopifyAPI's Session.calculate_hmac does:
    hex HMAC-SHA256 of the sorted `k=v` pairs (hmac left out) joined by `&`, with `%`, `&` and
    `=` escaped, and `key[]` lists written as JSON lists."""
    pairs = []
    for key, value in params.items():
        if key == "hmac":
            continue
        if key.endswith("[]"):
            key, value = key.rstrip("[]"), json.dumps([str(v) for v in value])
        key = str(key).replace("%", "%25").replace("=", "%3D")
        pairs.append(f"{key}={str(value).replace('%', '%25')}".replace("&", "%26"))
    message = "&".join(sorted(pairs))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict, secret: str, alg: str = "HS256") -> str:
    """A JWT signed with `alg` (HS256/384/512), or unsigned with alg "none"."""
    if alg != "none" and alg not in _HMAC_ALGORITHMS:
        raise ValueError(f"the stand-in signs with HS256, HS384, HS512 or none, not {alg}")
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    if alg == "none":
        return head + "."
    return head + "." + _b64(hmac.new(secret.encode(), head.encode(), _HMAC_ALGORITHMS[alg]).digest())


def decode_hs256(token: str, secret: str) -> dict | None:
    """The claims of an HS256 JWT signed with `secret`; None for anything else."""
    try:
        header, payload, signature = token.split(".")
        if json.loads(_unb64(header)).get("alg") != "HS256":
            return None
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, AttributeError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class TokenAuthority:
    """Issues and checks the tokens of every shop. `clock()` gives the aware current time.
    Thread-safe: concurrent workers refresh at once, and a refresh reads and then retires."""

    def __init__(self, client_id: str, client_secret: str, scopes: str, clock):
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.scopes_for = None  # shop -> its granted scopes ("a,b"); None: `scopes` for every shop
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    @_locked
    def reset(self) -> None:
        self.expires_in = 3600
        self.refresh_token_expires_in = 7_776_000
        self.online_expires_in = 86_399
        self.code_ttl = 60
        self.requests: list[dict] = []
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}

    # --- helpers for tests and the sandbox --------------------------------------------

    @_locked
    def authorization_code(self, shop: str) -> str:
        code = secrets.token_hex(16)
        self._codes[code] = _Code(shop, self.clock() + timedelta(seconds=self.code_ttl))
        return code

    def id_token(self, shop: str, *, user_id="1", expires_in: int = 60, secret: str | None = None,
                 alg: str = "HS256", **claim_overrides) -> str:
        """An App Bridge ID token for `shop`; an override of None removes that claim."""
        now = int(self.clock().timestamp())
        claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": self.client_id,
                  "sub": str(user_id), "exp": now + expires_in, "nbf": now, "iat": now,
                  "jti": str(uuid.uuid4()), "sid": secrets.token_hex(16)}
        for name, value in claim_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return encode_jwt(claims, self.client_secret if secret is None else secret, alg)

    def signed_query(self, params: dict, secret: str | None = None) -> dict:
        signed = {k: v for k, v in params.items() if k != "hmac"}
        signed.setdefault("timestamp", str(int(self.clock().timestamp())))
        signed["hmac"] = query_hmac(signed, self.client_secret if secret is None else secret)
        return signed

    @_locked
    def expire_access_tokens(self, shop: str) -> None:
        """Every access token of the shop runs out now, as if its hour had passed."""
        past = self.clock() - timedelta(seconds=1)
        for token in self._access.values():
            if token.shop == shop:
                token.expires_at = past

    @_locked
    def revoke(self, shop: str) -> None:
        """The app was uninstalled: nothing issued to the shop works any more."""
        for token in self._access.values():
            if token.shop == shop:
                token.revoked = True
        for refresh in self._refresh.values():
            if refresh.shop == shop:
                refresh.retired = True

    @_locked
    def expire_refresh_tokens(self, shop: str) -> None:
        """Every refresh token of the shop runs out now, as if its 90 days had passed."""
        past = self.clock() - timedelta(seconds=1)
        for refresh in self._refresh.values():
            if refresh.shop == shop:
                refresh.expires_at = past

    @_locked
    def revoke_refresh_tokens(self, shop: str) -> None:
        """Every refresh token of the shop is revoked; its access tokens keep their hour."""
        for refresh in self._refresh.values():
            if refresh.shop == shop:
                refresh.retired = True

    @_locked
    def non_expiring_offline(self, token: str | None) -> bool:
        """Whether `token` is an (unrevoked) offline token that never expires."""
        found = self._access.get(token or "")
        return bool(found and not found.online and not found.revoked and found.expires_at is None)

    @_locked
    def access_token_valid(self, shop: str, token: str | None) -> bool:
        found = self._access.get(token or "")
        return bool(found and found.shop == shop and not found.revoked
                    and (found.expires_at is None or found.expires_at > self.clock()))

    # --- the endpoint --------------------------------------------------------------------

    @_locked
    def grant(self, shop: str, params: dict) -> dict:
        """The token endpoint's answer to `params` (JSON or form fields); raises OAuthError."""
        client_id = params.get("client_id")
        if not client_id:
            raise OAuthError(400, "invalid_request", "Missing client_id")
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_request", "Could not find Shopify API application with api_key")
        if not hmac.compare_digest(str(params.get("client_secret") or ""), self.client_secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        grant_type = params.get("grant_type")
        if grant_type == TOKEN_EXCHANGE:
            return self._token_exchange(shop, params)
        if grant_type == "refresh_token":
            return self._refresh_grant(shop, params)
        if grant_type in (None, "", "authorization_code"):
            return self._code_grant(shop, params)
        raise OAuthError(400, "invalid_request", f"Unsupported grant_type {grant_type!r}")

    def _code_grant(self, shop: str, params: dict) -> dict:
        if not params.get("code"):
            raise OAuthError(400, "invalid_request", "Missing code")
        code = self._codes.get(str(params["code"]))
        if code is None or code.used or code.shop != shop or code.expires_at <= self.clock():
            raise OAuthError(400, "invalid_request", "The authorization code was not found or was already used")
        code.used = True
        return self._issue(shop, expiring=_flag(params.get("expiring")))

    def _token_exchange(self, shop: str, params: dict) -> dict:
        requested = params.get("requested_token_type")
        if requested not in (OFFLINE_TOKEN_TYPE, ONLINE_TOKEN_TYPE):
            raise OAuthError(400, "invalid_request", f"Unsupported requested_token_type {requested!r}")
        subject, subject_type = params.get("subject_token"), params.get("subject_token_type")
        if not subject:
            raise OAuthError(400, "invalid_request", "Missing subject_token")
        if subject_type == ID_TOKEN_TYPE:
            claims = self._verified_id_token(shop, str(subject))
            if requested == ONLINE_TOKEN_TYPE:
                return self._issue_online(shop, claims["sub"])
            return self._issue(shop, expiring=_flag(params.get("expiring")))
        if subject_type == OFFLINE_TOKEN_TYPE and requested == OFFLINE_TOKEN_TYPE:
            return self._migrate(shop, str(subject), params)
        raise OAuthError(400, "invalid_request", f"Unsupported subject_token_type {subject_type!r}")

    def _verified_id_token(self, shop: str, token: str) -> dict:
        invalid = OAuthError(400, "invalid_subject_token", "Subject token is invalid")
        claims = decode_hs256(token, self.client_secret)
        if claims is None or any(name not in claims for name in ID_TOKEN_CLAIMS):
            raise invalid
        now = self.clock().timestamp()
        try:
            fresh = float(claims["exp"]) > now - LEEWAY and float(claims["nbf"]) <= now + LEEWAY
        except (TypeError, ValueError):
            raise invalid from None
        if not fresh or claims["aud"] != self.client_id:
            raise invalid
        if claims["dest"] != f"https://{shop}" or claims["iss"] != f"https://{shop}/admin":
            raise invalid
        return claims

    def _migrate(self, shop: str, subject: str, params: dict) -> dict:
        """An old non-expiring offline token swapped for an expiring one; the old one dies."""
        old = self._access.get(subject)
        if old is None or old.shop != shop or old.revoked or old.expires_at is not None or old.online:
            raise OAuthError(400, "invalid_subject_token", "Subject token is invalid")
        if not _flag(params.get("expiring")):
            raise OAuthError(400, "invalid_request", "expiring=1 is required to migrate an offline token")
        old.revoked = True
        return self._issue(shop, expiring=True)

    def _refresh_grant(self, shop: str, params: dict) -> dict:
        value = str(params.get("refresh_token") or "")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing refresh_token")
        token, now = self._refresh.get(value), self.clock()
        if (token is None or token.shop != shop or token.retired or token.expires_at <= now
                or (token.first_used_at is not None and now > token.first_used_at + RECOVERY_WINDOW)):
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid, expired or revoked")
        if token.parent is not None and token.parent in self._refresh:
            self._refresh[token.parent].retired = True  # using the replacement retires its predecessor
        token.first_used_at = token.first_used_at or now
        return self._issue(shop, expiring=True, parent=value)

    def _issue(self, shop: str, *, expiring: bool, parent: str | None = None) -> dict:
        now = self.clock()
        access = "shpat_" + secrets.token_hex(16)
        if not expiring:
            self._access[access] = _Access(shop, None)
            return {"access_token": access, "scope": self._scope(shop)}
        refresh = "shprt_" + secrets.token_hex(16)
        self._access[access] = _Access(shop, now + timedelta(seconds=self.expires_in))
        self._refresh[refresh] = _Refresh(shop, now + timedelta(seconds=self.refresh_token_expires_in), parent)
        return {"access_token": access, "scope": self._scope(shop), "expires_in": self.expires_in,
                "refresh_token": refresh, "refresh_token_expires_in": self.refresh_token_expires_in}

    def _scope(self, shop: str) -> str:
        """The scopes granted on `shop`, as the token response's `scope` reports them."""
        return self.scopes_for(shop) if self.scopes_for is not None else self.scopes

    def _issue_online(self, shop: str, user_id: str) -> dict:
        access = "shpua_" + secrets.token_hex(16)
        self._access[access] = _Access(shop, self.clock() + timedelta(seconds=self.online_expires_in), online=True)
        user = int(user_id) if str(user_id).isdigit() else user_id
        return {"access_token": access, "scope": self._scope(shop), "expires_in": self.online_expires_in,
                "associated_user_scope": self._scope(shop),
                "associated_user": {"id": user, "first_name": "Staff", "last_name": "Member",
                                    "email": f"staff{user_id}@{shop}", "account_owner": str(user_id) == "1",
                                    "locale": "is", "collaborator": False, "email_verified": True}}
