"""The merchant's pages, embedded in Shopify admin: the returns list (home), a case's detail,
credit by hand, and settings with the first-run checklist. Every query names the shop, so one
shop never sees another's rows (a foreign id is simply not found: 404)."""
from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import unicodedata
from datetime import datetime, timedelta

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup

from . import accounting, compliance, db, facts, i18n, invoicing, manual, reconcile, shop_settings, shops
from .accounting.payday import api as payday
from .accounting import fields
from .auth import embedded, valid_query_hmac
from .shopify_admin import ShopifyError, ShopifyRefused, ShopifyUnavailable

log = logging.getLogger(__name__)

bp = Blueprint("home", __name__)

PAGE_SIZE = 50
STATUSES = ("open", "pending_settlement", "processing", "created", "none_needed", "failed")
IN_FLIGHT = ("processing", "pending_settlement")
# Shopify's parameters that must survive navigation inside the app (not `id_token`: it is
# short-lived, and the page's script adds a fresh one).
CARRIED = ("shop", "host", "locale", "embedded")
SYSTEM_NAMES = accounting.NAMES


@bp.get("/")
def index():
    """Shopify opens the app URL embedded with `id_token`; an install link from outside admin
    comes signed (shop, hmac, timestamp) without one and starts the authorization-code flow."""
    if "id_token" in request.args or request.args.get("embedded") == "1":
        return app_home()
    shop = shops.valid_shop_domain(request.args.get("shop"))
    if shop and valid_query_hmac(request.args):
        if shops.is_installed(shops.get(shop)):
            return redirect(f"https://{shop}/admin/apps/{current_app.config['SETTINGS'].api_key}")
        return redirect(url_for("auth.begin", shop=shop))
    if current_app.config.get("SKILVIS_SANDBOX") and not request.args:
        return redirect(url_for("sandbox.panel"))   # the first address `make run` prints
    abort(400, "open Skilvís from your Shopify admin")


@bp.get("/favicon.ico")
def favicon():
    return current_app.send_static_file("favicon.ico")


def current_shop() -> dict:
    shop = shops.get(g.shop)
    if shop is None:
        abort(404)
    return shop


@bp.app_template_global()
def page_url(endpoint: str, **values) -> str:
    """A link to another page of the app, carrying Shopify's parameters along."""
    carried = {k: request.args[k] for k in CARRIED if request.args.get(k)}
    carried.setdefault("shop", g.shop)
    carried.update({k: v for k, v in values.items() if v not in (None, "")})
    return url_for(endpoint, **carried)


@bp.app_template_global()
def payday_invoice_url(environment: str | None, invoice_id: str | None) -> str | None:
    # Assumed: Payday's web app shows an invoice at /invoices/<id> (app.payday.is for
    # production, app.test.payday.is for the test environment); the API documents no such link.
    if not invoice_id:
        return None
    host = "app.test.payday.is" if environment == "test" else "app.payday.is"
    return f"https://{host}/invoices/{invoice_id}"


@bp.app_template_global()
def admin_order_url(legacy_id) -> str:
    # App Bridge turns shopify://admin links into navigation of the admin around the app.
    return f"shopify://admin/orders/{legacy_id}"


