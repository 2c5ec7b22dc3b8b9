"""The pages' fetches (Bearer ID token): rows for the live refresh, retry, Payday's test
connection, settings, credit preview and create. Answers are in the shop's remembered language;
HTML fragments come from the same macros the pages use, so a refreshed row looks the same."""
from __future__ import annotations

import os
import re
from datetime import date, datetime, time

from flask import Blueprint, abort, current_app, g, jsonify, render_template, request

from . import accounting, compliance, db, documents, facts, home, i18n, manual, orders, reasons, shop_settings
from .accounting.payday import api as payday
from .accounting import fields
from .auth import embedded
from .shopify_admin import ShopifyRefused

bp = Blueprint("api", __name__, url_prefix="/api")


def _json() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is expected")
    return body


def _ids(raw: str) -> list[int]:
    try:
        return [int(x) for x in raw.split(",") if x.strip()][:200]
    except ValueError:
        abort(400, "ids are numbers")


def _row_html(row: dict, settings: shop_settings.ShopSettings, kit: home.RowKit | None = None) -> str:
    """A row as the home page draws it; `kit`: the labels and link of the request's rows, made once."""
    kit = kit or home.RowKit(settings.payday_environment, settings.accounting)
    return render_template("_row.html", row=row, environment=settings.payday_environment, kit=kit).strip()


@bp.get("/cases")
@embedded
def case_rows():
    """The given rows as they are now (the refresh), or a page of the list."""
    shop = home.current_shop()
    settings = shop_settings.load(shop["id"])
    if "ids" in request.args:
        rows, next_cursor = home.rows_by_id(shop["id"], _ids(request.args["ids"])), None
    else:
        rows, next_cursor = home.list_cases(shop["id"], status=request.args.get("status") or None,
                                            q=request.args.get("q"), cursor=request.args.get("after"))
    kit = home.RowKit(settings.payday_environment, settings.accounting)
    return jsonify(rows=[{"id": r["id"], "status": r["status"], "updated_at": r["updated_at"].isoformat(),
                          "html": _row_html(r, settings, kit)} for r in rows],
                   next=next_cursor)


@bp.post("/cases/<int:case_id>/retry")
@embedded
def retry_case(case_id: int):
    """Retry every failed document of the case: a fresh round of attempts, sent by the next pass."""
    shop = home.current_shop()
    case = home.owned_case(shop["id"], case_id)
    with db.transaction() as conn:
        failed = conn.execute("SELECT id, doc_key FROM documents WHERE case_id = %s AND shop_id = %s AND status = 'failed'",
                              (case_id, shop["id"])).fetchall()
    if not failed:
        # A case that failed before any document (an unsupported VAT rate): the merchant has
        # corrected the order in Shopify, so it is read and decided again.
        if case["status"] == "failed" and orders.read_again(shop["id"], case["order_id"]):
            return _after_retry(shop, case)
        return jsonify(ok=False, message=i18n.gettext("There is nothing to retry.")), 409
    for doc in failed:
        _retry_document(shop["id"], doc["id"])
    return _after_retry(shop, case)


@bp.post("/documents/<int:doc_id>/retry")
@embedded
def retry_document(doc_id: int):
    shop = home.current_shop()
    with db.transaction() as conn:
        doc = conn.execute("SELECT id, case_id FROM documents WHERE id = %s AND shop_id = %s",
                           (doc_id, shop["id"])).fetchone()
    if doc is None:
        abort(404)
    if not _retry_document(shop["id"], doc_id):
        return jsonify(ok=False, message=i18n.gettext("There is nothing to retry.")), 409
    case = home.owned_case(shop["id"], doc["case_id"]) if doc["case_id"] else None
    return _after_retry(shop, case)


def _retry_document(shop_id: int, doc_id: int) -> bool:
    with db.transaction() as conn:
        if not documents.retry(doc_id, shop_id, conn):
            return False
        doc = conn.execute("SELECT case_id, order_id FROM documents WHERE id = %s", (doc_id,)).fetchone()
        if doc["case_id"]:
            # What status.derive will say once the pass runs (a document in flight, no error):
            # shown now, so the merchant sees the click took.
            conn.execute("""UPDATE cases SET status = 'processing', reason = NULL, updated_at = now()
                            WHERE id = %s AND NOT EXISTS (SELECT 1 FROM documents
                                                          WHERE case_id = %s AND status = 'failed')""",
                         (doc["case_id"], doc["case_id"]))
    return True


