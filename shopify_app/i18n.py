"""Icelandic, English and Danish: the language the admin user reads Shopify in, money and dates as
people write them, and every reason and error the merchant can see in each language.

The language belongs to the person, not the shop: two colleagues may read the same shop in two
languages at once. Shopify sends `locale` (`is`, `da-DK`, `en-US`, ...) on document loads only; the
page's script sends the page's language on each of its fetches as `X-Skilvis-Locale`."""
from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from flask import g, has_request_context, request
# gettext and ngettext: used as i18n.gettext / i18n.ngettext
from flask_babel import Babel, get_locale, gettext, lazy_gettext, lazy_ngettext, ngettext  # noqa: F401

from .money import minor_units

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LANGUAGES = ("is", "en", "da")
DEFAULT = "is"
# What the page's script (static/skilvis.js) sends on every fetch: <html lang>, one of LANGUAGES.
LOCALE_HEADER = "X-Skilvis-Locale"


def normalize(value: str | None) -> str | None:
    """Shopify's locale → ours. Any other language gets English: whoever reads Skilvís in,
    say, German admin reads English more easily than Icelandic or Danish."""
    if not value:
        return None
    value = value.strip().lower().replace("_", "-")
    if not value:
        return None
    language = value.split("-")[0]
    return language if language in LANGUAGES else "en"


def requested() -> str:
    """The request's language: Shopify's `locale` parameter (document loads), else the page's
    `X-Skilvis-Locale` header (its fetches), else the browser's Accept-Language, else Icelandic."""
    asked = normalize(request.args.get("locale")) or normalize(request.headers.get(LOCALE_HEADER))
    if asked:
        return asked
    # The first of ours in the browser's order (werkzeug's best_match would prefer an exact `is`
    # at q=0.9 to `en-US` at q=1).
    for value, _quality in request.accept_languages:
        if value.split("-")[0].lower() in LANGUAGES:
            return value.split("-")[0].lower()
    return DEFAULT


def _select_locale() -> str:
    # flask-babel asks once per request and keeps the answer.
    return requested() if has_request_context() else DEFAULT


def lang() -> str:
    locale = get_locale()
    return locale.language if locale else DEFAULT


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Build each messages.mo that is missing or older than its .po, so a fresh checkout works
    even where `make setup` did not run (the .mo files are committed as well)."""
    built = []
    for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as f:
            catalog = read_po(f, locale=po_path.parent.parent.name)
        # Several processes may start at once: write aside, then rename into place.
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        os.replace(tmp, mo_path)
        built.append(mo_path)
    return built


def init_app(app) -> Babel:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    try:
        compile_catalogs()
    except OSError:
        pass  # a read-only slug: the committed .mo files serve
    babel = Babel(app, locale_selector=_select_locale)
    app.jinja_env.filters.update(money=money, when=when, day=day)
    app.jinja_env.globals.update(reason_text=reason_text, error_text=error_text, status_label=status_label, kind_label=kind_label,
                                 status_tone=status_tone, timeline_text=timeline_text, lang=lang)
    return babel


# --- money and dates ---------------------------------------------------------------------

MONTHS = {
    "is": ("jan.", "feb.", "mar.", "apr.", "maí", "jún.", "júl.", "ágú.", "sep.", "okt.", "nóv.", "des."),
    # babel's (CLDR's) abbreviated months for da: `1. dec. 2026`, `1. maj 2026`
    "da": ("jan.", "feb.", "mar.", "apr.", "maj", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "dec."),
}
# Each language's own krone, written `kr.` after the amount; any other currency by its code.
KRONE = {"is": "ISK", "da": "DKK"}
# Babel's grouping and decimal symbols of each language: the list formats an amount per row, and
# Python's own formatting (half-even rounding, as babel's format_decimal) is ten times quicker.
SEPARATORS = {"is": {ord(","): ".", ord("."): ","}, "en": {ord(","): ",", ord("."): "."},
              "da": {ord(","): ".", ord("."): ","}}


def _grouped(value: Decimal, digits: int, language: str) -> str:
    """format_decimal(value, "#,##0" with `digits` decimals, locale=language), for value >= 0."""
    table = SEPARATORS.get(language)
    if table is None or not value.is_finite():
        return format_decimal(value, format=f"#,##0{'.' + '0' * digits if digits else ''}", locale=language)
    return f"{value:,.{digits}f}".translate(table)


def money(amount, currency: str | None = "ISK", language: str | None = None) -> str:
    """`5.000 kr.` / `-5.000 kr.` in Icelandic, `1.234,50 kr.` (DKK) in Danish, `ISK 5,000` /
    `-ISK 5,000` in English. Babel's da pattern puts a no-break space before `kr.`; a plain one
    here, as in the Icelandic."""
    if amount is None or amount == "":
        return ""
    language = language or lang()
    currency = (currency or "ISK").upper()
    value = Decimal(str(amount))
    digits = minor_units(currency)
    if language in KRONE:
        number = _grouped(abs(value), digits, language)
        text = f"{number} kr." if currency == KRONE[language] else f"{number} {currency}"
        return f"-{text}" if value < 0 else text
    number = _grouped(abs(value), digits, "en")
    return f"{'-' if value < 0 else ''}{currency} {number}"


def shop_accounting() -> str:
    """The asking shop's accounting system (read once per request); Payday outside a shop's request."""
    if not has_request_context() or not g.get("shop"):
        return "payday"
    if "accounting" not in g:
        from . import db
        with db.transaction() as conn:
            row = conn.execute("""SELECT ss.accounting FROM shops s JOIN shop_settings ss ON ss.shop_id = s.id
                                  WHERE s.domain = %s""", (g.shop,)).fetchone()
        g.accounting = row["accounting"] if row else "payday"
    return g.accounting


def zone() -> ZoneInfo:
    """The asking shop's time, its books' (accounting.ZONES), whatever the browser says; Iceland's
    outside a shop's request."""
    from . import accounting
    return accounting.ZONES[shop_accounting()]


