"""No log line carries a token or a secret.

Embedded page loads carry the App Bridge ID token in the query string (`id_token`), signed
links carry `hmac`, OAuth callbacks `code` and `state`; fetches carry the token as a Bearer
header. `install()` masks them in every log record this process makes (the app's, the
libraries', gunicorn's), and `GunicornLogger` masks gunicorn's access-log fields too
(gunicorn.conf.py names it), whatever access-log format is configured."""
from __future__ import annotations

import logging
import re

from gunicorn import glogging

REDACTED = "[redacted]"
# Query parameters whose value is a credential or single-use secret.
SENSITIVE_PARAMS = ("id_token", "hmac", "code", "state", "session", "signature", "access_token", "refresh_token",
                    "client_secret", "token")
_PATTERNS = (
    # name=value after ? & or ; (also percent-encoded inside another URL: %3F %26)
    (re.compile(r"((?:[?&;]|%3[Ff]|%26)(?:" + "|".join(SENSITIVE_PARAMS) + r")(?:=|%3[Dd]))[^&\s\"'#;]*"),
     r"\1" + REDACTED),
    (re.compile(r"(Bearer\s+)[^\s\"',;]+", re.IGNORECASE), r"\1" + REDACTED),
    # JWTs (ID tokens) wherever they appear.
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]+\.[\w-]*"), REDACTED),
    # Shopify access, refresh and API secrets: shpat_, shpua_, shpca_, shppa_, shprt_, shpss_...
    (re.compile(r"\b(shp[a-z]{2,3})_[A-Za-z0-9]{6,}"), r"\1_" + REDACTED),
    # Fernet tokens (what the database holds encrypted).
    (re.compile(r"\bgAAAAA[\w-]{20,}=*"), REDACTED),
    # The password in a URL (postgres://user:password@host).
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it when the record is emitted
        return record
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        # The traceback is formatted here, once, so that its text can be masked too.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install() -> None:
    """Mask secrets in every log record made from now on in this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "skilvis_redacting", False):
        return

    def factory(*args, **kwargs):
        return _redact_record(current(*args, **kwargs))

    factory.skilvis_redacting = True
    logging.setLogRecordFactory(factory)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger with every access-log field masked (the request line, the query string,
    the referer, any header or environ value a format may name) and the error log masked too."""

    def __init__(self, cfg):
        install()
        super().__init__(cfg)

    def access(self, resp, req, environ, request_time):
        # An accepted webhook is its stored row (webhook_events says when, what and from whom):
        # a log line for each of a thousand a second says nothing more and costs the intake.
        # Refused ones, and every other request, are logged.
        if environ.get("PATH_INFO", "").startswith("/webhooks") and str(getattr(resp, "status", "")).startswith("2"):
            return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}