def _after_retry(shop: dict, case: dict | None):
    if case is None:
        return jsonify(ok=True)
    [row] = home.rows_by_id(shop["id"], [case["id"]])
    return jsonify(ok=True, row={"id": row["id"], "status": row["status"],
                                 "html": _row_html(row, shop_settings.load(shop["id"]))})


# --- settings ----------------------------------------------------------------------------

@bp.post("/orders/<int:order_id>/read-again")
@embedded
def read_order_again(order_id: int):
    """Retry on an order Skilvís could not read: read it from Shopify now."""
    shop = home.current_shop()
    if not orders.read_again(shop["id"], order_id):
        abort(404)
    return jsonify(ok=True, message=i18n.gettext("Skilvís is reading the order from Shopify again."))


def _connection_message(exc: Exception) -> str:
    if isinstance(exc, payday.PaydayAuthError) and payday.is_setup_refusal(str(exc)):
        return i18n.gettext("Payday accepted the client ID and secret, but the company’s required system setup "
                            "in Payday is not finished. Finish it in Payday, then test again.")
    if isinstance(exc, payday.PaydayAuthError):
        return i18n.gettext("Payday did not accept the client ID and secret: %(error)s", error=str(exc))
    if isinstance(exc, payday.PaydayTransient):
        return i18n.gettext("Payday could not be reached: %(error)s", error=str(exc))
    return i18n.gettext("Payday refused: %(error)s", error=str(exc))


@bp.post("/settings/test-connection")
@embedded
def test_connection():
    """Log in to Payday with the typed credentials (a blank secret: the saved one) and list the
    payment types. Saves nothing."""
    shop = home.current_shop()
    body = _json()
    saved = shop_settings.load(shop["id"])
    system = str(body.get("accounting") or saved.accounting)
    if system != "payday":
        return _test_danish_system(system, saved, body.get("accounting_config") or {})
    client_id = (body.get("client_id") or "").strip() or saved.payday_client_id
    secret = (body.get("client_secret") or "").strip() or saved.payday_client_secret
    environment = body.get("environment") or saved.payday_environment
    if environment not in payday.BASE_URLS:
        abort(400, "environment is production or test")
    if not client_id or not secret:
        return jsonify(ok=False, message=i18n.gettext("Enter the client ID and secret from Payday first."))
    # A memory token store: a test with unsaved credentials must not replace the shop's token.
    client = payday.PaydayClient(payday.base_url(environment), client_id, secret, read_attempts=1)
    try:
        result = client.test_connection()
    except payday.PaydayError as exc:
        return jsonify(ok=False, message=_connection_message(exc))
    return jsonify(ok=True, message=i18n.ngettext("Connected to Payday: %(num)s payment type found.",
                                                  "Connected to Payday: %(num)s payment types found.",
                                                  len(result["payment_types"])),
                   payment_types=result["payment_types"])