class RowKit:
    """What the rows of one page share, worked out once per page rather than once per row: the
    labels in the page's language (as the templates' `_()` gives them) and the link to a case,
    which carries Shopify's parameters like page_url (one url_for, then the id put in)."""

    def __init__(self, environment: str | None, system: str = "payday"):
        self.environment, self.system, self.system_name = environment, system, SYSTEM_NAMES[system]
        self._status = {s: i18n.status_label(s) for s in i18n.STATUSES}
        self._kind = {k: i18n.kind_label(k) for k in i18n.KINDS}
        self._reasons: dict[str, str] = {}
        # jinja's newstyle gettext, as `_()` in a template: the translation is markup, formatted.
        self.retry = Markup(i18n.gettext("Retry")) % {}
        self._retry_label = Markup(i18n.gettext("Retry: %(case)s"))
        # The list's column names, which a phone shows beside each value (the list stacks).
        self.customer, self.kind, self.amount, self.status, self.last_change = (
            Markup(i18n.gettext(word)) % {} for word in ("Customer", "Kind", "Amount", "Status", "Last change"))
        self.in_payday = Markup(i18n.gettext("In Payday")) % {}
        self.payday_no = Markup(i18n.gettext("Payday no. %(number)s"))
        if system != "payday":   # a Danish shop's documents are in its own system, by its name
            name = SYSTEM_NAMES[system]
            self.in_payday = Markup(i18n.gettext("In %(system)s", system=name))
            self.payday_no = Markup(i18n.gettext("%(system)s no. %(number)s", system=name, number="%(number)s"))
        path, _, query = page_url("home.case_detail", case_id=0).partition("?")
        if not path.endswith("/0"):
            raise RuntimeError(f"a case's link is not …/<id>: {path}")
        self._link = (path[:-1], f"?{query}" if query else "")

    def case_url(self, case_id: int) -> str:
        return f"{self._link[0]}{int(case_id)}{self._link[1]}"

    def status_label(self, status: str) -> str:
        return self._status[status] if status in self._status else i18n.status_label(status)

    def kind_label(self, kind: str) -> str:
        return self._kind[kind] if kind in self._kind else i18n.kind_label(kind)

    def reason(self, reason: dict | None) -> str:
        """reason_text, once per distinct reason on the page (most rows share a few)."""
        key = json.dumps(reason, sort_keys=True, default=str)
        if key not in self._reasons:
            self._reasons[key] = i18n.reason_text(reason)
        return self._reasons[key]

    def retry_label(self, order_name: str | None, label: str | None) -> Markup:
        return self._retry_label % {"case": label or order_name or ""}

    def invoice_url(self, invoice_id: str | None) -> str | None:
        """Payday's page of the invoice; the Danish systems' web apps link nothing we know."""
        return payday_invoice_url(self.environment, invoice_id) if self.system == "payday" else None

    def payday_no_text(self, number) -> Markup:
        return self.payday_no % {"number": number}


@bp.app_template_global()
def gateway_name(gateway: str) -> str:
    return invoicing.gateway_name(gateway, i18n.lang())


@bp.app_template_global()
def row_kit(environment: str | None, system: str = "payday") -> RowKit:
    return RowKit(environment, system)


# --- the list --------------------------------------------------------------------------------