def _local(value) -> datetime | None:
    """A moment (a datetime, or ISO 8601 text; naive means UTC) in the shop's time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):   # a calendar day (a Payday invoice's date) has no zone
        return datetime(value.year, value.month, value.day, tzinfo=zone())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(zone())


def day(value, language: str | None = None) -> str:
    """`21. nóv. 2026` in Icelandic, `21. nov. 2026` in Danish, `21 Nov 2026` in English."""
    local = _local(value)
    if local is None:
        return ""
    language = language or lang()
    if language in MONTHS:
        return f"{local.day}. {MONTHS[language][local.month - 1]} {local.year}"
    return f"{local.day} {local:%b %Y}"


def when(value, language: str | None = None) -> str:
    """`23. nóv. 2026 kl. 14:05` in Icelandic, `23. nov. 2026 kl. 14.05` in Danish (a full stop
    between hours and minutes, as Retskrivningsordbogen and babel's da write the time),
    `23 Nov 2026, 14:05` in English."""
    local = _local(value)
    if local is None:
        return ""
    language = language or lang()
    if language == "is":
        return f"{day(local, 'is')} kl. {local:%H:%M}"
    if language == "da":
        return f"{day(local, 'da')} kl. {local:%H.%M}"
    return f"{day(local, 'en')}, {local:%H:%M}"


# --- what the merchant reads -----------------------------------------------------------------

# One form for every badge: what the case waits for or where its document stands, read as
# "the case …" ("málið bíður lokunar", "málið er fært í Payday"), with no adjective that must
# agree with a noun, and true of a credit invoice and of the invoice an exchange may make.
STATUSES = {
    "open": lazy_gettext("Awaiting close"),
    "pending_settlement": lazy_gettext("Awaiting settlement"),
    "processing": lazy_gettext("In progress"),
    "created": lazy_gettext("Recorded in Payday"),
    "none_needed": lazy_gettext("Nothing to record"),
    "failed": lazy_gettext("Needs attention"),
}
TONES = {"open": "neutral", "pending_settlement": "warning", "processing": "info", "created": "success",
         "none_needed": "neutral", "failed": "critical"}
KINDS = {
    "return": lazy_gettext("Return"),
    "exchange": lazy_gettext("Exchange"),
    "refund": lazy_gettext("Refund"),
    "manual": lazy_gettext("By hand"),
}


def lines_count(n: int) -> str:
    """`1 line`, `2 lines`: Icelandic counts 21 and 31 as one (`21 lína`) but 11 as many; Danish
    counts as English (`1 linje`, `21 linjer`)."""
    return ngettext("%(num)s line", "%(num)s lines", int(n))

# The reasons the merchant reads (what happened, what to do) live in reasons.py; these names stay
# here for init_app's Jinja globals, timeline_text and the modules that import them from i18n.
from .reasons import REASONS, UNKNOWN_REASON, error_text, reason_text  # noqa: E402,F401


def status_label(status: str) -> str:
    """A status as the asking shop reads it: a Danish shop's documents are recorded in its own system."""
    system = shop_accounting()
    if status == "created" and system != "payday":
        from .accounting import NAMES
        return gettext("Recorded in %(system)s", system=NAMES[system])
    return str(STATUSES.get(status, status))


def status_tone(status: str) -> str:
    return TONES.get(status, "neutral")


def kind_label(kind: str) -> str:
    return str(KINDS.get(kind, kind))


def timeline_text(kind: str, detail: dict | None, currency: str | None = "ISK") -> str:
    """A timeline row as a sentence: the order's story is told by story.py."""
    from . import story   # story.py builds on this module
    return story.timeline_text(kind, detail, currency)