@bp.post("/settings")
@embedded
def save_settings():
    shop = home.current_shop()
    body = _json()
    changes = {}
    if "client_id" in body:
        changes["payday_client_id"] = (body["client_id"] or "").strip() or None
    if (body.get("client_secret") or "").strip():   # blank: keep the saved secret
        changes["payday_client_secret"] = body["client_secret"].strip()
    if body.get("disconnect"):
        changes.update(payday_client_id=None, payday_client_secret=None, auto_process=False)
    if "environment" in body:
        changes["payday_environment"] = body["environment"]
    if "payment_types" in body:
        mapping = body["payment_types"]
        if not isinstance(mapping, dict):
            abort(400, "payment_types maps gateways to payment type ids")
        # Custom POS payment types are matched exactly, case and spaces included (Payday H140):
        # the names are kept as typed.
        changes["payment_types"] = {str(k): str(v) for k, v in mapping.items() if str(k) and v}
    if "payday_app" in body:
        changes["payday_app"] = str(body["payday_app"])
    if "accounting" in body:
        system = str(body["accounting"])
        if system not in shop_settings.SYSTEMS:
            return jsonify(ok=False, message=i18n.gettext("Choose an accounting system.")), 400
        changes["accounting"] = system
        if system != "payday":
            saved = shop_settings.load(shop["id"])
            typed = body.get("accounting_config") or {}
            if not isinstance(typed, dict):
                abort(400, "accounting_config is an object")
            changes["accounting_config"] = fields.merged(
                system, saved.accounting_config if saved.accounting == system else {}, typed, os.environ)
    for flag in ("send_email", "kennitala_from_company", "auto_process", "payday_keeps_stock"):
        if flag in body:
            changes[flag] = bool(body[flag])
    before = shop_settings.load(shop["id"])
    if "default_customer_id" in body:
        chosen = str(body["default_customer_id"] or "").strip()
        if not chosen:
            changes.update(payday_default_customer_id=None, payday_default_customer_name=None)
        elif chosen != before.payday_default_customer_id:
            found = _payday_customer(before, chosen)
            if isinstance(found, str):
                return jsonify(ok=False, message=found), 400
            changes.update(payday_default_customer_id=chosen, payday_default_customer_name=found["label"])
    if body.get("invoices_from"):
        try:
            chosen = date.fromisoformat(str(body["invoices_from"]))
        except ValueError:
            return jsonify(ok=False, message=i18n.gettext("That is not a date.")), 400
        if chosen > datetime.now(i18n.zone()).date():
            return jsonify(ok=False, message=i18n.gettext("Invoicing cannot begin in the future.")), 400
        earliest = home.earliest_start(shop)
        if earliest and chosen.isoformat() < earliest:
            return jsonify(ok=False, message=i18n.gettext(
                "Shopify shows Skilvís only the last 60 days of orders: choose %(date)s or later.",
                date=i18n.day(earliest))), 400
        # The same day as shown keeps the exact moment (by default the install, to the second).
        if before.invoices_from is None or chosen != before.invoices_from.astimezone(i18n.zone()).date():
            changes["invoices_from"] = datetime.combine(chosen, time(), i18n.zone())
    try:
        settings = shop_settings.save(shop["id"], **changes)
    except ValueError as exc:
        if "automatic processing" in str(exc) and changes.get("accounting", before.accounting) == "payday":
            message = i18n.gettext("Automatic processing can be turned on once Payday is connected.")
        elif "automatic processing" in str(exc):
            message = i18n.gettext("Automatic processing can be turned on once the accounting system is connected.")
        elif "environment" in str(exc):
            message = i18n.gettext("Choose production or test.")
        elif "payday_app" in str(exc):
            message = i18n.gettext("Say whether Payday's own Shopify app is installed.")
        else:
            message = str(exc)
        return jsonify(ok=False, message=message), 400
    message = i18n.gettext("Settings saved.")
    if shop_settings.moves_start_back(before, settings):   # the backfill was asked for by save
        message += " " + i18n.gettext("Skilvís is reading the orders since %(date)s from Shopify again.") % {
            "date": i18n.day(settings.invoices_from)}
    return jsonify(ok=True, message=message,
                   checklist=[{"key": c["key"], "done": c["done"]} for c in home.checklist(shop["id"], settings)],
                   connected=settings.connected)


def _test_danish_system(system: str, saved: shop_settings.ShopSettings, typed: dict):
    """Log in to e-conomic, Dinero or Billy with what is typed (blank secrets: the saved ones) and
    say what the settings can map to. Saves nothing."""
    if system not in shop_settings.SYSTEMS or not isinstance(typed, dict):
        abort(400, "an accounting system and its settings")
    config = fields.merged(system, saved.accounting_config if saved.accounting == system else {}, typed, os.environ)
    if not accounting.has_credentials(system, config):
        return jsonify(ok=False, message=i18n.gettext("Enter the credentials from the accounting system first."))
    try:
        result = accounting.adapter(system, config).test_connection()
    except accounting.AccountingError as exc:
        return jsonify(ok=False, message=exc.message)
    return jsonify(ok=bool(result.get("ok")), message=result.get("message") or "", choices=result.get("choices") or {})