def encode_cursor(updated_at: datetime, case_id: int) -> str:
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{case_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    if len(cursor) > 200:
        abort(400, "bad cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, case_id = raw.rsplit("|", 1)
        value = datetime.fromisoformat(when)
        if value.tzinfo is None:
            raise ValueError
        return value, int(case_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        abort(400, "bad cursor")


ROW_COLUMNS = """
    SELECT c.id, c.kind, c.label, c.status, c.reason, c.amount, c.currency, c.updated_at, c.order_id,
           o.name AS order_name, o.legacy_id, o.customer_name, o.customer_email,
           docs.docs"""
ROW_JOINS = """
    JOIN orders o ON o.id = c.order_id
    LEFT JOIN LATERAL (
        SELECT json_agg(json_build_object('id', d.id, 'status', d.status, 'number', d.accounting_number,
                                          'invoice_id', d.accounting_id) ORDER BY d.id) AS docs
        FROM documents d WHERE d.case_id = c.id) docs ON true
"""
ROW_SQL = f"{ROW_COLUMNS} FROM cases c {ROW_JOINS}"
# Search: every word typed must begin a word of the order's name, customer name or e-mail, accents
# and case aside ('jonsdottir' finds Jónsdóttir): either as typed ('k6@example' begins the lexeme
# 'k6@example.is') or as Postgres splits it ('#1003' → '1003'). orders.search_doc holds those
# words (migration 0018: f_unaccent, then to_tsvector 'simple'); the typed words go through the
# same f_unaccent here, so both sides are folded alike.
# (A word that Postgres keeps whole, 'helga', is not asked for twice: each costs a pass of the index.)
TSQUERY_SQL = r"""
    SELECT string_agg('(' || quote_literal(lower(w)) || ':*'
                      || coalesce(' | ' || nullif((SELECT string_agg(quote_literal(lexeme) || ':*', ' & ')
                                                   FROM unnest(to_tsvector('simple', w))),
                                                  quote_literal(lower(w)) || ':*'), '')
                      || ')', ' & ') AS tsq
    FROM (SELECT f_unaccent(w) AS w FROM regexp_split_to_table(replace(%s, '\', ''), '\s+') AS w) words
    WHERE w <> ''"""


# A search is a few words of a name, an e-mail or an order number: longer input is cut to this.
SEARCH_MAX_CHARS = 100
SEARCH_MAX_WORDS = 8


def clean_search(q: str | None) -> str:
    """Free text typed into a search box, made safe to search with: a NUL byte is a 400 (the
    database refuses it); control characters become spaces; at most SEARCH_MAX_WORDS words and
    SEARCH_MAX_CHARS characters are kept."""
    q = q or ""
    if "\x00" in q:
        abort(400, "the search holds a NUL byte")
    words = "".join(" " if unicodedata.category(c) == "Cc" else c for c in q[:4 * SEARCH_MAX_CHARS]).split()
    return " ".join(words[:SEARCH_MAX_WORDS])[:SEARCH_MAX_CHARS].strip()


def search_query(q: str, conn=None) -> str | None:
    q = clean_search(q)
    with db.joined(conn) as c:
        return c.execute(TSQUERY_SQL, (q,)).fetchone()["tsq"]


# A search finds its page one of two ways, whichever is cheap for it. A broad one (many orders
# match: 'Helga', 'anna') walks the list newest first, checking each case's order, and stops at
# the page's last row. A narrow one ('Guðrún 4711', '#51234') would walk far: its few orders come
# from the GIN index, then their cases. Which is which shows on the list's first WALK_PROBE rows:
# a page found among them is done; else the matching orders are counted, up to MATCH_LIMIT; only
# a search with more matches than that, none of them recent, walks on.
WALK_PROBE = 1000
MATCH_LIMIT = 5000

# `hit` is a subquery per row, not a join, so the planner cannot turn the walk into reading every
# match; `walked` marks the row where a capped walk stopped (where the next one goes on). Each
# statement returns whole rows: the page's orders and documents are read for its rows alone.
WALK_SQL = f"""{ROW_COLUMNS}, c.hit, c.walked
    FROM (SELECT * FROM (
              SELECT c.*, (SELECT o.search_doc @@ %(tsq)s::tsquery FROM orders o WHERE o.id = c.order_id) AS hit,
                     row_number() OVER (ORDER BY c.updated_at DESC, c.id DESC) AS walked
              FROM cases c WHERE {{where}}
              ORDER BY c.updated_at DESC, c.id DESC LIMIT %(walk)s) w
          WHERE hit OR walked = %(walk)s
          LIMIT %(limit)s) c
    {ROW_JOINS}
    ORDER BY c.updated_at DESC, c.id DESC"""
MATCHES_SQL = """SELECT o.id FROM orders o WHERE o.shop_id = %(shop_id)s AND o.search_doc @@ %(tsq)s::tsquery
                 LIMIT %(matches)s"""
# OFFSET 0 keeps the lateral a lookup per order (cases_by_order), however many the planner guesses.
CASES_OF_SQL = f"""{ROW_COLUMNS}
    FROM (SELECT c.* FROM unnest(%(order_ids)s::bigint[]) AS m(order_id)
          CROSS JOIN LATERAL (SELECT c.* FROM cases c WHERE c.order_id = m.order_id AND {{where}} OFFSET 0) c
          ORDER BY c.updated_at DESC, c.id DESC LIMIT %(limit)s) c
    {ROW_JOINS}
    ORDER BY c.updated_at DESC, c.id DESC"""


def _where(shop_id: int, status: str | None, after: tuple[datetime, int] | None) -> tuple[str, dict]:
    where = ["c.shop_id = %(shop_id)s"]
    params: dict = {"shop_id": shop_id}
    if status in STATUSES:
        where.append("c.status = %(status)s")
        params["status"] = status
    if after:
        where.append("(c.updated_at, c.id) < (%(after_at)s, %(after_id)s)")
        params.update(after_at=after[0], after_id=after[1])
    return " AND ".join(where), params


def _search_page(conn, shop_id: int, status: str | None, after, tsq: str, want: int) -> list[dict]:
    """The page's rows (`want` of them, or fewer at the end), newest first."""
    def walk(after, cap):
        where, params = _where(shop_id, status, after)
        rows = conn.execute(WALK_SQL.format(where=where), {**params, "tsq": tsq, "walk": cap, "limit": want}).fetchall()
        stopped = next((r for r in rows if cap and r["walked"] == cap), None)
        return [r for r in rows if r["hit"]], stopped

    found, stopped = walk(after, WALK_PROBE)
    if len(found) >= want or stopped is None:
        return found[:want]
    orders = [r["id"] for r in conn.execute(MATCHES_SQL, {"shop_id": shop_id, "tsq": tsq, "matches": MATCH_LIMIT + 1})]
    if len(orders) <= MATCH_LIMIT:
        where, params = _where(shop_id, status, after)
        return conn.execute(CASES_OF_SQL.format(where=where), {**params, "order_ids": orders, "limit": want}).fetchall()
    more, _ = walk((stopped["updated_at"], stopped["id"]), None)
    return (found + more)[:want]


def list_cases(shop_id: int, *, status: str | None = None, q: str | None = None, cursor: str | None = None,
               limit: int = PAGE_SIZE) -> tuple[list[dict], str | None]:
    """One page, newest change first; the cursor is the last row's (updated_at, id), so a page
    costs the same however deep it is and rows never repeat or vanish between pages."""
    q = clean_search(q)
    after = decode_cursor(cursor)
    with db.transaction() as conn:
        if q:
            tsq = search_query(q, conn)
            if not tsq:
                return [], None
            rows = _search_page(conn, shop_id, status, after, tsq, limit + 1)
        else:
            # The page's ids first, then their orders and documents (joined after the LIMIT).
            where, params = _where(shop_id, status, after)
            rows = conn.execute(f"""{ROW_COLUMNS}
                                    FROM (SELECT c.* FROM cases c WHERE {where}
                                          ORDER BY c.updated_at DESC, c.id DESC LIMIT %(limit)s) c
                                    {ROW_JOINS}
                                    ORDER BY c.updated_at DESC, c.id DESC""", {**params, "limit": limit + 1}).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more else None)


def rows_by_id(shop_id: int, ids: list[int]) -> list[dict]:
    if not ids:
        return []
    with db.transaction() as conn:
        return conn.execute(f"{ROW_SQL} WHERE c.shop_id = %s AND c.id = ANY(%s) ORDER BY c.updated_at DESC, c.id DESC",
                            (shop_id, ids)).fetchall()


def checklist(shop_id: int, settings: shop_settings.ShopSettings | None = None) -> list[dict]:
    """What a new shop must do before credit invoices flow by themselves."""
    settings = settings or shop_settings.load(shop_id)
    gateways = shop_settings.gateways(shop_id, settings)
    unmapped = [gw for gw in gateways if not settings.payment_types.get(gw)]
    if settings.accounting != "payday":
        return [
            {"key": "connect", "done": settings.connected,
             "text": i18n.gettext("Connect %(system)s", system=SYSTEM_NAMES[settings.accounting])},
            {"key": "auto_process", "done": settings.auto_process, "text": i18n.gettext("Turn on automatic processing")},
        ]
    return [
        {"key": "connect", "done": settings.payday_connected, "text": i18n.gettext("Connect Payday")},
        {"key": "payment_types", "done": settings.payday_connected and not unmapped,
         "text": i18n.gettext("Choose a Payday payment type for each payment gateway")},
        {"key": "payday_app", "done": settings.payday_app in ("not_installed", "credits_off"),
         "text": i18n.gettext("Tell Skilvís whether Payday's own Shopify app makes credit invoices in this shop")},
        {"key": "auto_process", "done": settings.auto_process,
         "text": i18n.gettext("Turn on automatic processing")},
    ]


@embedded
def app_home():
    shop = current_shop()
    status = request.args.get("status") or None
    q = clean_search(request.args.get("q"))
    rows, next_cursor = list_cases(shop["id"], status=status, q=q, cursor=request.args.get("after"))
    settings = shop_settings.load(shop["id"])
    return render_template("home.html", shop=g.shop, rows=rows, status=status if status in STATUSES else None, q=q,
                           kit=RowKit(settings.payday_environment, settings.accounting),
                           statuses=STATUSES, next_cursor=next_cursor, first_page=not request.args.get("after"),
                           checklist=checklist(shop["id"], settings), environment=settings.payday_environment,
                           unreadable=unreadable_orders(shop["id"]), access_lost_at=shops.take_access_lost(shop["id"]),
                           missing_scopes=shops.missing_scopes(shop["scopes"]))


def unreadable_orders(shop_id: int) -> list[dict]:
    """The orders Skilvís could not read, each with why (every reason but an order deleted in
    Shopify, which needs nothing) and when it reads it again by itself."""
    with db.transaction() as conn:
        return conn.execute(
            """SELECT id, name, legacy_id, last_error, read_again_at FROM orders
               WHERE shop_id = %s AND last_error IS NOT NULL AND last_error <> 'order_gone'
               ORDER BY work_done_at DESC NULLS LAST LIMIT 20""", (shop_id,)).fetchall()


# --- a case ----------------------------------------------------------------------------------

def owned_case(shop_id: int, case_id: int) -> dict:
    with db.transaction() as conn:
        row = conn.execute(f"{ROW_SQL} WHERE c.shop_id = %s AND c.id = %s", (shop_id, case_id)).fetchone()
    if row is None:
        abort(404)
    return row


def order_timeline(shop_id: int, order: dict) -> list[dict]:
    """The order's story (story.py): what happened to it in Shopify and what Skilvís made of it in
    Payday, in time order, each entry with its sentence in the page's language. Payday's steps
    are named by their document as the merchant knows it: its kind and Payday's number."""
    from . import story   # here, not at the top: story builds on i18n, as this page does
    with db.transaction() as conn:
        rows = conn.execute("""SELECT at, kind, detail, case_id FROM timeline
                               WHERE shop_id = %s AND order_id = %s ORDER BY at, id""",
                            (shop_id, order["id"])).fetchall()
        docs = conn.execute(
            """SELECT d.doc_key, d.total, d.accounting_number, d.status, d.gateway, d.trigger,
                      d.request_body ->> 'status' AS made_as, coalesce(d.return_name, c.label) AS name
               FROM documents d LEFT JOIN cases c ON c.id = d.case_id
               WHERE d.shop_id = %s AND d.order_id = %s""", (shop_id, order["id"])).fetchall()
    documents = {d["doc_key"]: {"number": d["accounting_number"], "total": str(d["total"]),
                                "name": d["name"] or order.get("name") or "", "status": d["status"],
                                "gateway": d["gateway"], "trigger": d["trigger"],
                                # made as paid; one made unpaid has its payment's own row later
                                "paid": d["status"] == "sent" and d["made_as"] == "PAID"} for d in docs}
    return story.build(rows, documents, order.get("currency"))


def order_documents(shop_id: int, order_id: int) -> list[dict]:
    """Every document of the order, whatever its case's status (a reopened return keeps the
    invoice it has), each named as what it is to the customer: `kind_label` is "Credit invoice",
    or "Invoice" when it charges them (an exchange that costs more), and `is_charge` says which."""
    from . import story
    with db.transaction() as conn:
        rows = conn.execute("""SELECT d.*, c.label AS case_label, c.kind AS case_kind FROM documents d
                               LEFT JOIN cases c ON c.id = d.case_id
                               WHERE d.shop_id = %s AND d.order_id = %s ORDER BY d.id""",
                            (shop_id, order_id)).fetchall()
    return [{**row, "is_charge": story.is_charge(row["total"]), "kind_label": story.kind_label(row["total"])}
            for row in rows]


@bp.get("/cases/<int:case_id>")
@embedded
def case_detail(case_id: int):
    shop = current_shop()
    case = owned_case(shop["id"], case_id)
    with db.transaction() as conn:
        order = conn.execute("""SELECT o.*, s.domain AS shop_domain FROM orders o JOIN shops s ON s.id = o.shop_id
                                WHERE o.id = %s AND o.shop_id = %s""", (case["order_id"], shop["id"])).fetchone()
        siblings = conn.execute("""SELECT id, kind, label, status FROM cases WHERE shop_id = %s AND order_id = %s
                                   ORDER BY id""", (shop["id"], order["id"])).fetchall()
    settings = shop_settings.load(shop["id"])
    return render_template("case.html", case=case, order=order, siblings=siblings,
                           timeline=order_timeline(shop["id"], order),
                           documents=order_documents(shop["id"], order["id"]),
                           environment=settings.payday_environment,
                           kit=RowKit(settings.payday_environment, settings.accounting))


# --- credit by hand ----------------------------------------------------------------------

def owned_order(shop_id: int, order_id: int) -> dict:
    with db.transaction() as conn:
        order = conn.execute("SELECT * FROM orders WHERE id = %s AND shop_id = %s", (order_id, shop_id)).fetchone()
    if order is None:
        abort(404)
    return order


def read_facts(order: dict):
    """The order as Shopify has it now (never our copy: quantities and prices are Shopify's)."""
    return facts.read_order(current_app.extensions["shopify_admin"], g.shop, order["order_gid"])


@bp.get("/orders/<int:order_id>/credit")
@embedded
def credit_page(order_id: int):
    shop = current_shop()
    order = owned_order(shop["id"], order_id)
    try:
        order_facts = read_facts(order)
    except ShopifyRefused as exc:
        return render_template("unreadable.html", order=order, reason={"code": exc.code}), 409
    if order_facts is None:
        abort(404)
    settings = shop_settings.load(shop["id"])
    # The form's idempotency key: whatever happens to the submit (twice, retried), one document.
    token = secrets.token_urlsafe(18)
    earlier = manual.hand_credits(order["id"], token)
    return render_template("credit.html", order=order, facts=order_facts, token=token,
                           creditable=manual.creditable(order_facts, earlier),
                           shipping_left=manual.creditable_shipping(order_facts, earlier),
                           connected=settings.connected, system=SYSTEM_NAMES[settings.accounting],
                           line_id=lambda gid: gid.rsplit("/", 1)[-1])


# --- settings ----------------------------------------------------------------------------

def saved_client(settings: shop_settings.ShopSettings) -> payday.PaydayClient:
    """The shop's Payday connection, for a page that waits on it: one read attempt."""
    return payday.PaydayClient.for_shop(settings, read_attempts=1)


def payment_type_choices(settings: shop_settings.ShopSettings) -> tuple[list[dict], bool]:
    """Payday's payment types for the select boxes, and whether Payday answered."""
    if not settings.payday_connected:
        return [], False
    client = saved_client(settings)
    try:
        return [{"id": t.get("id"), "title": t.get("title")} for t in client.payment_types()], True
    except payday.PaydayError:
        return [], False


@bp.get("/settings")
@embedded
def settings_page():
    shop = current_shop()
    settings = shop_settings.load(shop["id"])
    types, answered = payment_type_choices(settings)
    known = {t["id"] for t in types}
    # A mapped type Payday did not list (Payday unreachable) still shows, by its id.
    types += [{"id": v, "title": v} for v in settings.payment_types.values() if v and v not in known]
    try:   # the gateways of the shop's latest orders, so a new shop can map them before any return
        shop_settings.note_gateways(shop["id"], facts.recent_gateways(current_app.extensions["shopify_admin"], g.shop))
    except (ShopifyError, ShopifyUnavailable) as exc:
        log.info("recent gateways of %s not read: %s", g.shop, exc)
    gateways = shop_settings.gateways(shop["id"], settings)
    return render_template("settings.html", settings=settings, payment_types=types, payday_answered=answered,
                           danish_fields=fields.FIELDS, gateway_maps=fields.GATEWAY_MAPS, config_value=fields.value, system_names=SYSTEM_NAMES,
                           gateways=gateways, checklist=checklist(shop["id"], settings),
                           backfill=reconcile.backfill_state(shop["id"]),
                           invoices_from=settings.invoices_from.astimezone(i18n.zone()).date().isoformat(),
                           invoices_from_day=i18n.day(settings.invoices_from),
                           today=datetime.now(i18n.zone()).date().isoformat(),
                           earliest=earliest_start(shop), customer_data_withheld=customer_data_withheld(shop["id"]),
                           data_requests=compliance.data_requests(g.shop))


# Shopify shows an app without read_all_orders the last 60 days of orders; a history start a
# day inside that keeps clear of the edge (Shopify counts from the order's creation).
VISIBLE_DAYS = 59


def earliest_start(shop: dict) -> str | None:
    """The earliest start of invoicing Skilvís can read back to (None: any)."""
    if shops.sees_all_orders(shop["scopes"]):
        return None
    return (datetime.now(i18n.zone()).date() - timedelta(days=VISIBLE_DAYS)).isoformat()


def customer_data_withheld(shop_id: int) -> bool:
    """Whether Shopify withheld a buyer's details on an order of this shop (a case waits for the
    default customer, or a document went to it)."""
    with db.transaction() as conn:
        return conn.execute(
            """SELECT EXISTS (SELECT 1 FROM cases WHERE shop_id = %(s)s AND reason->>'code' = 'default_customer_missing')
                   OR EXISTS (SELECT 1 FROM documents WHERE shop_id = %(s)s AND customer_by = 'default') AS seen""",
            {"s": shop_id}).fetchone()["seen"]


@bp.get("/api/me")
@embedded
def me():
    """Who the ID token says is asking; the merchant pages' fetches use the same guard."""
    return {"shop": g.shop, "user": g.claims.get("sub")}
