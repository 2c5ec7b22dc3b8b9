"""What every request and every response gets, whatever the view (errors included).

Requests: a body over its endpoint's limit is refused with 413 before it is read (by its
Content-Length, and a chunked body as soon as it passes the limit); a NUL byte in the query
string or in a JSON body, a JSON body nested past reason, an over-long JSON string or one that
is not text (a lone surrogate) is a 400, never a 500 from the database or the parser.

Responses: nosniff, a referrer policy, a CSP whose frame-ancestors name the verified shop's admin
only on embedded requests whose ID token was verified (`'none'` everywhere else), and HSTS in
production."""
from __future__ import annotations

import io

from flask import Flask, abort, current_app, g, request
from werkzeug.wsgi import get_content_length

# Longest string a JSON body may hold (client ids, secrets, gateway names, tokens: all short).
MAX_JSON_STRING = 1000
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")

REFERRER_POLICY = "strict-origin-when-cross-origin"
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask) -> None:
    """Register the hooks. Call after every blueprint: the request checks are put first of all
    before-request hooks, and the header hook runs before the blueprints' after-request hooks
    (the sandbox panel's adds 'self' to frame-ancestors)."""
    settings = app.config["SETTINGS"]
    app.config["MAX_CONTENT_LENGTH"] = settings.request_max_bytes
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
    app.after_request(add_headers)


def check_request():
    # Webhooks (their own limit) never reach Flask: webhooks.Intake answers them.
    limit = current_app.config["SETTINGS"].request_max_bytes
    if request.method in BODY_METHODS:
        _buffer_chunked_body(limit)
    # Werkzeug enforces this too when the body is read.
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        abort(413)
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            abort(400, "the query string holds a NUL byte")
    if request.method in BODY_METHODS and request.is_json:
        # Parsed once here (Flask keeps it for the view), so every JSON endpoint is covered.
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            abort(400, "the JSON body is nested too deeply")
        if body is not None and not _clean_json(body):
            abort(400, "the JSON body holds a NUL byte or an over-long string")


def _buffer_chunked_body(limit: int) -> None:
    """A body without Content-Length (chunked; the server ends the stream): read at most
    `limit` + 1 bytes of it, and 413 if there is more. (Werkzeug's own limit would silently hand
    the view the first `limit` bytes.) Nothing is read of a body with a Content-Length here."""
    environ = request.environ
    if "wsgi.input_terminated" not in environ or get_content_length(environ) is not None:
        return
    body = read_chunked(environ["wsgi.input"], limit)
    if body is None:
        abort(413)
    environ["wsgi.input"] = io.BytesIO(body)


def read_chunked(stream, limit: int) -> bytes | None:
    """A stream read to its end, or None as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def _clean_json(value, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(value, str):
        return "\x00" not in value and len(value) <= MAX_JSON_STRING and _encodable(value)
    if isinstance(value, dict):
        return all(_clean_json(k, depth + 1) and _clean_json(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_clean_json(v, depth + 1) for v in value)
    return True


def _encodable(text: str) -> bool:
    try:   # a lone surrogate ("\\ud800" in JSON) is valid JSON but no text Postgres can store
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def frame_ancestors(shop: str | None) -> str:
    """The CSP of a page: framed only by the verified shop's admin, or by nobody."""
    origins = f"https://{shop} https://admin.shopify.com" if shop else "'none'"
    return f"frame-ancestors {origins};"


def response_headers(settings, shop: str | None) -> list[tuple[str, str]]:
    headers = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", REFERRER_POLICY),
               ("Content-Security-Policy", frame_ancestors(shop))]
    if settings.production:
        headers.append(("Strict-Transport-Security", HSTS))
    return headers


def add_headers(response):
    # g.shop is set only once an ID token was verified (auth.embedded): an error inside an
    # embedded page still shows in that shop's admin; anything else is never framed. A view's
    # own header (the sandbox panel's CSP) stays.
    for name, value in response_headers(current_app.config["SETTINGS"], g.get("shop")):
        response.headers.setdefault(name, value)
    return response