def _customer_choice(customer: dict) -> dict:
    ssn = customer.get("ssn") or ""
    name = customer.get("name") or ""
    return {"id": str(customer["id"]), "label": f"{name} ({ssn})" if ssn else name}


def _payday_customer(settings: shop_settings.ShopSettings, customer_id: str) -> dict | str:
    """The Payday customer with this id, or what to tell the merchant."""
    if not settings.payday_connected:
        return i18n.gettext("Payday is not connected: connect it in Settings")
    try:
        return _customer_choice(home.saved_client(settings).get_customer(customer_id))
    except payday.PaydayNotFound:
        return i18n.gettext("Payday has no such customer; search for it again.")
    except payday.PaydayError as exc:
        return _connection_message(exc)


@bp.get("/settings/payday-customers")
@embedded
def payday_customers():
    """Payday's customers matching a name, kennitala or e-mail: the choice of default customer."""
    shop = home.current_shop()
    settings = shop_settings.load(shop["id"])
    query = home.clean_search(request.args.get("q"))
    if not settings.payday_connected:
        return jsonify(ok=False, message=i18n.gettext("Payday is not connected: connect it in Settings"))
    if not query:
        return jsonify(ok=False, message=i18n.gettext("Type a name, kennitala or e-mail to search for."))
    try:
        found = [_customer_choice(c) for c in home.saved_client(settings).search_customers(query) if c.get("id")]
    except payday.PaydayError as exc:
        return jsonify(ok=False, message=_connection_message(exc))
    message = "" if found else i18n.gettext("Payday has no customer matching “%(q)s”.", q=query)
    return jsonify(ok=True, customers=found[:20], message=message)


@bp.get("/data-requests/<int:request_id>")
@embedded
def data_request_export(request_id: int):
    """What Skilvís holds on a customer, as Shopify's customers/data_request asked: a JSON file
    for the merchant to pass on."""
    export = compliance.data_request_export(g.shop, request_id)
    if export is None:
        abort(404)
    resp = jsonify(export)
    resp.headers["Content-Disposition"] = f'attachment; filename="skilvis-data-request-{request_id}.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- credit by hand ----------------------------------------------------------------------

CREDIT_ERRORS = {
    "bad_token": i18n.lazy_gettext("This form has expired; open it again."),
    "unknown_line": i18n.lazy_gettext("That product is not on this order."),
    "bad_quantity": i18n.lazy_gettext("At most %(max)s of “%(item)s” can be credited."),
    "nothing_picked": i18n.lazy_gettext("Pick at least one product or the shipping."),
    "shipping_credited": i18n.lazy_gettext("The shipping has already been credited."),
    "unsupported_vat_rate": reasons.REASONS["unsupported_vat_rate"],
    "unbookable_vat_rate": reasons.REASONS["unbookable_vat_rate"],
    "order_gone": reasons.REASONS["order_gone"],
    "not_connected": i18n.lazy_gettext("%(system)s is not connected: connect it in Settings"),
    "confirmation_required": i18n.lazy_gettext("Check the preview and confirm it: nothing has been created yet."),
    "plan_changed": i18n.lazy_gettext(
        "The credit invoice is no longer the one you previewed: what is left to credit has changed since. "
        "Check the new preview and confirm it again; nothing has been created yet."),
}


# Order names are the shop's prefix, number and suffix (`#1001`, `IS-1001-B`); no quotes, so
# the name cannot change the search it is put in.
ORDER_NAME = re.compile(r"^#?[\w.-]{1,40}$")


@bp.post("/orders/find")
@embedded
def find_order():
    """Credit by hand for any order, also one Skilvís has not seen yet: find it by its name in
    Shopify and open its credit page. Its refunds go through the pipeline like any order's."""
    shop = home.current_shop()
    name = str(_json().get("name") or "").strip()
    if not ORDER_NAME.match(name):
        return jsonify(ok=False, message=i18n.gettext("Type the order's name, such as #1001.")), 400
    found = facts.find_order(current_app.extensions["shopify_admin"], g.shop, name)
    if found is None:
        return jsonify(ok=False, message=i18n.gettext("Shopify has no order named %(name)s.") % {"name": name}), 404
    order_id = orders.request_work(shop["id"], int(found["legacyResourceId"]))
    return jsonify(ok=True, url=home.page_url("home.credit_page", order_id=order_id))


def _credit_message(code: str, params: dict) -> str:
    params = {k: str(v) for k, v in params.items()}
    text = CREDIT_ERRORS.get(code) or reasons.REASONS.get(code, code)
    try:
        return str(text) % params
    except (KeyError, ValueError):
        return str(text)


def _credit_error(code: str, params: dict, status: int = 400):
    return jsonify(ok=False, error=code, message=_credit_message(code, params)), status


def _credit_request(order_id: int):
    """The shop, our order row, Shopify's order and the form (picks, shipping, token); or an
    error response in place of the order."""
    shop = home.current_shop()
    order_row = home.owned_order(shop["id"], order_id)
    body = _json()
    picks = {}
    for key, value in (body.get("quantities") or {}).items():
        try:
            picks[str(key)] = int(value or 0)
        except (TypeError, ValueError):
            abort(400, "quantities are whole numbers")
    form = (picks, bool(body.get("shipping")), str(body.get("token") or ""))
    try:
        order = home.read_facts(order_row)
    except ShopifyRefused as exc:
        return shop, order_row, _credit_error(exc.code, {}, 409), form
    if order is None:
        return shop, order_row, _credit_error("order_gone", {}, 404), form
    return shop, order_row, order, form


def _proposal_json(proposal: manual.Proposal) -> dict:
    """The preview as the merchant confirms it: the invoice exactly as Payday will receive it
    (text, reference, lines with their signs and labels), and `confirm`, its digest, which the
    create must send back."""
    return {"total": str(proposal.total), "total_text": i18n.money(proposal.total, proposal.currency),
            "currency": proposal.currency, "label": proposal.label, "description": proposal.invoice["description"],
            "reference": proposal.invoice["reference"], "lines": proposal.invoice["lines"],
            "confirm": proposal.digest,
            "html": render_template("_preview.html", proposal=proposal, currency=proposal.currency)}


@bp.post("/orders/<int:order_id>/credit/preview")
@embedded
def credit_preview(order_id: int):
    shop, order_row, order, (picks, shipping, token) = _credit_request(order_id)
    if not isinstance(order, facts.Order):
        return order
    keeps_stock = shop_settings.load(shop["id"]).payday_keeps_stock
    try:
        proposal = manual.preview(shop["id"], order_row, order, picks, shipping, token, keeps_stock)
    except manual.InvalidCredit as exc:
        return _credit_error(exc.code, exc.params)
    return jsonify(ok=True, **_proposal_json(proposal))


@bp.post("/orders/<int:order_id>/credit")
@embedded
def credit_create(order_id: int):
    """Make the previewed credit invoice. The body is the preview's (`token`, `quantities`,
    `shipping`) plus `confirm`, the preview's digest; without it, or when the plan is no longer
    the one previewed, nothing is made: 409 with the plan as it is now under `preview`."""
    shop, order_row, order, form = _credit_request(order_id)
    if not isinstance(order, facts.Order):
        return order
    settings = shop_settings.load(shop["id"])
    system = home.SYSTEM_NAMES[settings.accounting]
    if not settings.connected:
        return _credit_error("not_connected", {"system": system}, 409)
    confirm = str(_json().get("confirm") or "") or None
    try:
        created = manual.create(shop["id"], order_row, order, *form, confirm=confirm,
                                keeps_stock=settings.payday_keeps_stock)
    except manual.Unconfirmed as exc:
        return jsonify(ok=False, error=exc.code, message=_credit_message(exc.code, {}),
                       preview=_proposal_json(exc.proposal)), 409
    except manual.InvalidCredit as exc:
        return _credit_error(exc.code, exc.params)
    return jsonify(ok=True, new=created.new, case_id=created.case_id, document_id=created.document_id,
                   url=home.page_url("home.case_detail", case_id=created.case_id),
                   message=i18n.gettext("Credit invoice created; it is being sent to %(system)s.", system=system)
                   if created.new
                   else i18n.gettext("This credit invoice was already created."))
